"""The outputs of a finished run: sample grids, the loss curve, model.pt and the model card."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import torch

from gan_augment import __version__
from gan_augment.gan.checkpoint import save_model, write_model_card
from gan_augment.gan.visualize import loss_curve_png, sample_grid_png
from gan_augment.io.fsio import atomic_write_bytes, basename, redact_url
from gan_augment.layout import SAMPLES_DIR, card_file, model_file, samples_file

if TYPE_CHECKING:
    from gan_augment.training.trainer import TrainResult


class CardMixin:
    """The `Trainer`'s samples, model and model card."""

    @torch.no_grad()
    def _write_samples(self, name: str) -> str:
        url = samples_file(self.model_dir, f"{name}.png")
        if not self.dist.is_main:
            return url
        images = self.state.ema(self.fixed_noise)  # (64, C, S, S)
        atomic_write_bytes(url, sample_grid_png(images), self.storage_options)
        atomic_write_bytes(samples_file(self.model_dir, "loss_curve.png"),
                           loss_curve_png(self.state.history, title=self.dataset), self.storage_options)
        return url

    def _finish(self, row: dict[str, float], seconds: float, images_per_second: float) -> TrainResult:
        files = {"samples": self._write_samples("final"), "loss_curve": samples_file(self.model_dir, "loss_curve.png"),
                 "model": model_file(self.model_dir), "card": card_file(self.model_dir)}
        metrics = {k: v for k, v in row.items() if k != "step"}
        if self.resumed_from != self.state.step:
            metrics.update(seconds=seconds, images_per_second=images_per_second)
        from gan_augment.training.trainer import TrainResult

        result = TrainResult(self.model_dir, self.model_id, self.dataset, self.state.step, len(self.cache),
                             self.resumed_from, seconds, images_per_second, metrics, files)
        if not self.dist.is_main:
            return result
        save_model(self.model_dir, self.state.ema, self.state.discriminator, model_id=self.model_id,
                   dataset=self.dataset, extra={"step": self.state.step}, storage_options=self.storage_options)
        card = {
            "format": "gan-augment/model-card",
            "model_id": self.model_id,
            "dataset": self.dataset,
            "source": redact_url(self.source),
            "data_fingerprint": self.cache.fingerprint,
            "num_images": len(self.cache),
            "skipped_images": len(self.cache.skipped),
            "model_config": self.mc.to_dict(),
            "train_config": self.tc.to_dict(),
            "steps": self.state.step,
            "epochs": self.state.step * self.images_per_step / len(self.cache),
            "world_size": self.dist.world_size,
            "resumed_from": self.resumed_from,
            "nan_rollbacks": self.state.nan_rollbacks,
            "metrics": metrics,
            "device": str(self.device),
            "precision": "bf16 autocast" if self.amp else "fp32",
            "versions": {"gan_augment": __version__, "torch": torch.__version__, "python": platform.python_version()},
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": {k: basename(v) if k == "model" else f"{SAMPLES_DIR}/{basename(v)}" for k, v in files.items()
                      if k != "card"},
        }
        write_model_card(self.model_dir, card, self.storage_options)
        return result
