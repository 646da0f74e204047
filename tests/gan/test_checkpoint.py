import io
import os

import pytest
import torch

from gan_augment.gan.checkpoint import (
    MODEL_FORMAT,
    UnsafeFileError,
    list_checkpoints,
    load_latest_checkpoint,
    load_model,
    load_state,
    save_checkpoint,
    save_model,
)
from gan_augment.gan.models import build_models


class _Payload:
    """Unpickling this runs os.makedirs(marker): proof of code execution if it ever happens."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def _save_model(tmp_path, config):
    generator, discriminator = build_models(config)
    model_dir = str(tmp_path / "model")
    save_model(model_dir, generator, discriminator, model_id="m-1", dataset="d")
    return model_dir, generator


def test_model_round_trip(tmp_path, tiny_model_config):
    model_dir, generator = _save_model(tmp_path, tiny_model_config)
    model = load_model(model_dir)
    assert (model.model_id, model.dataset, model.model_config) == ("m-1", "d", tiny_model_config)
    for key, value in generator.state_dict().items():
        assert torch.equal(model.generator.state_dict()[key], value)
    assert load_model(os.path.join(model_dir, "model.pt")).model_id == "m-1"


def test_pickle_bearing_file_is_refused_without_running_it(tmp_path, tiny_model_config):
    model_dir, _ = _save_model(tmp_path, tiny_model_config)
    marker = tmp_path / "pwned"
    torch.save({"format": MODEL_FORMAT, "version": 1, "payload": _Payload(str(marker))},
               os.path.join(model_dir, "model.pt"))
    with pytest.raises(UnsafeFileError, match="weights_only"):
        load_model(model_dir)
    assert not marker.exists()


def test_damaged_and_foreign_files_are_refused(tmp_path, tiny_model_config):
    model_dir, _ = _save_model(tmp_path, tiny_model_config)
    path = os.path.join(model_dir, "model.pt")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(UnsafeFileError):
        load_model(model_dir)
    open(path, "wb").write(b"\x80\x02h\x05.")  # a pickle that reads a missing memo slot: KeyError inside torch
    with pytest.raises(UnsafeFileError):
        load_model(model_dir)
    torch.save({"weights": torch.zeros(1)}, path)  # loads weights-only, but is not ours
    with pytest.raises(UnsafeFileError, match="not a gan-augment/model"):
        load_model(model_dir)
    with pytest.raises(FileNotFoundError, match="no trained model"):
        load_model(str(tmp_path / "nowhere"))


def test_newer_format_versions_are_refused(tmp_path):
    buffer = io.BytesIO()
    torch.save({"format": MODEL_FORMAT, "version": 99}, buffer)
    (tmp_path / "m.pt").write_bytes(buffer.getvalue())
    with pytest.raises(UnsafeFileError, match="Upgrade"):
        load_state(str(tmp_path / "m.pt"), MODEL_FORMAT)


def test_checkpoints_are_pruned_and_damaged_ones_skipped(tmp_path):
    folder = str(tmp_path / "checkpoints")
    for step in (0, 10, 20, 30):
        save_checkpoint(folder, {"step": step, "w": torch.full((2,), float(step))}, keep=2)
    assert [s for s, _ in list_checkpoints(folder)] == [30, 20, 10]
    with open(os.path.join(folder, "step-00000030.pt"), "wb") as f:
        f.write(b"not a checkpoint")
    assert load_latest_checkpoint(folder)["step"] == 20
    assert load_latest_checkpoint(str(tmp_path / "none")) is None


def test_a_checkpoint_still_being_written_is_not_listed(tmp_path):
    """A writer killed mid-write leaves its hidden temporary file (`fsio.atomic_open`); it is no
    checkpoint: not listed, not loaded, and pruning never reaches for a file of its name."""
    folder = str(tmp_path / "checkpoints")
    save_checkpoint(folder, {"step": 0, "w": torch.zeros(2)}, keep=1)
    with open(os.path.join(folder, ".tmp-65puxkqlstep-00000005.pt"), "wb") as f:
        f.write(b"half a checkpoint")
    assert list_checkpoints(folder) == [(0, os.path.join(folder, "step-00000000.pt"))]
    assert load_latest_checkpoint(folder)["step"] == 0
    save_checkpoint(folder, {"step": 10, "w": torch.ones(2)}, keep=0)  # prunes step 0, leaves the stray file
    assert [s for s, _ in list_checkpoints(folder)] == [10]


def test_memory_filesystem_round_trip(tiny_model_config):
    generator, discriminator = build_models(tiny_model_config)
    save_model("memory://models/m", generator, discriminator, model_id="mem", dataset="d")
    assert load_model("memory://models/m").model_id == "mem"
