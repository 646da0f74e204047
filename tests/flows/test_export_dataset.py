"""The export-dataset flow: synthetic and features Parquet, skipped when already current."""

from __future__ import annotations

import json
import os

import pyarrow.dataset as ds

from pipelines.export_dataset import export_dataset, read_marker
from pipelines.scan_store import scan_store
from pipelines.train_dataset import train_dataset


def test_exports_samples_and_features_then_skips_an_unchanged_export(
        image_folder, tmp_path, tiny_model_config, tiny_train_config):
    store, out = os.path.dirname(image_folder), str(tmp_path / "out")
    (tmp_path / "store" / "blobs" / "broken.png").write_bytes(b"\x89PNG truncated")
    scan_store(store, out)
    train_dataset("blobs", store, out, tiny_model_config, tiny_train_config)
    result = export_dataset("blobs", out, num_samples=20)
    assert result["synthetic"]["status"] == "written" and result["features"]["status"] == "written"
    synthetic = ds.dataset(os.path.join(out, "blobs", "synthetic")).to_table()  # skips the _SUCCESS marker
    assert synthetic.num_rows == 20 and sorted(synthetic.column("index").to_pylist()) == list(range(20))
    features = ds.dataset(os.path.join(out, "blobs", "features")).to_table()
    assert features.num_rows == 24  # the 24 ok images of the manifest, not the broken one
    assert set(features.column("model_id").to_pylist()) == {result["model_id"]}
    marker = read_marker(os.path.join(out, "blobs", "synthetic"))
    assert marker["model_id"] == result["model_id"] and marker["num_samples"] == 20 and marker["rows"] == 20

    again = export_dataset("blobs", out, num_samples=20)
    assert again["synthetic"]["status"] == "up to date" and again["features"]["status"] == "up to date"
    more = export_dataset("blobs", out, num_samples=30, features=False)
    assert more["synthetic"]["status"] == "written" and more["features"] is None
    assert ds.dataset(os.path.join(out, "blobs", "synthetic")).count_rows() == 30


def test_an_interrupted_export_is_not_taken_for_a_finished_one(
        image_folder, tmp_path, tiny_model_config, tiny_train_config, monkeypatch):
    store, out = os.path.dirname(image_folder), str(tmp_path / "out")
    train_dataset("blobs", store, out, tiny_model_config, tiny_train_config)
    export_dataset("blobs", out, num_samples=8, features=False)
    folder = os.path.join(out, "blobs", "synthetic")

    import pipelines.export_dataset as module

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(module, "export_samples", crash)
    failed = export_dataset("blobs", out, num_samples=9, features=False, return_state=True)
    assert failed.is_failed() and "disk full" in failed.message
    assert read_marker(folder) == {}  # removed before writing, so no stale claim survives
    monkeypatch.undo()
    assert export_dataset("blobs", out, num_samples=9, features=False)["synthetic"]["status"] == "written"
    assert json.loads(open(os.path.join(folder, "_SUCCESS")).read())["num_samples"] == 9


def test_exporting_an_untrained_dataset_fails_with_a_clear_message(tmp_path):
    state = export_dataset("never-trained", str(tmp_path), num_samples=4, return_state=True)
    assert state.is_failed() and "run train-dataset" in state.message
