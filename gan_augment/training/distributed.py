"""Data-parallel training of one large dataset on several GPUs (or CPU processes), launched by
`torchrun --nproc-per-node G -m gan_augment.cli train ...`.

Every process (rank) holds a full replica of G and D and trains on its own shard of each
global batch; gradients are averaged across ranks after every backward, so the replicas stay
identical; rank 0 alone writes checkpoints, samples, the model and its card.

Gradients are averaged with one explicit all-reduce per network and update, as StyleGAN2-ADA's
training loop does (Karras et al. 2020, `training_loop.py`), rather than by wrapping the
networks in `DistributedDataParallel`: a GAN step runs D several times before one backward,
differentiates through D for G's loss, and the gradient penalty and the unrolled loss need
double backward or functional calls, none of which DDP's reducer supports cleanly.

A `DistributedContext()` with the defaults is a single process: every method is then a no-op,
so the trainer calls them unconditionally.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gan_augment.training.batches import BatchSampler


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a data-parallel run.

    Attributes:
        rank: this process's index among all processes, 0 is the one that writes.
        world_size: the number of processes; 1 is an ordinary single-process run.
        local_rank: this process's index on its machine; it picks the GPU.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistributedContext:
        """The context torchrun describes in RANK, WORLD_SIZE and LOCAL_RANK; a single process
        when they are unset."""
        try:
            return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get("LOCAL_RANK", 0)))
        except ValueError:
            raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers; launch with torchrun") from None

    # -- collectives (no-ops in a single process) ---------------------------------------------

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def average_gradients(self, module: nn.Module) -> None:
        """Replace each gradient of `module` by its mean over all ranks: one flat all-reduce
        per call, so one network costs one collective, whatever its number of tensors."""
        if not self.enabled:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])  # (sum of numels,)
        dist.all_reduce(flat)
        flat.div_(self.world_size)
        for grad, averaged in zip(grads, flat.split([g.numel() for g in grads])):
            grad.copy_(averaged.view_as(grad))

    def average(self, values: Tensor) -> Tensor:
        """`values` averaged over all ranks (metrics: every rank then logs the same row and
        takes the same NaN-rollback decision)."""
        if not self.enabled:
            return values
        values = values.clone()
        dist.all_reduce(values)
        return values.div_(self.world_size)

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when `flag` is true on any, so all ranks stop at the same step."""
        if not self.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def broadcast_modules(self, *modules: nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank (as DDP does on construction)."""
        if not self.enabled:
            return
        for module in modules:
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the block on rank 0 first, then on the others (e.g. fill a shared decoded cache
        once, then let the other ranks reuse it)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def rank_seed(self, seed: int, step: int) -> int:
        """A seed for this rank's noise, augmentations and dropout from `step` on: distinct
        per rank (ranks must not draw the same z), reproducible for a given world size."""
        return (seed * 1_000_003 + step) * 1_009 + self.rank


def init_distributed(device: str = "auto") -> DistributedContext:
    """Join the process group torchrun set up (NCCL on CUDA, Gloo on CPU) and pin this
    process to its GPU; a single process when not launched by torchrun."""
    context = DistributedContext.from_env()
    if not context.enabled or dist.is_initialized():
        return context
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(context.local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return context


class ShardedBatchSampler:
    """The batches of `BatchSampler`, split across ranks the way `DistributedSampler` splits an
    epoch: every rank draws the same global batch of `batch_size * world_size` indices (same
    seed, same step) and keeps every `world_size`-th one starting at its rank. The shards are
    disjoint and together cover each epoch; each rank trains on `batch_size` images a step."""

    def __init__(self, num_images: int, batch_size: int, seed: int, context: DistributedContext,
                 device: torch.device | str = "cpu") -> None:
        self.context = context
        self.global_sampler = BatchSampler(num_images, batch_size * context.world_size, seed, device)

    def indices(self, step: int) -> Tensor:
        return self.global_sampler.indices(step)[self.context.rank::self.context.world_size]


def shutdown_distributed() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()
