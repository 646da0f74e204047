"""The train-dataset flow: trains, skips when nothing changed, resumes after a crash."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from gan_augment.gan.checkpoint import list_checkpoints, read_model_card
from pipelines import artifacts as artifacts_module
from pipelines.train_dataset import train_dataset


def run(image_folder, out, model, training, **kwargs):
    store = os.path.dirname(image_folder)
    return train_dataset("blobs", store, out, model, training, return_state=True, **kwargs)


def test_trains_publishes_artifacts_then_skips_until_data_or_config_change(
        image_folder, tmp_path, tiny_model_config, tiny_train_config, artifacts_of, png_writer):
    out = str(tmp_path / "out")
    state = run(image_folder, out, tiny_model_config, tiny_train_config)
    assert state.is_completed() and state.name == "Completed", state.message
    summary = state.result()
    assert summary["status"] == "trained" and summary["steps"] == 6 and summary["num_images"] == 24
    assert os.path.isfile(os.path.join(out, "blobs", "model", "model.pt"))
    card = read_model_card(os.path.join(out, "blobs", "model"))
    assert card["steps"] == 6 and card["model_id"] == summary["model_id"]

    found = artifacts_of(state.state_details.flow_run_id)
    report = found["training-blobs"]
    assert report.type == "markdown"
    assert "data:image/png;base64,iVBOR" in report.data  # the PNG signature, base64-encoded
    assert "loss_d" in report.data and summary["model_id"] in report.data
    assert found["progress-blobs"].type == "progress" and found["progress-blobs"].data == 100.0

    again = run(image_folder, out, tiny_model_config, tiny_train_config)
    assert again.name == "Skipped" and "up to date" in again.message
    assert read_model_card(os.path.join(out, "blobs", "model"))["created_at"] == card["created_at"]

    changed_config = run(image_folder, out, tiny_model_config, dataclasses.replace(tiny_train_config, lr=1e-4))
    assert changed_config.name == "Completed" and "training config changed" in changed_config.message

    png_writer(image_folder, 30, seed=1)  # rewrites 24 images and adds 6
    changed_data = run(image_folder, out, tiny_model_config, dataclasses.replace(tiny_train_config, lr=1e-4))
    assert changed_data.name == "Completed" and "data changed" in changed_data.message
    assert changed_data.result()["num_images"] == 30


def test_resumes_from_the_checkpoint_after_a_crash(
        image_folder, tmp_path, tiny_model_config, tiny_train_config, monkeypatch):
    out = str(tmp_path / "out")
    real_call = artifacts_module.TrainingProgress.__call__

    def crash_at_step_4(self, fraction, row):
        if row["step"] >= 4:
            raise RuntimeError("injected crash")
        real_call(self, fraction, row)

    monkeypatch.setattr(artifacts_module.TrainingProgress, "__call__", crash_at_step_4)
    crashed = run(image_folder, out, tiny_model_config, tiny_train_config)
    assert crashed.is_failed() and "injected crash" in crashed.message
    checkpoints = list_checkpoints(os.path.join(out, "blobs", "model", "checkpoints"))
    assert checkpoints[0][0] == 3  # checkpoint_every=3: the step-3 checkpoint survived the crash
    assert read_model_card(os.path.join(out, "blobs", "model")) is None

    monkeypatch.setattr(artifacts_module.TrainingProgress, "__call__", real_call)
    resumed = run(image_folder, out, tiny_model_config, tiny_train_config)
    assert resumed.is_completed(), resumed.message
    summary = resumed.result()
    assert summary["resumed_from"] == 3 and summary["steps"] == 6
    assert read_model_card(os.path.join(out, "blobs", "model"))["resumed_from"] == 3


def test_a_dataset_without_images_fails_with_a_clear_message(tmp_path, tiny_model_config, tiny_train_config):
    (tmp_path / "store" / "empty").mkdir(parents=True)
    (tmp_path / "store" / "empty" / "notes.txt").write_text("no images here")
    state = train_dataset("empty", str(tmp_path / "store"), str(tmp_path / "out"), tiny_model_config,
                          tiny_train_config, return_state=True)
    assert state.is_failed() and "found no images" in state.message


def test_credentials_in_storage_options_are_refused_before_anything_runs(tmp_path, tiny_model_config):
    state = train_dataset("blobs", str(tmp_path), str(tmp_path), tiny_model_config,
                          storage_options={"client_kwargs": {"region_name": "x"}, "secret": "hunter2"},
                          return_state=True)
    assert state.is_failed() and "looks like a credential" in state.message
    assert "hunter2" not in json.dumps(state.message)


def test_config_parameters_are_validated(tmp_path):
    with pytest.raises(Exception, match="image_size"):
        train_dataset("blobs", str(tmp_path), str(tmp_path), {"image_size": 15})
