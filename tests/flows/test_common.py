"""Pure helpers of the flows: artifact keys, parameter checks, reports, progress."""

from __future__ import annotations

import re

import pytest

import pipelines.artifacts as artifacts_module
from pipelines.artifacts import TrainingProgress, png_data_uri, training_markdown
from pipelines.common import artifact_key, check_storage_options, training_summary


def test_artifact_keys_are_valid_and_keep_distinct_names_apart():
    assert artifact_key("training", "cats") == "training-cats"
    keys = {artifact_key("training", name) for name in ("Cats", "cats", "cats_2024", "cats-2024", "ünï")}
    assert len(keys) == 5
    assert all(re.fullmatch(r"[a-z0-9-]+", key) for key in keys)


def test_credentials_are_refused_at_any_depth_and_endpoints_pass():
    ok = {"endpoint_url": "http://127.0.0.1:9000", "client_kwargs": {"region_name": "eu-west-1"}, "anon": False}
    assert check_storage_options(ok) is ok and check_storage_options(None) is None
    for bad in ({"key": "AKIA"}, {"secret": "x"}, {"token": "t"}, {"client_kwargs": {"aws_secret_access_key": "x"}},
                {"password": "p"}):
        with pytest.raises(ValueError, match="AWS_ACCESS_KEY_ID"):
            check_storage_options(bad)


def test_the_training_report_embeds_the_grid_and_lists_the_metrics():
    card = {"model_id": "cats-abc", "steps": 600, "resumed_from": 300, "num_images": 24, "skipped_images": 1,
            "metrics": {"loss_d": 1.2, "loss_g": 0.8, "images_per_second": 512.0, "seconds": 12.5},
            "files": {"samples": "samples/final.png"}}
    summary = training_summary("cats", "trained", "the data changed since the last training", card, "/out/cats/model")
    assert summary["samples"] == "/out/cats/model/samples/final.png" and summary["images_per_second"] == 512.0
    text = training_markdown(summary, b"\x89PNG fake")
    assert png_data_uri(b"\x89PNG fake") in text
    assert "resumed from step 300" in text and "| loss_d | 1.2 |" in text and "seconds" not in summary["metrics"]
    assert "![" not in training_markdown(summary, None)


def test_progress_display_failures_never_stop_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("API unreachable")

    monkeypatch.setattr(artifacts_module, "create_progress_artifact", refuse)
    progress = TrainingProgress("progress-cats", "cats")
    progress(0.5, {"step": 3, "loss_d": 1.0, "loss_g": 1.0, "images_per_second": 10.0})  # no artifact: no-op
    monkeypatch.setattr(artifacts_module, "create_progress_artifact", lambda *a, **k: "some-id")
    monkeypatch.setattr(artifacts_module, "update_progress_artifact", refuse)
    TrainingProgress("progress-cats", "cats").update(50.0, "half way")  # logged, not raised
