"""What a run leaves besides its checkpoints: the model id, sample grids and the loss curve,
and the model card that describes model.pt."""

from __future__ import annotations

import hashlib
import platform
from datetime import datetime, timezone
from typing import Any

import torch
from torch import Tensor

from gan_augment import __version__
from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.gan.models import Generator
from gan_augment.gan.visualize import loss_curve_png, sample_grid_png
from gan_augment.io.fsio import atomic_write_bytes, basename, redact_url
from gan_augment.layout import SAMPLES_DIR, card_file, model_file, samples_file
from gan_augment.scan.cache import ImageCache


def model_id(dataset: str, data_fingerprint: str, model_config: ModelConfig, train_config: TrainConfig) -> str:
    """The id of the model a run trains: `<dataset>-<hash>`, the hash of its data and configs,
    so that the same training of the same data always makes the same id."""
    key = f"{data_fingerprint}\0{model_config.to_json()}\0{train_config.to_json()}"
    return f"{dataset}-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def output_files(model_dir: str) -> dict[str, str]:
    """The URLs of a finished run's outputs: final samples, loss curve, model and card."""
    return {"samples": samples_file(model_dir, "final.png"), "loss_curve": samples_file(model_dir, "loss_curve.png"),
            "model": model_file(model_dir), "card": card_file(model_dir)}


@torch.no_grad()
def write_samples(
    model_dir: str,
    name: str,
    generator: Generator,
    noise: Tensor,
    history: dict[str, list[float]],
    *,
    title: str,
    storage_options: dict[str, Any] | None = None,
    labels: Tensor | None = None,
) -> str:
    """Write `generator`'s images of `noise` as the grid `samples/<name>.png`, and the loss curve
    of `history` as `samples/loss_curve.png`; returns the grid's URL. A class-conditional
    generator gets `labels`, 8 samples of each class in turn: the grid has one row per class."""
    url = samples_file(model_dir, f"{name}.png")
    images = generator(noise, labels)  # (N, C, S, S)
    atomic_write_bytes(url, sample_grid_png(images, columns=8 if labels is not None else None), storage_options)
    atomic_write_bytes(samples_file(model_dir, "loss_curve.png"), loss_curve_png(history, title=title),
                       storage_options)
    return url


def model_card(
    cache: ImageCache,
    model_config: ModelConfig,
    train_config: TrainConfig,
    *,
    model_id: str,
    dataset: str,
    source: str,
    steps: int,
    images_per_step: float,
    world_size: int,
    resumed_from: int | None,
    nan_rollbacks: int,
    metrics: dict[str, float],
    device: torch.device,
    amp: bool,
    files: dict[str, str],
) -> dict[str, Any]:
    """The model card of a finished run: where the model came from and how it was trained.

    Args:
        cache: the images it was trained on.
        model_config: the model config as trained (`effective_model_config`).
        train_config: the train config.
        model_id: the model's id (`model_id`).
        dataset: the dataset name.
        source: the URL the images were read from; its credentials are left out.
        steps: G steps trained.
        images_per_step: real images a G step sees, over all ranks (the mean over the run's
            steps: a finishing step, `TrainConfig.finish_steps`, sees fewer).
        world_size: the number of data-parallel processes.
        resumed_from: the step this run resumed from, or None.
        nan_rollbacks: rollbacks after a non-finite loss.
        metrics: the last metrics row (and the run's seconds and img/s).
        device: the training device.
        amp: whether the forward passes ran under bf16 autocast.
        files: the run's outputs (`output_files`); the card lists them relative to the model dir.
    """
    return {
        "format": "gan-augment/model-card",
        "model_id": model_id,
        "dataset": dataset,
        "source": redact_url(source),
        "data_fingerprint": cache.fingerprint,
        "num_images": len(cache),
        "skipped_images": len(cache.skipped),
        "model_config": model_config.to_dict(),
        "train_config": train_config.to_dict(),
        "steps": steps,
        "epochs": steps * images_per_step / len(cache),
        "world_size": world_size,
        "resumed_from": resumed_from,
        "nan_rollbacks": nan_rollbacks,
        "metrics": metrics,
        "device": str(device),
        "precision": "bf16 autocast" if amp else "fp32",
        "versions": {"gan_augment": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": {k: basename(v) if k == "model" else f"{SAMPLES_DIR}/{basename(v)}" for k, v in files.items()
                  if k != "card"},
    }
