"""The scan-store flow: manifests, a summary table, changes since the last scan."""

from __future__ import annotations

import os

import pyarrow.parquet as pq

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
