"""The scan-store flow: manifests, a summary table, changes since the last scan; one task per
dataset, so a flaky dataset retries alone and a broken one fails alone."""

from __future__ import annotations

import os

import pyarrow.parquet as pq

import pipelines.scan_store as scan_module
from pipelines.scan_store import scan_store


def test_scans_every_dataset_and_reports_changes(tmp_path, png_writer, artifacts_of):
    store, out = tmp_path / "store", tmp_path / "out"
    png_writer(str(store / "cats"), 5)
    png_writer(str(store / "dogs"), 3)
    (store / "dogs" / "broken.png").write_bytes(b"not a png")
    state = scan_store(str(store), str(out), return_state=True)
    assert state.is_completed(), state.message
    rows = {row["dataset"]: row for row in state.result()}
    assert rows["cats"]["ok"] == 5 and rows["cats"]["bad"] == {}
    assert rows["dogs"]["ok"] == 3 and rows["dogs"]["bad"] == {"corrupt": 1}
    assert rows["dogs"]["new"] == 4 and pq.read_table(out / "dogs" / "manifest.parquet").num_rows == 4
    table = artifacts_of(state.state_details.flow_run_id)["scan-summary"]
    assert table.type == "table" and "corrupt 1" in table.data

    os.remove(store / "cats" / "img-000.png")
    png_writer(str(store / "dogs"), 4, seed=3)  # rewrites three images, adds one
    again = {row["dataset"]: row for row in scan_store(str(store), str(out), datasets=["cats", "dogs"])}
    assert (again["cats"]["new"], again["cats"]["changed"], again["cats"]["deleted"]) == (0, 0, 1)
    assert (again["dogs"]["new"], again["dogs"]["changed"], again["dogs"]["deleted"]) == (1, 3, 0)


def test_an_unreachable_store_fails_the_run_with_its_reason(tmp_path):
    state = scan_store(str(tmp_path / "nowhere"), str(tmp_path / "out"), return_state=True)
    assert state.is_failed() and "nowhere" in state.message


def task_runs_named(flow_run_id, prefix: str) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run for run in runs if run.name.startswith(prefix)}


def test_one_task_per_dataset_so_a_flaky_dataset_retries_alone(tmp_path, png_writer, monkeypatch):
    store, out = tmp_path / "store", tmp_path / "out"
    for name in ("cats", "dogs", "owls"):
        png_writer(str(store / name), 3)
    real_scan, failures = scan_module.scan_image_store, {"dogs": 1, "owls": 99}

    def flaky_scan(url, **kwargs):
        (dataset,) = kwargs["datasets"]
        if failures.get(dataset, 0) > 0:
            failures[dataset] -= 1
            # dogs: a timeout, transient, retried; owls: access denied, permanent, not retried
            raise TimeoutError("read timed out") if dataset == "dogs" else PermissionError("access denied")
        return real_scan(url, **kwargs)

    monkeypatch.setattr(scan_module, "scan_image_store", flaky_scan)
    state = scan_store(str(store), str(out), return_state=True)
    assert state.is_failed() and state.message == "2 of 3 datasets scanned; failed: owls (PermissionError: access denied)"
    rows = {row["dataset"]: row for row in state.result(raise_on_failure=False)}
    assert rows["cats"]["ok"] == rows["dogs"]["ok"] == 3 and rows["owls"]["error"].startswith("PermissionError")
    assert (out / "dogs" / "manifest.parquet").is_file() and not (out / "owls").exists()
    runs = task_runs_named(state.state_details.flow_run_id, "scan-")
    assert {name: run.run_count for name, run in runs.items()} == {"scan-cats": 1, "scan-dogs": 2, "scan-owls": 1}
    assert failures == {"dogs": 0, "owls": 98}
