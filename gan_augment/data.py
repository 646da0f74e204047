"""The decoded training cache and batch sampling.

A dataset is decoded once into a uint8 tensor (N, C, S, S); training then only indexes it.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gan_augment.fsio import get_fs, redact_url, retry
from gan_augment.store import decode_image, list_images

log = logging.getLogger(__name__)


@dataclass
class ImageCache:
    """Decoded images of one dataset.

    Attributes:
        images: (N, C, S, S) uint8 tensor.
        uris: the source object of each row.
        fingerprint: hash of the source listing (URIs, sizes, versions); equal fingerprints
            mean the same data.
        skipped: URIs that could not be decoded, with the reason.
    """

    images: Tensor
    uris: list[str]
    fingerprint: str
    skipped: dict[str, str]

    def __len__(self) -> int:
        return self.images.shape[0]


def build_cache(
    source: str,
    image_size: int,
    channels: int,
    storage_options: dict[str, Any] | None = None,
    max_workers: int = 16,
) -> ImageCache:
    """Read and decode every image under `source` once, in parallel threads (decoding releases
    the GIL in Pillow, and object-store reads are latency-bound).

    Raises:
        FileNotFoundError: no images under `source`.
        ValueError: no image could be decoded.
    """
    objects = list_images(source, storage_options)
    fs, _ = get_fs(source, storage_options)
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(f"{obj.uri}\0{obj.size}\0{obj.version}\n".encode())

    def load(uri: str) -> np.ndarray | str:
        try:
            data = retry(lambda: fs.cat_file(uri), what=f"read {redact_url(uri)}")
            return decode_image(data, image_size, channels)
        except Exception as exc:  # noqa: BLE001 - a bad object is recorded, never fatal
            return f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        results = list(pool.map(load, [obj.uri for obj in objects]))
    arrays, uris, skipped = [], [], {}
    for obj, result in zip(objects, results):
        if isinstance(result, str):
            skipped[obj.uri] = result
        else:
            arrays.append(result)
            uris.append(obj.uri)
    if skipped:
        log.warning("skipped %d of %d objects under %s that could not be decoded",
                    len(skipped), len(objects), redact_url(source))
    if not arrays:
        raise ValueError(f"none of the {len(objects)} images under {redact_url(source)} could be decoded")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (N, C, S, S)
    return ImageCache(images=images, uris=uris, fingerprint=digest.hexdigest(), skipped=skipped)


class BatchSampler:
    """Batch indices as a pure function of (seed, step).

    Each epoch is a fresh permutation drawn from a generator seeded by (seed, epoch), and a
    batch that crosses an epoch boundary continues into the next permutation. Because no state
    is carried between steps, a resumed run sees exactly the batches it would have seen.
    """

    def __init__(self, num_images: int, batch_size: int, seed: int) -> None:
        self.num_images, self.batch_size, self.seed = num_images, batch_size, seed
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.num_images, generator=generator)
        return self._perm

    def indices(self, step: int) -> Tensor:
        start = step * self.batch_size
        parts, remaining = [], self.batch_size
        while remaining:
            epoch, offset = divmod(start, self.num_images)
            take = min(remaining, self.num_images - offset)
            parts.append(self._permutation(epoch)[offset:offset + take])
            start, remaining = start + take, remaining - take
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def to_model_range(images: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1], the generator's tanh range."""
    return images.to(dtype).mul_(2.0 / 255.0).sub_(1.0)


def random_flip(images: Tensor, generator: torch.Generator | None) -> Tensor:
    """Flip each image horizontally with probability 1/2."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)
