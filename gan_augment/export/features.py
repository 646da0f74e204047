"""Discriminator features of real images.

Radford et al. 2015 (section 5.1) use a trained discriminator as a feature extractor: every
block's activation is max-pooled to a 4x4 grid, flattened, and the results are concatenated.
The default here pools to 2x2 instead, which gave the better few-label accuracy in every run
(BENCHMARKS.md, "Few-label features"); `FeatureProtocol(grid=4)` is the paper's protocol.
`config.FeatureProtocol` makes the choice explicit (which blocks, which pooling, which grid) and
is recorded in every features table, so no table is ambiguous about how it was made.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gan_augment.config import FeatureProtocol, ModelConfig
from gan_augment.export.heap import HeapTrimmer
from gan_augment.gan.checkpoint import TrainedModel, as_trained_model
from gan_augment.gan.models import Discriminator, inference_copy
from gan_augment.gan.pixels import to_model_range
from gan_augment.io.fsio import basename, redact_url
from gan_augment.scan.cache import build_cache


def feature_dim(discriminator: Discriminator, protocol: FeatureProtocol) -> int:
    """Length of the feature vector `protocol` makes with `discriminator`."""
    widths = [block[0].out_channels for block in discriminator.blocks]  # block[0] is the block's conv
    return sum(widths[b - 1] for b in protocol.block_numbers(discriminator.config)) * protocol.grid**2


def discriminator_features(discriminator: Discriminator, images: Tensor, protocol: FeatureProtocol) -> Tensor:
    """Features of a batch of images in [-1, 1] (the generator's range), by `protocol`.

    Args:
        discriminator: in eval mode (dropout off, BatchNorm on running statistics).
        images: (B, C, S, S) float tensor on the discriminator's device.

    Returns:
        (B, d) float32 tensor, d = `feature_dim(discriminator, protocol)`.
    """
    return discriminator_outputs(discriminator, images, protocol)[0]


def discriminator_outputs(discriminator: Discriminator, images: Tensor, protocol: FeatureProtocol) -> tuple[Tensor, Tensor]:
    """`discriminator_features` and the real/fake logit of the same forward: (B, d), (B,) float32."""
    activations = discriminator.block_activations(images)  # [(B, C_b, S / 2**b, S / 2**b)]
    pooled = [_pool(activations[b - 1], protocol).flatten(1)  # (B, C_b * grid**2)
              for b in protocol.block_numbers(discriminator.config)]
    logits = discriminator.classifier(activations[-1].flatten(1)).squeeze(1)  # D's forward: (B, C * 4 * 4) -> (B,)
    return torch.cat(pooled, dim=1).float(), logits.float()  # (B, d), (B,)


def _pool(activation: Tensor, protocol: FeatureProtocol) -> Tensor:
    """(B, C, H, W) -> (B, C, grid, grid)."""
    side, grid = activation.shape[-1], protocol.grid
    if side == grid:
        return activation
    if side % grid:
        pool = F.adaptive_max_pool2d if protocol.pooling == "max" else F.adaptive_avg_pool2d
        return pool(activation, grid)
    if protocol.pooling == "avg":
        return F.avg_pool2d(activation, side // grid)
    if activation.device.type == "cpu":
        return _window_max(activation, side // grid)
    return F.max_pool2d(activation, side // grid)


def _window_max(x: Tensor, k: int) -> Tensor:
    """Max over non-overlapping k x k windows, exactly `F.max_pool2d(x, k)`. On CPU with one thread
    it measured 6x faster for a (256, 16, 16, 16) input (1.1 ms vs 6.9 ms), and max_pool2d had
    cost more than the discriminator's convolutions for narrow models."""
    b, c, h, w = x.shape
    rows = x.view(b, c, h // k, k, w)  # (B, C, H/k, k, W)
    out = rows[:, :, :, 0]
    for i in range(1, k):
        out = torch.maximum(out, rows[:, :, :, i])  # (B, C, H/k, W)
    return out.view(b, c, h // k, w // k, k).amax(-1)  # (B, C, H/k, W/k)


class Features:
    """Discriminator features of a set of images, made by `extract_features`.

    The model and the images are resolved (and checked) up front; the discriminator runs when
    the features are first needed: `features` computes all of them at once, `batches()` streams
    them batch by batch (how `tables.export_features` writes tables of any size).

    Attributes:
        uris: the source image of each row.
        skipped: source objects that gave no row, with the reason.
        dataset: the dataset the images belong to.
        model: the model that computes them.
        protocol: how they are computed.
        dim: the length of one feature vector.
        source: the images' URL (credentials removed), or None for an in-memory tensor.
        phashes: each image's perceptual hash from its decode (`scan.phash`), or None (a tensor).
    """

    def __init__(self, model: TrainedModel, images: Tensor, uris: list[str], skipped: dict[str, str], dataset: str,
                 protocol: FeatureProtocol, batch_size: int, device: torch.device, source: str | None = None,
                 phashes: list[int | None] | None = None) -> None:
        self.model, self.images, self.uris, self.skipped, self.dataset = model, images, uris, skipped, dataset
        self.source, self.phashes = source, phashes
        self.protocol, self.batch_size, self.device = protocol, batch_size, device
        self.discriminator = inference_copy(model.discriminator, device)
        self.dim = feature_dim(self.discriminator, protocol)

    def __len__(self) -> int:
        return len(self.uris)

    def batches(self, progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
        """(uris, (B, d) float32 features) per batch, in row order; `progress(done, total)` after each."""
        for rows, features, _ in self.outputs(progress=progress):
            yield [self.uris[row] for row in rows], features

    @torch.no_grad()
    def outputs(self, rows: Sequence[int] | None = None, progress: Callable[[int, int], None] | None = None,
                ) -> Iterator[tuple[range | Sequence[int], np.ndarray, np.ndarray]]:
        """(row indices, (B, d) features, (B,) real/fake logits) per batch of `rows` (default: all, in order)."""
        rows = range(len(self)) if rows is None else rows
        trim_heap = HeapTrimmer()
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start:start + self.batch_size]
            batch = self.images[chunk if isinstance(chunk, range) else list(chunk)].to(self.device)
            batch = to_model_range(batch) if batch.dtype == torch.uint8 else batch.float()  # (B, C, S, S)
            features, logits = discriminator_outputs(self.discriminator, batch, self.protocol)  # (B, d), (B,)
            trim_heap()  # what the forward freed (export.heap)
            if progress:
                progress(min(start + self.batch_size, len(rows)), len(rows))
            yield chunk, features.cpu().numpy(), logits.cpu().numpy()

    @functools.cached_property
    def features(self) -> np.ndarray:
        """(N, d) float32 array; row k belongs to `uris[k]`."""
        out = np.empty((len(self), self.dim), dtype=np.float32)  # (N, d)
        for k, (_, batch) in enumerate(self.batches()):
            out[k * self.batch_size:k * self.batch_size + len(batch)] = batch
        return out


def _read_store(
    source: str, uris: Sequence[str] | None, config: ModelConfig, storage_options: dict[str, Any] | None,
    manifest: str | None,
) -> tuple[Tensor, list[str], dict[str, str], list[int | None]]:
    """Decode the images under `source` at the model's size (objects the manifest rejected are
    not read, those it called ok but that fail to decode are written back into it); with
    `uris`, keep exactly those and record the ones that gave no image. Also returns each kept
    image's perceptual hash."""
    cache = build_cache(source, config.image_size, config.channels, storage_options, manifest=manifest,
                        found_in="features", **config.decode_options)
    phashes = cache.phashes or [None] * len(cache.uris)
    if uris is None:
        return cache.images, list(cache.uris), dict(cache.skipped), list(phashes)
    row_of = {uri: row for row, uri in enumerate(cache.uris)}
    wanted = list(dict.fromkeys(uris))
    rows = [row_of[uri] for uri in wanted if uri in row_of]
    skipped = {uri: cache.skipped.get(uri, f"not an image under {redact_url(source)}")
               for uri in wanted if uri not in row_of}
    return cache.images[rows], [cache.uris[row] for row in rows], skipped, [phashes[row] for row in rows]


def extract_features(
    model: str | TrainedModel,
    images: str | Tensor | np.ndarray,
    *,
    uris: Sequence[str] | None = None,
    manifest: str | None = None,
    dataset: str | None = None,
    protocol: FeatureProtocol | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    storage_options: dict[str, Any] | None = None,
) -> Features:
    """Discriminator features of real images: the discriminator in eval mode, batched, no grad.

    Args:
        model: a model directory `OUT/<dataset>/model` (any fsspec URL) or a `TrainedModel`.
        images: a folder/prefix of images (any fsspec URL), decoded at the model's size by the
            training decode path, undecodable objects skipped and recorded; or a (N, C, S, S)
            tensor/array, uint8 in [0, 255] or float in [-1, 1].
        uris: with a URL, only these objects; with a tensor, one name per image (default:
            "0", "1", ...).
        manifest: with a URL, the dataset's manifest from `scan_store`: only its `ok` objects
            are read, objects it does not know are judged on the fly by the same rules, and
            `ok` objects that fail to decode are recorded in it (`found_in` "features").
        dataset: the images' dataset name (default: the URL's last component, or the model's).
        protocol: the feature protocol (default: `FeatureProtocol()`, every block max-pooled to 2x2).
        batch_size: images per discriminator forward.
        device: where the discriminator runs.
        storage_options: fsspec options for the model and the images.

    Returns:
        `Features`: `.features` is the (N, d) array, `.uris` the image of each row.

    Raises:
        FileNotFoundError: no model, or no images under the URL.
        ValueError: a damaged model, images of another shape than the model's, no decodable
            image, or a protocol this discriminator cannot serve.

    Examples:
        >>> features = extract_features(trained_model, f"{store}/shapes")
        >>> features.features.shape, features.features.dtype.name  # (N, d): every block pooled to 2x2
        ((24, 96), 'float32')
        >>> features.uris[0].endswith("shapes/00.png")
        True
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    protocol, device = protocol or FeatureProtocol(), torch.device(device)
    model = as_trained_model(model, device=device, storage_options=storage_options)
    config = model.model_config
    protocol.block_numbers(config)  # a protocol this model cannot serve fails before any read
    if isinstance(images, str):
        pixels, uris, skipped, phashes = _read_store(images, uris, config, storage_options, manifest)
        return Features(model, pixels, uris, skipped, dataset or basename(images), protocol, batch_size, device,
                        source=redact_url(images), phashes=phashes)
    pixels = torch.as_tensor(images)
    expected = (config.channels, config.image_size, config.image_size)
    if pixels.ndim != 4 or tuple(pixels.shape[1:]) != expected:
        raise ValueError(f"images have shape {tuple(pixels.shape)}, but this model takes (N, C, S, S) = "
                         f"(N, {', '.join(map(str, expected))}); resize them or use the model trained for their size")
    uris = list(uris) if uris is not None else [str(k) for k in range(len(pixels))]
    if len(uris) != len(pixels):
        raise ValueError(f"{len(uris)} uris for {len(pixels)} images: give one per image")
    return Features(model, pixels, uris, {}, dataset or model.dataset, protocol, batch_size, device)
