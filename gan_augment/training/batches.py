"""Training batches: indices as a pure function of (seed, step), random flips, and the real
batches a training step reads."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from gan_augment.gan.pixels import to_model_range


class BatchSampler:
    """Batch indices as a pure function of (seed, step).

    Each epoch is a fresh permutation drawn from a generator seeded by (seed, epoch), and a
    batch that crosses an epoch boundary continues into the next permutation. Because no state
    is carried between steps, a resumed run sees exactly the batches it would have seen.
    """

    def __init__(self, num_images: int, batch_size: int, seed: int, device: torch.device | str = "cpu") -> None:
        self.num_images, self.batch_size, self.seed, self.device = num_images, batch_size, seed, torch.device(device)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            # Drawn on the CPU (the same permutation on every device), then moved once per epoch,
            # so a GPU step indexes its cache without a host-to-device copy, i.e. without a sync.
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            permutation = torch.randperm(self.num_images, generator=generator)
            self._epoch, self._perm = epoch, permutation.to(self.device)
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


def random_flip(images: Tensor, generator: torch.Generator | None) -> Tensor:
    """Flip each image horizontally with probability 1/2."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


class IndexSampler(Protocol):
    """Which images make each batch: a `BatchSampler`, or one rank's shard of it."""

    def indices(self, step: int) -> Tensor: ...


class RealBatches:
    """The real batches of a run: batch `index` is the sampler's images of step `index`, in the
    model's range [-1, 1], on the training device, in the networks' memory format.

    Args:
        images: the decoded images, (N, C, S, S) uint8; on the training device when it is a GPU,
            so that a batch never crosses the bus.
        sampler: which images make each batch.
        device: the training device.
        flip_rng: when given, each image is flipped horizontally with probability 1/2, drawn
            from this generator (the training RNG, so that a checkpoint restores the flips too).
        memory_format: the memory format the networks run in.
    """

    def __init__(
        self,
        images: Tensor,
        sampler: IndexSampler,
        device: torch.device,
        *,
        flip_rng: torch.Generator | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.images, self.sampler, self.device = images, sampler, device
        self.flip_rng, self.memory_format = flip_rng, memory_format

    def __call__(self, index: int) -> Tensor:
        real = to_model_range(self.images[self.sampler.indices(index)]).to(self.device)  # (B, C, S, S)
        if self.flip_rng is not None:
            real = random_flip(real, self.flip_rng)
        return real.contiguous(memory_format=self.memory_format)

    def labels(self, index: int, labels: Tensor) -> Tensor:
        """The entries of `labels` (N,) (one per image) for the images of batch `index`: (B,)."""
        return labels[self.sampler.indices(index).to(labels.device)]
