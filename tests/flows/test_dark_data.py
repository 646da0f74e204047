"""The dark-data flow end to end: scan, train, export, summary; on a local folder and on the
loopback S3 endpoint; a dataset that is empty or fails never stops the others."""

from __future__ import annotations

import os

import pyarrow.dataset as ds
import pytest
import s3fs

import pipelines.train_dataset as train_module
from pipelines.dark_data import dark_data, summary_row

from .conftest import SECRET, recorded_text


def write_store(root: str, png_writer) -> None:
    png_writer(os.path.join(root, "cats"), 16, seed=1)
    png_writer(os.path.join(root, "dogs"), 12, seed=2)
    with open(os.path.join(root, "dogs", "truncated.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n\x00\x00")
    os.makedirs(os.path.join(root, "junk"))
    for name, data in {"empty.png": b"", "notes.jpg": b"meeting notes"}.items():
        with open(os.path.join(root, "junk", name), "wb") as f:
            f.write(data)


def test_scans_trains_exports_and_summarises_then_skips_what_did_not_change(
        tmp_path, png_writer, tiny_model_config, tiny_train_config, artifacts_of):
    store, out = str(tmp_path / "store"), str(tmp_path / "out")
    write_store(store, png_writer)
    state = dark_data(store, out, model=tiny_model_config, training=tiny_train_config, num_samples=10,
                      return_state=True)
    assert state.is_completed(), state.message
    rows = {row["dataset"]: row for row in state.result()}
    assert rows["junk"]["training"] == "empty" and rows["junk"]["export"] == "-"
    assert "no readable image" in rows["junk"]["error"] and "junk" in state.message
    for name, ok in (("cats", 16), ("dogs", 12)):
        row = rows[name]
        assert (row["images_ok"], row["training"], row["steps"], row["export"]) == (ok, "trained", 6, "written")
        assert ds.dataset(row["synthetic"]).count_rows() == 10
        assert ds.dataset(row["features"]).count_rows() == ok
        assert os.path.isfile(os.path.join(out, name, "manifest.parquet"))
    assert rows["dogs"]["images_bad"] == 1 and rows["dogs"]["error"] is None
    summary = artifacts_of(state.state_details.flow_run_id)["dark-data-summary"]
    assert summary.type == "table" and "junk" in summary.data
    report = artifacts_of(state.state_details.flow_run_id)["dark-data-report"]  # the reports, linked at the end
    assert os.path.join(out, "index.html") in str(report.data)
    assert os.path.isfile(os.path.join(out, "index.html")) and os.path.isfile(os.path.join(out, "dogs", "report.html"))

    again = {row["dataset"]: row for row in dark_data(store, out, model=tiny_model_config, training=tiny_train_config,
                                                      num_samples=10)}
    assert again["cats"]["training"] == "skipped" and again["cats"]["export"] == "up to date"
    assert again["dogs"]["training"] == "skipped" and again["dogs"]["steps"] == 6


def test_a_failing_dataset_fails_its_branch_only(tmp_path, png_writer, tiny_model_config, tiny_train_config,
                                                 monkeypatch):
    store, out = str(tmp_path / "store"), str(tmp_path / "out")
    write_store(store, png_writer)
    real_refresh = train_module.refresh_model

    def refresh_or_crash(source, *args, **kwargs):
        if kwargs.get("dataset") == "cats":
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_refresh(source, *args, **kwargs)

    monkeypatch.setattr(train_module, "refresh_model", refresh_or_crash)
    state = dark_data(store, out, model=tiny_model_config, training=tiny_train_config, num_samples=5,
                      features=False, return_state=True)
    assert state.is_completed(), state.message
    rows = {row["dataset"]: row for row in state.result()}
    assert rows["cats"]["training"] == "failed" and "illegal memory access" in rows["cats"]["error"]
    assert rows["dogs"]["export"] == "written" and ds.dataset(rows["dogs"]["synthetic"]).count_rows() == 5
    assert state.message.startswith("1 of 3 datasets exported") and "cats (" in state.message


def test_runs_against_s3_with_credentials_from_a_block(tmp_path, png_writer, s3_endpoint, s3_bucket,
                                                       tiny_model_config, tiny_train_config, lake_credentials,
                                                       no_ambient_credentials):
    # The worker has no credentials of its own: scan, train and export subflows each load the
    # block named in their parameters.
    local = str(tmp_path / "store")
    write_store(local, png_writer)
    fs = s3fs.S3FileSystem(key="lake-key", secret=SECRET, endpoint_url=s3_endpoint)
    fs.put(local + "/", f"{s3_bucket}/lake/", recursive=True)
    state = dark_data(f"{s3_bucket}/lake", f"{s3_bucket}/out", model=tiny_model_config, training=tiny_train_config,
                      num_samples=6, credentials_block=lake_credentials, return_state=True)
    assert state.is_completed(), state.message
    rows = {row["dataset"]: row for row in state.result()}
    assert rows["cats"]["export"] == "written" and rows["junk"]["training"] == "empty"
    assert rows["cats"]["synthetic"].startswith(f"{s3_bucket}/out/cats/synthetic")
    fs.invalidate_cache()
    assert fs.exists(f"{s3_bucket}/out/cats/model/model.pt")
    assert ds.dataset(rows["cats"]["synthetic"].removeprefix("s3://"), filesystem=fs).count_rows() == 6
    assert SECRET not in recorded_text(state.state_details.flow_run_id)  # parameters, task runs, logs, artifacts, events of every run


def test_credentials_in_parameters_are_refused(tmp_path):
    with pytest.raises(ValueError, match="looks like a credential"):
        dark_data(str(tmp_path), str(tmp_path), storage_options={"key": "AKIA...", "secret": "..."})


def test_a_dataset_whose_scan_failed_is_reported_with_its_reason():
    scan = {"dataset": "owls", "ok": 0, "bad": {}, "error": "PermissionError: access denied"}
    row = summary_row(scan, None, None)
    assert (row["training"], row["export"], row["error"]) == ("-", "-", "scan: PermissionError: access denied")
