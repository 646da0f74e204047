"""`BatchedConcatDataset`: torch's `ConcatDataset` with a `__getitems__`, so that a DataLoader
batch of real and synthetic samples reaches each member dataset in one call.

torch's `ConcatDataset` has no `__getitems__`: its DataLoader fetches a batch one `ds[i]` at a
time, and `SyntheticDataset` then pays its per-call overhead (locating the block, copying one
image, converting one tensor) once per sample instead of once per batch (BENCHMARKS.md,
"Synthetic samples through ConcatDataset").
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from torch.utils.data import ConcatDataset


class BatchedConcatDataset(ConcatDataset):
    """`torch.utils.data.ConcatDataset` whose batches are fetched with one `__getitems__` call
    per member dataset (members without one are read item by item, as `ConcatDataset` does).
    Items, order and indexing are exactly `ConcatDataset`'s.

    Examples:
        >>> import torch
        >>> from torch.utils.data import ConcatDataset, DataLoader
        >>> from gan_augment import SyntheticDataset
        >>> real = [(torch.zeros(1, 16, 16), 0)] * 8  # (image, label) pairs, as ImageFolder gives them
        >>> synthetic = SyntheticDataset(trained_model, num_samples=24, label=1)
        >>> both = BatchedConcatDataset([real, synthetic])
        >>> images, labels = next(iter(DataLoader(both, batch_size=32)))
        >>> images.shape, labels.tolist().count(1)
        (torch.Size([32, 1, 16, 16]), 24)
        >>> torch.equal(both[20][0], ConcatDataset([real, synthetic])[20][0])
        True
    """

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        out: list[Any] = [None] * len(indices)
        members: dict[int, tuple[list[int], list[int]]] = {}  # member -> (positions, its indices)
        for position, index in enumerate(indices):
            member, local = self._locate(int(index))
            positions, local_indices = members.setdefault(member, ([], []))
            positions.append(position)
            local_indices.append(local)
        for member, (positions, local_indices) in members.items():
            dataset = self.datasets[member]
            fetch = getattr(dataset, "__getitems__", None)
            items = fetch(local_indices) if fetch else [dataset[i] for i in local_indices]
            for position, item in zip(positions, items):
                out[position] = item
        return out

    def _locate(self, index: int) -> tuple[int, int]:
        """(member dataset, index within it), as `ConcatDataset.__getitem__` finds them."""
        if index < 0:
            if -index > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            index += len(self)
        member = bisect.bisect_right(self.cumulative_sizes, index)
        return member, index - (self.cumulative_sizes[member - 1] if member else 0)
