"""The state of a training run and its checkpoints: what a checkpoint holds, whether it can be
resumed, and the rollback to the last good one after a non-finite loss."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.gan.checkpoint import list_checkpoints, load_latest_checkpoint, save_checkpoint
from gan_augment.gan.models import Discriminator, Generator, build_models
from gan_augment.io.fsio import redact_url, remove
from gan_augment.layout import checkpoints_dir
from gan_augment.training.distributed import DistributedContext
from gan_augment.training.finish import build_finisher

log = logging.getLogger(__name__)

# What a step reports: D's and G's losses, and D's mean output on real and on generated images.
METRICS = ("loss_d", "loss_g", "d_real", "d_fake")


class TrainingDivergedError(RuntimeError):
    """Losses stayed non-finite after every allowed rollback."""


def empty_history() -> dict[str, list[float]]:
    """The metrics history of a run that has logged nothing yet: one list per column."""
    return {key: [] for key in ("step", *METRICS, "images_per_second")}


@dataclass
class TrainingState:
    """Everything a training run changes as it goes; with the configs and the data fingerprint,
    everything a checkpoint holds, so that a resumed run continues bit for bit.

    Attributes:
        generator: G, in training.
        discriminator: D, in training.
        ema: the exponential moving average of G's weights, which samples and is saved as G.
        opt_g: G's optimiser.
        opt_d: D's optimiser.
        rng: the training generator, on the training device: noise, flips, augmentations and
            random views all draw from it.
        step: G steps done.
        nan_rollbacks: rollbacks after a non-finite loss so far.
        history: every logged metrics row, one list per column.
        labels: a class-conditional run's class index of every training image (-1: none yet),
            on the training device; pseudo-labels change it once during the run. None in an
            unconditional run.
        finisher, opt_finisher: with `TrainConfig.finish_steps`, the critic G trains against
            after the recipe's steps, and its optimiser (`training.finish`); None otherwise.
    """

    generator: Generator
    discriminator: Discriminator
    ema: Generator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    rng: torch.Generator
    step: int = 0
    nan_rollbacks: int = 0
    history: dict[str, list[float]] = field(default_factory=empty_history)
    labels: torch.Tensor | None = None
    finisher: torch.nn.Module | None = None
    opt_finisher: torch.optim.Optimizer | None = None

    @classmethod
    def initial(cls, model_config: ModelConfig, train_config: TrainConfig, device: torch.device,
                memory_format: torch.memory_format = torch.contiguous_format) -> TrainingState:
        """The state at step 0: networks initialised from `train_config.seed`, on `device` in
        `memory_format`, with fresh Adam optimisers."""
        torch.manual_seed(train_config.seed)  # weight init and dropout draw from the global RNG
        generator, discriminator = build_models(model_config)
        ema = copy.deepcopy(generator).requires_grad_(False).eval()
        for module in (generator, discriminator, ema):
            module.to(device, memory_format=memory_format)
        opt_g = torch.optim.Adam(generator.parameters(), lr=train_config.lr,
                                 betas=(train_config.beta1, train_config.beta2))
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=train_config.d_lr,
                                 betas=(train_config.d_beta1, train_config.beta2))
        rng = torch.Generator(device).manual_seed(train_config.seed)
        state = cls(generator, discriminator, ema, opt_g, opt_d, rng)
        if train_config.finish_steps:
            state.finisher, state.opt_finisher = build_finisher(model_config, train_config, device, memory_format)
        return state

    def state_dict(self) -> dict[str, Any]:
        """The state as weights and plain values, the global RNG states included."""
        cuda = self.rng.device.type == "cuda"
        return {
            "step": self.step,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": {
                "train": self.rng.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if cuda else [],
            },
            "history": self.history,
            "nan_rollbacks": self.nan_rollbacks,
            **({"labels": self.labels} if self.labels is not None else {}),
            **({"finisher": self.finisher.state_dict(), "opt_finisher": self.opt_finisher.state_dict()}
               if self.finisher is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state` (a `state_dict`, or a checkpoint holding one)."""
        self.step = state["step"]
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.rng.set_state(state["rng"]["train"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and self.rng.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.nan_rollbacks = state["nan_rollbacks"]
        if self.labels is not None and "labels" in state:
            self.labels.copy_(state["labels"])  # in place: the real batches read this tensor
        if self.finisher is not None:
            self.finisher.load_state_dict(state["finisher"])
            self.opt_finisher.load_state_dict(state["opt_finisher"])

    def weights_finite(self) -> bool:
        """Whether every weight of G, D and the finisher is finite."""
        params = [p for m in (self.generator, self.discriminator, self.finisher) if m is not None
                  for p in m.parameters()]
        return bool(torch.stack(torch._foreach_norm(params)).isfinite().all())

    def start_ranks(self, dist: DistributedContext, seed: int) -> None:
        """Data-parallel start: rank 0's weights everywhere, and per-rank noise, augmentation
        and dropout streams (a checkpoint holds rank 0's RNG states only)."""
        if not dist.enabled:
            return
        dist.broadcast_modules(self.generator, self.discriminator, self.ema)
        rank_seed = dist.rank_seed(seed, self.step)
        self.rng.manual_seed(rank_seed)
        torch.manual_seed(rank_seed)


class Checkpoints:
    """The checkpoints of one run in `model_dir/checkpoints`: rank 0 writes, every rank reads.

    A checkpoint is a `TrainingState` with the model config, the train config and the data
    fingerprint it was made with; a run resumes only one of the same model config and data.
    """

    def __init__(
        self,
        model_dir: str,
        model_config: ModelConfig,
        train_config: TrainConfig,
        data_fingerprint: str,
        *,
        dataset: str,
        device: torch.device,
        storage_options: dict[str, Any] | None = None,
        distributed: DistributedContext | None = None,
    ) -> None:
        self.url = checkpoints_dir(model_dir)
        self.mc, self.tc, self.data_fingerprint = model_config, train_config, data_fingerprint
        self.dataset, self.device, self.storage_options = dataset, device, storage_options
        self.dist = distributed or DistributedContext()

    def checkpoint(self, state: TrainingState) -> dict[str, Any]:
        """What a checkpoint of `state` holds."""
        return {"model_config": self.mc.to_dict(), "train_config": self.tc.to_dict(),
                "data_fingerprint": self.data_fingerprint, **state.state_dict()}

    def incompatibility(self, checkpoint: dict[str, Any]) -> str | None:
        """Why `checkpoint` cannot be resumed by this run, or None if it can."""
        if checkpoint["model_config"] != self.mc.to_dict():
            return "it was made with another model config"
        if checkpoint["data_fingerprint"] != self.data_fingerprint:
            return "the data changed since"
        return None

    def latest(self) -> dict[str, Any] | None:
        """The newest checkpoint that loads, or None."""
        return load_latest_checkpoint(self.url, self.storage_options, self.device)

    def save(self, state: TrainingState) -> None:
        """Checkpoint `state`, keeping the newest `keep_checkpoints` before it."""
        if self.dist.is_main:
            save_checkpoint(self.url, self.checkpoint(state), self.tc.keep_checkpoints, self.storage_options)
        self.dist.barrier()  # no rank may roll back to a checkpoint that is still being written

    def delete_all(self) -> None:
        """Remove every checkpoint of the folder (rank 0 does it)."""
        if not self.dist.is_main:
            return
        for _, url in list_checkpoints(self.url, self.storage_options):
            remove(url, self.storage_options)

    def resume(self, state: TrainingState, resume: bool = True) -> int | None:
        """Load the newest checkpoint into `state` when `resume` and it is compatible; else
        start over from `state` as it is, checkpointed as the only checkpoint.

        Returns:
            The step resumed from, or None when the run starts over.
        """
        checkpoint = self.latest() if resume else None
        reason = self.incompatibility(checkpoint) or _shape_mismatch(state, checkpoint) \
            if checkpoint is not None else None
        self.dist.barrier()  # every rank has read the same checkpoints before rank 0 may delete them
        if checkpoint is not None and reason is None:
            state.load_state_dict(checkpoint)
            log.info("resumed %s from its checkpoint at step %d", self.dataset, state.step)
            return state.step
        if reason:
            log.warning("not resuming from %s: %s; starting over", redact_url(self.url), reason)
        self.delete_all()
        self.save(state)  # step 0: the NaN guard always has a good state to return to
        return None

    def roll_back(self, state: TrainingState) -> None:
        """Return `state` to the last good checkpoint with the learning rates scaled by
        `nan_lr_factor`, on every rank.

        Raises:
            TrainingDivergedError: this would be rollback number `max_nan_rollbacks + 1`.
        """
        state.nan_rollbacks += 1
        if state.nan_rollbacks > self.tc.max_nan_rollbacks:
            raise TrainingDivergedError(
                f"training of {self.dataset} diverged (non-finite loss) {state.nan_rollbacks} times; "
                f"the last good checkpoint stays in {redact_url(self.url)}. Try a lower --lr "
                "or another --loss."
            )
        rollbacks = state.nan_rollbacks
        checkpoint = self.latest()
        assert checkpoint is not None, "the step-0 checkpoint is written before training starts"
        state.load_state_dict(checkpoint)
        state.nan_rollbacks = rollbacks
        for optimizer in (o for o in (state.opt_g, state.opt_d, state.opt_finisher) if o is not None):
            for group in optimizer.param_groups:
                group["lr"] *= self.tc.nan_lr_factor
        log.warning("non-finite loss in %s: rolled back to step %d, learning rate now %.3g (rollback %d of %d)",
                    self.dataset, state.step, state.opt_d.param_groups[0]["lr"], rollbacks,
                    self.tc.max_nan_rollbacks)
        state.start_ranks(self.dist, self.tc.seed)


def _shape_mismatch(state: TrainingState, checkpoint: dict[str, Any]) -> str | None:
    """Why the checkpoint's networks cannot load into `state`'s (same config, other layers: a
    checkpoint of an earlier version of a network), or None."""
    for name in ("generator", "discriminator"):
        ours, theirs = getattr(state, name).state_dict(), checkpoint[name]
        if ours.keys() != theirs.keys() or any(ours[k].shape != theirs[k].shape for k in ours):
            return f"its {name} has other layers (an earlier version's)"
    return None
