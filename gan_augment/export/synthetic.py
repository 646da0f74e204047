"""`SyntheticDataset`: samples of trained DCGAN generators as a torch `Dataset`, following the
determinism rule of `sampling` (per-sample seeds, fixed generator blocks, PNG quantisation, an
epoch-derived seed for fresh samples each epoch), and samples read back from an exported
synthetic table. With several generators it is labelled the way torchvision's ImageFolder is
(`classes`, `class_to_idx`, `targets`, `target_transform`).
"""

from __future__ import annotations

import bisect
import functools
import io
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from gan_augment.export.parts import GeneratedPart, StoredPart
from gan_augment.gan.checkpoint import TrainedModel, as_trained_model
from gan_augment.gan.pixels import to_model_range
from gan_augment.gan.sampling import BLOCK_SIZE
from gan_augment.io.fsio import redact_url
from gan_augment.io.tables import read_synthetic

CACHE_BYTES = 256 * 2**20
OUTPUTS = ("float", "signed", "uint8", "pil")

ModelSource = str | TrainedModel


class SyntheticDataset(Dataset):
    """Generated samples of one trained DCGAN, or of one generator per class.

    `ds[i]` is a pure function of (model, seed, epoch, i) (the rule is in `sampling`), and of
    its label for a class-conditional model:
    identical across processes, DataLoader workers and repeated calls, and equal to the row with
    `index` i of `export_samples(model, ..., seed=epoch_seed(seed, epoch))` after PNG
    quantisation; epoch 0 (the default) is the run with `seed` itself. Generation is
    batched: every block of `block_size` samples is one generator forward, kept in a small LRU
    cache, and a DataLoader batch arrives through `__getitems__` in one call. Give a DataLoader
    a `batch_size` that divides `block_size` (or a multiple of it) and, with several workers,
    `persistent_workers=True`, so that each block is generated once per worker.

    Args:
        model: a model directory `OUT/<dataset>/model` (any fsspec URL), a `TrainedModel`, or a
            mapping {label: model} for one generator per class, which makes `ds[i]` an
            `(image, label)` pair; samples are ordered by label, in the mapping's order. Key it
            by ImageFolder's class indices (`{real.class_to_idx["cat"]: model, ...}`) and the
            labels and `targets` are ImageFolder's.
        num_samples: samples of a single unconditional model.
        num_samples_per_model: samples of each model of a mapping: one int, or {label: int}.
        labels: with a class-conditional model (one trained with labels), the classes to sample,
            by name (`model.classes`; ints are taken as their string names); None is every class.
            `ds[i]` is then an `(image, label)` pair, samples ordered by label in this order.
        num_samples_per_class: samples of each class of a class-conditional model: one int, or
            {label: int}. Sample j of class k is the same in any dataset that asks for class k
            with the same seed (`SyntheticDataset(model, labels=[k], ...)[j]`).
        seed: the run's seed in [0, 2**31); each model of a mapping uses it, so the samples of
            label `k` are exactly `SyntheticDataset(model_k, n_k, seed=seed)`.
        transform: applied to each image after the conversion to `output` (torchvision
            transforms v2 accept every output kind).
        target_transform: applied to each label (e.g. `ds.class_to_idx.__getitem__` to turn
            labels into indices 0..K-1); `targets` stay untransformed, as in torchvision.
        label: with a single unconditional model, return `(image, label)` pairs with this label.
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
        >>> len(labelled), labelled[15][1], labelled.classes, labelled.targets[15]
        (20, 'other', ['round', 'other'], 'other')
        >>> from gan_augment.gan.sampling import epoch_seed
        >>> labelled.set_epoch(1)  # fresh samples, still a pure function of (model, seed, epoch, index)
        >>> torch.equal(labelled[3][0], SyntheticDataset(trained_model, num_samples=10, seed=epoch_seed(0, 1))[3])
        True

    Attributes:
        classes: the labels, in the mapping's order (`[label]` for a single labelled model,
            `[]` for unlabelled samples).
        class_to_idx: {label: its position in `classes`}.
        targets: the label of every sample, as `ds[i][1]` gives it before `target_transform`
            (None for unlabelled samples): what `WeightedRandomSampler` weights are made from.
        seed, epoch: the run's seed and the epoch whose samples `ds[i]` gives (`set_epoch`).
    """

    def __init__(
        self,
        model: ModelSource | Mapping[Hashable, ModelSource],
        num_samples: int | None = None,
        *,
        num_samples_per_model: int | Mapping[Hashable, int] | None = None,
        labels: Sequence[Hashable] | None = None,
        num_samples_per_class: int | Mapping[Hashable, int] | None = None,
        seed: int = 0,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        label: Hashable | None = None,
        output: str = "float",
        device: str | torch.device = "cpu",
        block_size: int = BLOCK_SIZE,
        image_size: int | None = None,
        channels: int | None = None,
        storage_options: dict[str, Any] | None = None,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block_size={block_size} must be >= 1")
        device = torch.device(device)
        if labels is not None or num_samples_per_class is not None:
            if isinstance(model, Mapping) or num_samples is not None or num_samples_per_model is not None \
                    or label is not None:
                raise ValueError("labels= and num_samples_per_class= are for one class-conditional model; "
                                 "pass no num_samples, num_samples_per_model or label with them")
            loaded = as_trained_model(model, device=device, storage_options=storage_options)
            models, counts, class_of = _conditional_request(loaded, labels, num_samples_per_class)
            labeled = True
        else:
            models, counts, labeled = _unconditional_request(model, num_samples, num_samples_per_model, label)
            class_of = {}
        parts = []
        for key, source in models.items():
            count = counts.get(key)
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                which = f" for {key!r}" if labeled else ""
                raise ValueError(f"the number of samples{which} is {count!r}: give a positive integer")
            loaded = as_trained_model(source, device=device, storage_options=storage_options)
            if loaded.classes and key not in class_of:
                raise ValueError(f"model {loaded.model_id} is class-conditional ({len(loaded.classes)} classes): "
                                 "ask for labels=... and num_samples_per_class=...")
            parts.append(GeneratedPart(loaded, count, seed, block_size, device, cache_bytes, class_of.get(key)))
        self._setup(parts, list(models) if labeled else None, transform, target_transform, output, image_size,
                    channels)
        self.seed, self.block_size = seed, block_size

    @classmethod
    def from_parquet(
        cls,
        url: str,
        *,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        label: Hashable | None = None,
        output: str = "float",
        image_size: int | None = None,
        channels: int | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> SyntheticDataset:
        """Samples read back from an exported synthetic table (a .parquet file or a folder of
        parts), in file order (index order for gan-augment exports). The PNGs are decoded on
        access; arguments are as for the constructor. A table of a class-conditional model
        (every row has a `label`) gives `(image, label)` pairs, grouped by label in the order the
        labels first appear (file order for gan-augment exports); `label=` overrides it.

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
        seeds, name, model_id = table.column("seed").to_pylist(), table.column("dataset")[0].as_py(), \
            table.column("model_id")[0].as_py()
        row_labels = table.column("label").to_pylist() if "label" in table.column_names else [None]
        if label is None and None not in row_labels:  # a class-conditional export: one part per class
            groups: dict[str, list[int]] = {}
            for row, row_label in enumerate(row_labels):
                groups.setdefault(row_label, []).append(row)
            parts = [StoredPart([png[r] for r in rows], [seeds[r] for r in rows], name, model_id, shape,
                                redact_url(url)) for rows in groups.values()]
            labels: list[Hashable] | None = list(groups)
        else:
            parts = [StoredPart(png, seeds, name, model_id, shape, redact_url(url))]
            labels = None if label is None else [label]
        dataset = cls.__new__(cls)
        dataset._setup(parts, labels, transform, target_transform, output, image_size, channels)
        dataset.seed, dataset.block_size = None, None
        return dataset

    def _setup(self, parts: list[Any], labels: list[Hashable] | None, transform: Callable[[Any], Any] | None,
               target_transform: Callable[[Any], Any] | None, output: str, image_size: int | None,
               channels: int | None) -> None:
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
        self.target_transform = target_transform
        self.offsets = np.cumsum([0] + [part.num_samples for part in parts]).tolist()
        # In shared memory, so that DataLoader workers (forked or spawned, persistent or not)
        # see `set_epoch` of the main process at their next batch.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def classes(self) -> list[Hashable]:
        return list(self.labels or [])

    @property
    def class_to_idx(self) -> dict[Hashable, int]:
        return {label: position for position, label in enumerate(self.classes)}

    @functools.cached_property
    def targets(self) -> list[Hashable] | None:
        if self.labels is None:
            return None
        return [label for label, part in zip(self.labels, self.parts) for _ in range(part.num_samples)]

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Serve the samples of `epoch` from now on: the run with `epoch_seed(seed, epoch)`.

        Call it before iterating a DataLoader for that epoch, as with `DistributedSampler`;
        its workers, persistent or not, read it at their next batch. Each sample stays a pure
        function of (model, seed, epoch, index), whatever the workers and their number.

        Raises:
            ValueError: samples read back from a table (`from_parquet`), which have one epoch.
        """
        if self.seed is None:
            raise ValueError("samples read back from a table have one epoch; generate from the model for fresh ones")
        for part in self.parts:
            part.sample_seed(0, epoch)  # validates the epoch
        self._epoch.fill_(epoch)

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
        """Samples `indices` of the current epoch as one (B, C, S, S) uint8 tensor, before
        `output` and `transform`."""
        epoch = self.epoch  # read once: a batch never straddles two epochs
        located = [self._locate(int(index)) for index in indices]
        out = torch.empty((len(located), *self.parts[0].shape), dtype=torch.uint8)
        for part in {p for p, _ in located}:
            positions = [k for k, (p, _) in enumerate(located) if p == part]
            out[positions] = self.parts[part].images([located[k][1] for k in positions], epoch)
        return out

    def sample_seed(self, index: int) -> int:
        """The `seed` column value of sample `index` of the current epoch (see `sample_seed`)."""
        part, local = self._locate(index)
        return self.parts[part].sample_seed(local, self.epoch)

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
        labels = [self.labels[self._locate(int(index))[0]] for index in indices]
        if self.target_transform is not None:
            labels = [self.target_transform(label) for label in labels]
        return list(zip(items, labels))

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])[0]


def _unconditional_request(model: ModelSource | Mapping[Hashable, ModelSource], num_samples: int | None,
                           per_model: int | Mapping[Hashable, int] | None, label: Hashable | None
                           ) -> tuple[dict[Hashable, ModelSource], Mapping[Hashable, Any], bool]:
    """({label: model}, {label: count}, whether samples are labelled) of a request to one
    unconditional model or to a mapping of models."""
    if isinstance(model, Mapping):
        if num_samples is not None or label is not None:
            raise ValueError("with a mapping {label: model}, pass num_samples_per_model (the labels are the keys)")
        if not model:
            raise ValueError("the mapping {label: model} is empty")
        counts = per_model if isinstance(per_model, Mapping) else {key: per_model for key in model}
        return dict(model), counts, True
    if (num_samples is None) == (per_model is None) or isinstance(per_model, Mapping):
        raise ValueError("pass num_samples (or num_samples_per_model as one int) for a single model")
    return {label: model}, {label: num_samples if num_samples is not None else per_model}, label is not None


def _conditional_request(model: TrainedModel, labels: Sequence[Hashable] | None,
                         per_class: int | Mapping[Hashable, int] | None
                         ) -> tuple[dict[str, TrainedModel], dict[str, Any], dict[str, int]]:
    """({label: model}, {label: count}, {label: class index}) of a request to a class-conditional model."""
    if not model.classes:
        raise ValueError(f"model {model.model_id} is not class-conditional: it was trained without labels; use "
                         "num_samples (or train with labels for class-conditional samples)")
    if per_class is None:
        raise ValueError("pass num_samples_per_class for a class-conditional model")
    names = list(model.classes) if labels is None else [str(label) for label in labels]
    unknown = [name for name in names if name not in model.classes]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"labels {names} are not distinct classes of model {model.model_id} "
                         f"(unknown: {unknown}); its classes are {model.classes}")
    counts = {str(k): v for k, v in per_class.items()} if isinstance(per_class, Mapping) else \
        {name: per_class for name in names}
    return {name: model for name in names}, counts, {name: model.classes.index(name) for name in names}
