"""The two kinds of sample source behind `SyntheticDataset`: a generator's samples, made block by
block by the determinism rule of `sampling`, and samples read back from a synthetic table."""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from gan_augment.gan.checkpoint import TrainedModel
from gan_augment.gan.models import inference_copy
from gan_augment.gan.sampling import epoch_seed, generate_block, sample_seed


class GeneratedPart:
    """`num_samples` samples of one generator, generated block by block into a small LRU cache
    keyed by (run seed, block): the run seed is the epoch's (`sampling.epoch_seed`). A
    class-conditional model's part is one class's samples (`class_index`)."""

    def __init__(self, model: TrainedModel, num_samples: int, seed: int, block_size: int,
                 device: torch.device, cache_bytes: int, class_index: int | None = None) -> None:
        generator = inference_copy(model.generator, device)
        config = model.model_config
        self.generator, self.num_samples, self.seed, self.block_size = generator, num_samples, seed, block_size
        self.class_index = class_index
        self.dataset, self.model_id = model.dataset, model.model_id
        self.shape = (config.channels, config.image_size, config.image_size)
        self.max_blocks = max(1, cache_bytes // (block_size * int(np.prod(self.shape))))
        self.blocks: OrderedDict[tuple[int, int], Tensor] = OrderedDict()
        sample_seed(seed, num_samples - 1)  # validates the seed and the range up front

    def block(self, run_seed: int, block: int) -> Tensor:
        key = (run_seed, block)
        if key in self.blocks:
            self.blocks.move_to_end(key)
        else:
            self.blocks[key] = generate_block(self.generator, run_seed, block, self.block_size, self.class_index)
            while len(self.blocks) > self.max_blocks:
                self.blocks.popitem(last=False)
        return self.blocks[key]

    def images(self, indices: Sequence[int], epoch: int = 0) -> Tensor:
        """(B, C, S, S) uint8 copies of samples `indices` of `epoch`, one generator batch per
        block touched."""
        run_seed = epoch_seed(self.seed, epoch)
        out = torch.empty((len(indices), *self.shape), dtype=torch.uint8)
        by_block: dict[int, list[int]] = {}
        for position, index in enumerate(indices):
            by_block.setdefault(index // self.block_size, []).append(position)
        for block, positions in by_block.items():
            offsets = torch.tensor([indices[p] - block * self.block_size for p in positions])
            out[positions] = self.block(run_seed, block)[offsets]
        return out

    def sample_seed(self, index: int, epoch: int = 0) -> int:
        return sample_seed(epoch_seed(self.seed, epoch), index)


class StoredPart:
    """Samples read back from a synthetic Parquet table: PNG bytes, decoded on access. They are
    what they are: one epoch only."""

    def __init__(self, png: list[bytes], seeds: list[int], dataset: str, model_id: str,
                 shape: tuple[int, int, int], url: str) -> None:
        self.png, self.seeds, self.dataset, self.model_id = png, seeds, dataset, model_id
        self.shape, self.url = shape, url
        self.num_samples = len(png)

    def images(self, indices: Sequence[int], epoch: int = 0) -> Tensor:
        assert epoch == 0, "a stored table has one epoch"
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

    def sample_seed(self, index: int, epoch: int = 0) -> int:
        return self.seeds[index]
