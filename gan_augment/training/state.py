"""What a checkpoint holds, whether it can be resumed, and the rollback after a non-finite loss."""

from __future__ import annotations

import logging
from typing import Any

import torch

from gan_augment.gan.checkpoint import list_checkpoints, load_latest_checkpoint, save_checkpoint
from gan_augment.io.fsio import redact_url, remove

log = logging.getLogger(__name__)


class TrainingDivergedError(RuntimeError):
    """Losses stayed non-finite after every allowed rollback."""


class StateMixin:
    """The `Trainer`'s checkpoint state."""

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit for bit (weights and plain values)."""
        return {
            "step": self.step,
            "model_config": self.mc.to_dict(),
            "train_config": self.tc.to_dict(),
            "data_fingerprint": self.cache.fingerprint,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": {
                "train": self.rng.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            },
            "history": self.history,
            "nan_rollbacks": self.nan_rollbacks,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.rng.set_state(state["rng"]["train"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.nan_rollbacks = state["nan_rollbacks"]

    def _compatible(self, state: dict[str, Any]) -> str | None:
        """Why a checkpoint cannot be resumed here, or None if it can."""
        if state["model_config"] != self.mc.to_dict():
            return "it was made with another model config"
        if state["data_fingerprint"] != self.cache.fingerprint:
            return "the data changed since"
        return None

    def _delete_checkpoints(self) -> None:
        if not self.dist.is_main:
            return
        for _, url in list_checkpoints(self.checkpoint_dir, self.storage_options):
            remove(url, self.storage_options)

    def _resume(self, resume: bool) -> None:
        state = load_latest_checkpoint(self.checkpoint_dir, self.storage_options, self.device) if resume else None
        reason = self._compatible(state) if state is not None else None
        self.dist.barrier()  # every rank has read the same checkpoints before rank 0 may delete them
        if state is not None and reason is None:
            self.load_state_dict(state)
            self.resumed_from = self.step
            log.info("resumed %s from its checkpoint at step %d", self.dataset, self.step)
            return
        if reason:
            log.warning("not resuming from %s: %s; starting over", redact_url(self.checkpoint_dir), reason)
        self._delete_checkpoints()
        self._save_checkpoint()  # step 0: the NaN guard always has a good state to return to

    def _start_ranks(self) -> None:
        """Data-parallel start: rank 0's weights everywhere, and per-rank noise, augmentation
        and dropout streams (a checkpoint holds rank 0's RNG states only)."""
        if not self.dist.enabled:
            return
        self.dist.broadcast_modules(self.generator, self.discriminator, self.ema)
        seed = self.dist.rank_seed(self.tc.seed, self.step)
        self.rng.manual_seed(seed)
        torch.manual_seed(seed)

    def _save_checkpoint(self) -> None:
        if self.dist.is_main:
            save_checkpoint(self.checkpoint_dir, self.state_dict(), self.tc.keep_checkpoints, self.storage_options)
        self.dist.barrier()  # no rank may roll back to a checkpoint that is still being written

    def _weights_finite(self) -> bool:
        params = [p for m in (self.generator, self.discriminator) for p in m.parameters()]
        return bool(torch.stack(torch._foreach_norm(params)).isfinite().all())

    def _roll_back(self) -> None:
        """Return to the last good checkpoint with a smaller learning rate, or give up."""
        self.nan_rollbacks += 1
        if self.nan_rollbacks > self.tc.max_nan_rollbacks:
            raise TrainingDivergedError(
                f"training of {self.dataset} diverged (non-finite loss) {self.nan_rollbacks} times; "
                f"the last good checkpoint stays in {redact_url(self.checkpoint_dir)}. Try a lower --lr "
                "or another --loss."
            )
        rollbacks = self.nan_rollbacks
        state = load_latest_checkpoint(self.checkpoint_dir, self.storage_options, self.device)
        assert state is not None, "the step-0 checkpoint is written before training starts"
        self.load_state_dict(state)
        self.nan_rollbacks = rollbacks
        for optimizer in (self.opt_g, self.opt_d):
            for group in optimizer.param_groups:
                group["lr"] *= self.tc.nan_lr_factor
        log.warning("non-finite loss in %s: rolled back to step %d, learning rate now %.3g (rollback %d of %d)",
                    self.dataset, self.step, self.opt_d.param_groups[0]["lr"], rollbacks, self.tc.max_nan_rollbacks)
        self._start_ranks()
