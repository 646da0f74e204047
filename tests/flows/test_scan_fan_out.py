"""The scan splits by dataset across workers: scan-store with `scan_deployment` deals the
datasets into groups, one run of the scan-store deployment per group on a `process` work pool
(served by a worker subprocess on the test server), and collects every dataset's row."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from gan_augment.io.tables import read_manifest
from pipelines.scan_store import failed_scan_row, rows_of_table, scan_store, scan_table

from .conftest import process_worker


@pytest.fixture(scope="module")
def cpu_worker(prefect_api_url: str, deployed, tmp_path_factory):
    """A process worker on the "cpu" pool running up to two flow runs at once."""
    with process_worker(prefect_api_url, "cpu", 2, tmp_path_factory.mktemp("cpu-worker") / "worker.log") as log_path:
        yield log_path


def scan_runs_of(deployment: str) -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])))


def test_the_scan_splits_by_dataset_across_runs_on_the_work_pool(cpu_worker, tmp_path, png_writer):
    store, out = tmp_path / "store", tmp_path / "out"
    for name, count in (("ants", 3), ("bees", 2), ("cats", 4)):
        png_writer(str(store / name), count)
    (store / "cats" / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    before = {run.id for run in scan_runs_of("hourly")}

    state = scan_store(str(store), str(out), scan_deployment="scan-store/hourly", scan_runs=2, return_state=True)

    assert state.is_completed(), state.message + open(cpu_worker).read()[-3000:]
    rows = {row["dataset"]: row for row in state.result()}
    assert {name: (row["objects"], row["ok"], row["bad"], row["new"]) for name, row in rows.items()} == {
        "ants": (3, 3, {}, 3), "bees": (2, 2, {}, 2), "cats": (5, 4, {"corrupt": 1}, 5)}
    for name, row in rows.items():
        assert read_manifest(row["manifest"]).num_rows == row["objects"]
    children = [run for run in scan_runs_of("hourly") if run.id not in before]
    assert sorted(sorted(run.parameters["datasets"]) for run in children) == [["ants", "cats"], ["bees"]]
    assert all(run.work_pool_name == "cpu" and run.state.is_completed() for run in children)


def test_a_group_whose_run_fails_fails_its_datasets_only(cpu_worker, tmp_path, png_writer):
    store = tmp_path / "store"
    png_writer(str(store / "ants"), 2)
    state = scan_store(str(store), str(tmp_path / "out"), datasets=["ants", "ghosts"],
                       scan_deployment="scan-store/hourly", scan_runs=2, return_state=True)
    assert state.is_failed() and "ghosts" in state.message and "ants" not in state.message.split("failed:")[1]
    rows = {row["dataset"]: row for row in state.result(raise_on_failure=False)}
    assert rows["ants"]["ok"] == 2 and rows["ants"]["error"] is None
    assert rows["ghosts"]["error"] and rows["ghosts"]["objects"] == 0


def test_summary_rows_come_back_from_the_artifact_table():
    rows = [{"dataset": "cats", "objects": 5, "ok": 3, "bad": {"corrupt": 1, "too_large": 1}, "bytes": 900, "new": 5,
             "changed": 0, "deleted": 0, "manifest": "/out/cats/manifest.parquet", "error": None},
            failed_scan_row("ghosts", "FileNotFoundError: no folder")]
    assert rows_of_table(scan_table(rows), "/out") == rows
