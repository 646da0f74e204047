"""Saving and loading checkpoints, models and model cards.

Everything is written atomically and holds tensors and plain Python values only, so it loads
with `torch.load(weights_only=True)`: no pickle from a store is ever executed.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from gan_augment.config import LEGACY_DECODE, ModelConfig
from gan_augment.gan.models import Discriminator, Generator
from gan_augment.io.fsio import atomic_write_bytes, get_fs, join_url, parent_url, read_bytes, redact_url, remove, retry
from gan_augment.layout import card_file, model_file

log = logging.getLogger(__name__)

MODEL_FORMAT = "gan-augment/model"
CHECKPOINT_FORMAT = "gan-augment/checkpoint"
FORMAT_VERSION = 1
_CHECKPOINT_NAME = re.compile(r"step-(\d{8,})\.pt$")


class UnsafeFileError(ValueError):
    """A file that would need arbitrary unpickling (or is not ours) was refused."""


def save_state(url: str, state: dict[str, Any], storage_options: dict[str, Any] | None = None) -> None:
    """torch.save `state` to `url` atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(url, buffer.getvalue(), storage_options)


def load_state(
    url: str,
    expected_format: str,
    storage_options: dict[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load a file written by `save_state`, refusing anything that needs a full unpickler.

    Raises:
        FileNotFoundError: nothing at `url`.
        UnsafeFileError: the file is not a weights-only torch file of `expected_format`.
    """
    data = read_bytes(url, storage_options)
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - damaged bytes fail the unpickler in many ways (KeyError, ...)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafeFileError(
            f"refusing to load {redact_url(url)}: it does not load with torch.load(weights_only=True) "
            f"({first_line}). Only files written by gan-augment are accepted; re-create it by training."
        ) from exc
    if not isinstance(state, dict) or state.get("format") != expected_format:
        raise UnsafeFileError(f"{redact_url(url)} is not a {expected_format} file")
    if state.get("version", 0) > FORMAT_VERSION:
        raise UnsafeFileError(
            f"{redact_url(url)} has format version {state['version']}; this gan-augment reads up to "
            f"{FORMAT_VERSION}. Upgrade gan-augment."
        )
    return state


def checkpoint_url(checkpoint_dir: str, step: int) -> str:
    return join_url(checkpoint_dir, f"step-{step:08d}.pt")


def list_checkpoints(checkpoint_dir: str, storage_options: dict[str, Any] | None = None) -> list[tuple[int, str]]:
    """(step, url) of every checkpoint in `checkpoint_dir`, newest first."""
    fs, path = get_fs(checkpoint_dir, storage_options)
    try:
        names = retry(lambda: fs.ls(path, detail=False), fs=fs, what=f"list {redact_url(checkpoint_dir)}")
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        # The whole file name: a checkpoint still being written is a hidden temporary file
        # (".tmp-...step-00000005.pt", `fsio.atomic_open`), not yet a checkpoint.
        match = _CHECKPOINT_NAME.fullmatch(posixpath.basename(name.rstrip("/")))
        if match:
            found.append((int(match.group(1)), join_url(checkpoint_dir, match.group(0))))
    return sorted(found, reverse=True)


def save_checkpoint(
    checkpoint_dir: str, state: dict[str, Any], keep: int, storage_options: dict[str, Any] | None = None
) -> str:
    """Write `state` as the checkpoint of `state["step"]`, then prune to the newest `keep + 1`."""
    url = checkpoint_url(checkpoint_dir, state["step"])
    save_state(url, {"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, **state}, storage_options)
    for _, old in list_checkpoints(checkpoint_dir, storage_options)[keep + 1:]:
        remove(old, storage_options)
    return url


def load_latest_checkpoint(
    checkpoint_dir: str, storage_options: dict[str, Any] | None = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any] | None:
    """The newest checkpoint that loads, skipping (and logging) damaged ones; None if none."""
    for step, url in list_checkpoints(checkpoint_dir, storage_options):
        try:
            return load_state(url, CHECKPOINT_FORMAT, storage_options, map_location)
        except (UnsafeFileError, OSError) as exc:
            log.warning("skipping checkpoint of step %d: %s", step, exc)
    return None


@dataclass
class TrainedModel:
    """A trained DCGAN as loaded from a model directory: the EMA generator (for sampling) and
    the discriminator (for features), both in eval mode. `classes` names the classes of a
    class-conditional model (class index i is `classes[i]`); it is empty for an unconditional one."""

    generator: Generator
    discriminator: Discriminator
    model_config: ModelConfig
    model_id: str
    dataset: str
    card: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)

    def to(self, device: str | torch.device) -> TrainedModel:
        self.generator.to(device)
        self.discriminator.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device


def save_model(
    model_dir: str,
    generator: Generator,
    discriminator: Discriminator,
    *,
    model_id: str,
    dataset: str,
    extra: dict[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Write `model_dir/model.pt`: the generator (pass the EMA copy), the discriminator and
    the model config, weights and plain values only."""
    url = model_file(model_dir)
    state = {
        "format": MODEL_FORMAT,
        "version": FORMAT_VERSION,
        "model_id": model_id,
        "dataset": dataset,
        "model_config": generator.config.to_dict(),
        "generator": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
        "discriminator": {k: v.detach().cpu() for k, v in discriminator.state_dict().items()},
        **(extra or {}),
    }
    save_state(url, state, storage_options)
    return url


def resolve_model_location(location: str) -> tuple[str, str]:
    """(model.pt URL, model dir URL) for a model directory or a direct path to model.pt."""
    if location.rstrip("/").endswith(".pt"):
        return location, parent_url(location)
    return model_file(location), location


def load_model(
    location: str, *, device: str | torch.device = "cpu", storage_options: dict[str, Any] | None = None
) -> TrainedModel:
    """Load a trained model from its directory (`OUT/<dataset>/model`) or its model.pt.

    Raises:
        FileNotFoundError: no model.pt at `location`.
        UnsafeFileError: the file is damaged, not ours, or would need unpickling.

    Examples:
        >>> import torch
        >>> model = load_model(trained_model)  # OUT/<dataset>/model, as `train` writes it
        >>> model.dataset, model.model_config.image_size
        ('shapes', 16)
        >>> with torch.no_grad():
        ...     images = model.generator(torch.randn(4, model.model_config.latent_dim))
        >>> tuple(images.shape)  # (B, C, S, S) in [-1, 1]
        (4, 1, 16, 16)
    """
    model_url, model_dir = resolve_model_location(location)
    try:
        state = load_state(model_url, MODEL_FORMAT, storage_options, map_location="cpu")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no trained model at {redact_url(model_url)}; train one with `gan-augment train` "
            "and pass its OUT/<dataset>/model directory"
        ) from None
    try:
        # A model saved before `background` and `fit` existed was decoded with black and crop.
        config = ModelConfig.from_dict({**LEGACY_DECODE, **state["model_config"]})
        generator, discriminator = Generator(config), Discriminator(config)
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        classes = [str(name) for name in state.get("classes", [])]
        if len(classes) != config.num_classes:
            raise ValueError(f"it names {len(classes)} classes for a model of {config.num_classes}")
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise UnsafeFileError(f"{redact_url(model_url)} is damaged or incompatible: {exc}") from exc
    card = read_model_card(model_dir, storage_options) or {}
    model = TrainedModel(generator.eval(), discriminator.eval(), config, state["model_id"], state["dataset"], card,
                         classes)
    return model.to(device)


def write_model_card(model_dir: str, card: dict[str, Any], storage_options: dict[str, Any] | None = None) -> str:
    url = card_file(model_dir)
    atomic_write_bytes(url, (json.dumps(card, indent=2, sort_keys=True) + "\n").encode(), storage_options)
    return url


def read_model_card(model_dir: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The model card in `model_dir`, or None when there is none (or it is unreadable)."""
    try:
        return json.loads(read_bytes(card_file(model_dir), storage_options))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def as_trained_model(
    source: str | TrainedModel, *, device: str | torch.device = "cpu", storage_options: dict[str, Any] | None = None
) -> TrainedModel:
    """`source` itself when it is a `TrainedModel`, else the model loaded from that location.

    Raises:
        FileNotFoundError, UnsafeFileError: as `load_model`.
        ValueError: `source` is neither a location nor a `TrainedModel`.
    """
    if isinstance(source, TrainedModel):
        return source
    if isinstance(source, str):
        return load_model(source, device=device, storage_options=storage_options)
    raise ValueError(f"a model is a model directory URL (OUT/<dataset>/model) or a TrainedModel from "
                     f"gan_augment.load_model, not a {type(source).__name__}")
