"""`SyntheticDataset`: samples of trained DCGAN generators as a torch `Dataset`, following the
determinism rule of `sampling` (per-sample seeds, fixed generator blocks, PNG quantisation), and
samples read back from an exported synthetic table.
"""

from __future__ import annotations

import bisect
import io
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from gan_augment.gan.checkpoint import TrainedModel, as_trained_model
from gan_augment.gan.models import inference_copy
from gan_augment.gan.pixels import to_model_range
from gan_augment.gan.sampling import BLOCK_SIZE, generate_block, sample_seed
from gan_augment.io.fsio import redact_url
from gan_augment.io.tables import read_synthetic

CACHE_BYTES = 256 * 2**20
OUTPUTS = ("float", "signed", "uint8", "pil")

ModelSource = str | TrainedModel


class _GeneratedPart:
    """`num_samples` samples of one generator, generated block by block into a small LRU cache."""

    def __init__(self, model: TrainedModel, num_samples: int, seed: int, block_size: int,
                 device: torch.device, cache_bytes: int) -> None:
        generator = inference_copy(model.generator, device)
        config = model.model_config
        self.generator, self.num_samples, self.seed, self.block_size = generator, num_samples, seed, block_size
        self.dataset, self.model_id = model.dataset, model.model_id
        self.shape = (config.channels, config.image_size, config.image_size)
        self.max_blocks = max(1, cache_bytes // (block_size * int(np.prod(self.shape))))
        self.blocks: OrderedDict[int, Tensor] = OrderedDict()
        sample_seed(seed, num_samples - 1)  # validates the seed and the range up front

    def block(self, block: int) -> Tensor:
        if block in self.blocks:
            self.blocks.move_to_end(block)
        else:
            self.blocks[block] = generate_block(self.generator, self.seed, block, self.block_size)
            while len(self.blocks) > self.max_blocks:
                self.blocks.popitem(last=False)
        return self.blocks[block]

    def images(self, indices: Sequence[int]) -> Tensor:
        """(B, C, S, S) uint8 copies of samples `indices`, one generator batch per block touched."""
        out = torch.empty((len(indices), *self.shape), dtype=torch.uint8)
        by_block: dict[int, list[int]] = {}
        for position, index in enumerate(indices):
            by_block.setdefault(index // self.block_size, []).append(position)
        for block, positions in by_block.items():
            offsets = torch.tensor([indices[p] - block * self.block_size for p in positions])
            out[positions] = self.block(block)[offsets]
        return out

    def sample_seed(self, index: int) -> int:
        return sample_seed(self.seed, index)


class _StoredPart:
    """Samples read back from a synthetic Parquet table: PNG bytes, decoded on access."""

    def __init__(self, png: list[bytes], seeds: list[int], dataset: str, model_id: str,
                 shape: tuple[int, int, int], url: str) -> None:
        self.png, self.seeds, self.dataset, self.model_id = png, seeds, dataset, model_id
        self.shape, self.url = shape, url
        self.num_samples = len(png)

    def images(self, indices: Sequence[int]) -> Tensor:
        out = torch.empty((len(indices), *self.shape), dtype=torch.uint8)
        for position, index in enumerate(indices):
            try:
                with Image.open(io.BytesIO(self.png[index])) as img:
                    array = np.array(img.convert("L" if self.shape[0] == 1 else "RGB"))  # (H, W[, 3])
            except OSError as exc:
                raise ValueError(f"row {index} of {self.url} holds no decodable PNG: {exc}") from exc
            if array.shape[:2] != self.shape[1:]:
                raise ValueError(f"row {index} of {self.url} is {array.shape[1]}x{array.shape[0]}, but its "
                                 f"width/height columns say {self.shape[2]}x{self.shape[1]}")
            out[position] = torch.from_numpy(array.reshape(*self.shape[1:], -1)).permute(2, 0, 1)  # (C, H, W)
        return out

    def sample_seed(self, index: int) -> int:
        return self.seeds[index]


class SyntheticDataset(Dataset):
    """Generated samples of one trained DCGAN, or of one generator per class.

    `ds[i]` is a pure function of (model, seed, i) (the rule is in `sampling`):
    identical across processes, DataLoader workers and repeated calls, and equal to the row with
    `index` i of `export_samples(model, ..., seed=seed)` after PNG quantisation. Generation is
    batched: every block of `block_size` samples is one generator forward, kept in a small LRU
    cache, and a DataLoader batch arrives through `__getitems__` in one call. Give a DataLoader
    a `batch_size` that divides `block_size` (or a multiple of it) and, with several workers,
    `persistent_workers=True`, so that each block is generated once per worker.

    Args:
        model: a model directory `OUT/<dataset>/model` (any fsspec URL), a `TrainedModel`, or a
            mapping {label: model} for one generator per class, which makes `ds[i]` an
            `(image, label)` pair; samples are ordered by label, in the mapping's order.
        num_samples: samples of a single model.
        num_samples_per_model: samples of each model of a mapping: one int, or {label: int}.
        seed: the run's seed in [0, 2**31); each model of a mapping uses it, so the samples of
            label `k` are exactly `SyntheticDataset(model_k, n_k, seed=seed)`.
        transform: applied to each image after the conversion to `output` (torchvision
            transforms v2 accept every output kind).
        label: with a single model, return `(image, label)` pairs with this label.
        output: "float" (float32 CHW in [0, 1], torchvision's convention), "signed" (float32 CHW
            in [-1, 1], the generator's tanh range), "uint8" (uint8 CHW) or "pil" (PIL image).
        device: where the generator runs; samples match an export made on the same kind of
            device. Keep "cpu" with DataLoader workers (CUDA does not survive their fork).
        block_size: samples per generator batch; part of the determinism rule, keep the default
            to match exports.
        image_size, channels: the image shape the caller expects; a model of another shape is an
            error instead of a silent mismatch downstream.
        storage_options: fsspec options for model URLs.
        cache_bytes: memory for cached generated blocks (uint8), per process.

    Raises:
        FileNotFoundError: no model at a given URL.
        ValueError: a damaged model file, a model of another shape than asked, or bad arguments.

    Examples:
        >>> import torch
        >>> ds = SyntheticDataset(trained_model, num_samples=1_000, seed=0)  # OUT/<dataset>/model
        >>> ds[0].shape, ds[0].dtype
        (torch.Size([1, 16, 16]), torch.float32)
        >>> torch.equal(ds[7], SyntheticDataset(trained_model, num_samples=1_000, seed=0)[7])
        True
        >>> labelled = SyntheticDataset({"round": trained_model, "other": trained_model}, num_samples_per_model=10)
        >>> len(labelled), labelled[15][1]
        (20, 'other')
    """

    def __init__(
        self,
        model: ModelSource | Mapping[Hashable, ModelSource],
        num_samples: int | None = None,
        *,
        num_samples_per_model: int | Mapping[Hashable, int] | None = None,
        seed: int = 0,
        transform: Callable[[Any], Any] | None = None,
        label: Hashable | None = None,
        output: str = "float",
        device: str | torch.device = "cpu",
        block_size: int = BLOCK_SIZE,
        image_size: int | None = None,
        channels: int | None = None,
        storage_options: dict[str, Any] | None = None,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        if isinstance(model, Mapping):
            if num_samples is not None or label is not None:
                raise ValueError("with a mapping {label: model}, pass num_samples_per_model (the labels are the keys)")
            models, labeled = dict(model), True
            if not models:
                raise ValueError("the mapping {label: model} is empty")
            counts = num_samples_per_model if isinstance(num_samples_per_model, Mapping) else \
                {key: num_samples_per_model for key in models}
        else:
            if (num_samples is None) == (num_samples_per_model is None) or isinstance(num_samples_per_model, Mapping):
                raise ValueError("pass num_samples (or num_samples_per_model as one int) for a single model")
            models, labeled = {label: model}, label is not None
            counts = {label: num_samples if num_samples is not None else num_samples_per_model}
        if block_size < 1:
            raise ValueError(f"block_size={block_size} must be >= 1")
        device = torch.device(device)
        parts = []
        for key, source in models.items():
            count = counts.get(key)
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                which = f" for {key!r}" if labeled else ""
                raise ValueError(f"the number of samples{which} is {count!r}: give a positive integer")
            loaded = as_trained_model(source, device=device, storage_options=storage_options)
            parts.append(_GeneratedPart(loaded, count, seed, block_size, device, cache_bytes))
        self._setup(parts, list(models) if labeled else None, transform, output, image_size, channels)
        self.seed, self.block_size = seed, block_size

    @classmethod
    def from_parquet(
        cls,
        url: str,
        *,
        transform: Callable[[Any], Any] | None = None,
        label: Hashable | None = None,
        output: str = "float",
        image_size: int | None = None,
        channels: int | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> SyntheticDataset:
        """Samples read back from an exported synthetic table (a .parquet file or a folder of
        parts), in file order (index order for gan-augment exports). The PNGs are decoded on
        access; arguments are as for the constructor.

        Raises:
            FileNotFoundError: nothing at `url`.
            ValueError: not a synthetic-samples table, or images of mixed sizes.
        """
        table = read_synthetic(url, storage_options)
        if table.num_rows == 0:
            raise ValueError(f"{redact_url(url)} holds no synthetic samples")
        widths, heights = set(table.column("width").to_pylist()), set(table.column("height").to_pylist())
        if len(widths) != 1 or len(heights) != 1:
            raise ValueError(f"{redact_url(url)} mixes image sizes "
                             f"(widths {sorted(widths)}, heights {sorted(heights)})")
        png = table.column("image").combine_chunks().field("bytes").to_pylist()
        with Image.open(io.BytesIO(png[0])) as first:
            depth = 1 if first.mode in ("L", "I", "I;16", "1") else 3
        shape = (depth, heights.pop(), widths.pop())
        part = _StoredPart(png, table.column("seed").to_pylist(), table.column("dataset")[0].as_py(),
                           table.column("model_id")[0].as_py(), shape, redact_url(url))
        dataset = cls.__new__(cls)
        dataset._setup([part], None if label is None else [label], transform, output, image_size, channels)
        dataset.seed, dataset.block_size = None, None
        return dataset

    def _setup(self, parts: list[Any], labels: list[Hashable] | None, transform: Callable[[Any], Any] | None,
               output: str, image_size: int | None, channels: int | None) -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output={output!r} is not one of {', '.join(OUTPUTS)}")
        for position, part in enumerate(parts):
            name = f"model {labels[position]!r}" if labels else f"model {part.model_id}"
            c, h, w = part.shape
            if (image_size is not None and (h, w) != (image_size, image_size)) or \
                    (channels is not None and c != channels):
                raise ValueError(f"{name} makes {w}x{h} images with {c} channel(s), not the "
                                 f"{image_size or w}x{image_size or h} with {channels or c} asked for; "
                                 "use a model trained for that shape or change the request")
            if part.shape != parts[0].shape:
                raise ValueError(f"{name} makes {part.shape} (C, H, W) images but the first makes "
                                 f"{parts[0].shape}; one dataset needs one image shape")
        self.parts, self.labels, self.transform, self.output = parts, labels, transform, output
        self.offsets = np.cumsum([0] + [part.num_samples for part in parts]).tolist()

    def __len__(self) -> int:
        return self.offsets[-1]

    def _locate(self, index: int) -> tuple[int, int]:
        """(part, index within the part) of a dataset index."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} samples")
        part = bisect.bisect_right(self.offsets, index) - 1
        return part, index - self.offsets[part]

    def images(self, indices: Sequence[int]) -> Tensor:
        """Samples `indices` as one (B, C, S, S) uint8 tensor, before `output` and `transform`."""
        located = [self._locate(int(index)) for index in indices]
        out = torch.empty((len(located), *self.parts[0].shape), dtype=torch.uint8)
        for part in {p for p, _ in located}:
            positions = [k for k, (p, _) in enumerate(located) if p == part]
            out[positions] = self.parts[part].images([located[k][1] for k in positions])
        return out

    def sample_seed(self, index: int) -> int:
        """The `seed` column value of sample `index` (see `sample_seed`)."""
        part, local = self._locate(index)
        return self.parts[part].sample_seed(local)

    def _convert(self, image: Tensor) -> Any:
        if self.output == "float":
            image = image.float().div_(255.0)
        elif self.output == "signed":
            image = to_model_range(image)
        elif self.output == "pil":
            image = Image.fromarray(image.permute(1, 2, 0).squeeze(2).numpy())
        return self.transform(image) if self.transform is not None else image

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """A DataLoader batch in one call (torch's fetcher uses it when it exists)."""
        images = self.images(indices)
        items = [self._convert(image) for image in images]
        if self.labels is None:
            return items
        return [(item, self.labels[self._locate(int(index))[0]]) for item, index in zip(items, indices)]

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])[0]
