"""`scan-store`: every dataset of an image store gets a fresh `<out>/<dataset>/manifest.parquet`,
and the run a table of what was found and what changed since the last scan.

One task per dataset (`scan-dataset`, mapped): a dataset whose storage calls keep failing is
retried on its own, and the others' manifests are written whatever becomes of it. A large store
splits across workers: with `scan_deployment`, the datasets are dealt into `scan_runs` groups,
each scanned by one run of that scan-store deployment on its work pool, and this run collects
their summaries (`scan-summary` artifacts) when all have ended.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from prefect import flow, task, unmapped
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.flow_runs import wait_for_flow_run
from prefect.states import Completed, Failed, State

from gan_augment import scan_store as scan_image_store
from gan_augment.layout import manifest_url, validate_dataset_name
from gan_augment.scan.listing import list_datasets
from pipelines.common import IO_TASK, resolve_storage_options


def _scan_row(scan: Any) -> dict[str, Any]:
    counts = scan.status_counts
    return {
        "dataset": scan.dataset,
        "objects": scan.manifest.num_rows,
        "ok": counts.get("ok", 0),
        "bad": {status: n for status, n in sorted(counts.items()) if status != "ok"},
        "bytes": scan.total_bytes,
        "new": len(scan.new),
        "changed": len(scan.changed),
        "deleted": len(scan.deleted),
        "manifest": scan.manifest_url,
        "error": None,
    }


def failed_scan_row(dataset: str, error: str) -> dict[str, Any]:
    """The row of a dataset whose scan failed for good: nothing counted, the reason kept."""
    return {"dataset": dataset, "objects": 0, "ok": 0, "bad": {}, "bytes": 0, "new": 0, "changed": 0, "deleted": 0,
            "manifest": None, "error": error}


@task(name="list-datasets", **IO_TASK)
def find_datasets(store_url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """The store's datasets (its first-level folders); retried: a listing is storage I/O."""
    return list_datasets(store_url, storage_options)


@task(name="scan-dataset", task_run_name="scan-{dataset}", **IO_TASK)
def scan_dataset(dataset: str, store_url: str, out_url: str,
                 storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Scan one dataset incrementally against its manifest in `out_url` and write the new one;
    returns its small summary row. Retried alone on transient errors: a rerun reuses every
    object the failed attempt had not changed."""
    result = scan_image_store(store_url, out=out_url, datasets=[dataset], storage_options=storage_options)
    return _scan_row(result.datasets[dataset])


def scan_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scan summary as artifact rows: bad objects by reason in one readable cell."""
    return [{"dataset": row["dataset"], "objects": row["objects"], "ok": row["ok"],
             "bad": ", ".join(f"{status} {n}" for status, n in row["bad"].items()) or "-", "bytes": row["bytes"],
             "new": row["new"], "changed": row["changed"], "deleted": row["deleted"],
             "error": row["error"] or "-"} for row in rows]


def rows_of_table(table: list[dict[str, Any]], out_url: str) -> list[dict[str, Any]]:
    """The summary rows back from `scan_table`'s artifact rows."""
    rows = []
    for cell in table:
        bad = dict(part.rsplit(" ", 1) for part in cell["bad"].split(", ")) if cell["bad"] != "-" else {}
        error = None if cell["error"] == "-" else cell["error"]
        rows.append({**cell, "bad": {status: int(n) for status, n in bad.items()}, "error": error,
                     "manifest": None if error else manifest_url(out_url, cell["dataset"])})
    return rows


@task(name="start-scan-run", cache_policy=NO_CACHE)
def start_scan_run(deployment: str, parameters: dict[str, Any], part: int) -> str:
    """Create one scan-store run of `deployment` for a group of datasets; its id, at once. The
    idempotency key ties it to this run and group: a retried parent finds the run it started."""
    context = FlowRunContext.get()
    key = f"{context.flow_run.id}/scan-{part}" if context and context.flow_run else None
    return str(run_deployment(deployment, parameters=parameters, timeout=0, idempotency_key=key).id)


@task(name="collect-scan-run", task_run_name="collect-scan-{part}", cache_policy=NO_CACHE)
async def collect_scan_run(part: int, run_id: str, datasets: list[str], out_url: str) -> list[dict[str, Any]]:
    """Wait for one scan run to end (Prefect's state events, no polling) and return its
    datasets' rows from its `scan-summary` artifact; a run that left none fails its datasets."""
    run = await wait_for_flow_run(UUID(run_id))
    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]), key=ArtifactFilterKey(any_=["scan-summary"])))
    if not found:
        reason = f"scan run {run.name} ended {run.state.name} without a summary ({run.state.message})"
        return [failed_scan_row(name, reason) for name in datasets]
    table = found[0].data
    return rows_of_table(json.loads(table) if isinstance(table, str) else table, out_url)


def scan_on_workers(deployment: str, names: list[str], runs: int, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Deal `names` into `runs` groups (round robin over the sorted names, so that each group
    gets datasets from the whole alphabet), start one run of `deployment` per group, collect all."""
    groups = [group for group in (sorted(names)[part::max(1, runs)] for part in range(max(1, runs))) if group]
    run_ids = [start_scan_run(deployment, {**parameters, "datasets": group}, part) for part, group in enumerate(groups)]
    collected = collect_scan_run.map(list(range(len(groups))), run_ids, groups, unmapped(parameters["out_url"]))
    by_name = {row["dataset"]: row for rows in collected.result() for row in rows}
    return [by_name.get(name) or failed_scan_row(name, "missing from its scan run's summary") for name in names]


@flow(name="scan-store")
def scan_store(
    store_url: str, out_url: str, datasets: list[str] | None = None, storage_options: dict[str, Any] | None = None,
    credentials_block: str | None = None, scan_deployment: str | None = None, scan_runs: int = 4,
) -> State:
    """Scan every dataset (first-level folder) of `store_url` and write its manifest.

    Args:
        store_url: the image store (any fsspec URL).
        out_url: the output root; manifests go to `<out_url>/<dataset>/manifest.parquet`.
        datasets: scan only these datasets; all when None.
        storage_options: fsspec options for both URLs (no credentials; see README).
        credentials_block: the name of a prefect-aws `AwsCredentials` block to take the store's
            credentials from, loaded where the flow runs; None: the worker's environment.
        scan_deployment: a scan-store deployment ("scan-store/<name>") to split the datasets
            across: `scan_runs` runs of it on its work pool, each scanning one group of datasets;
            None scans them all in this run.
        scan_runs: how many runs to split into (at most one per dataset).

    Returns:
        Completed with one row per dataset (objects, ok, bad by reason, bytes, new/changed/deleted
        since the last scan, the manifest's URL, error None), or, when some datasets could not be
        scanned, Failed with the same rows (theirs with the error) and a message naming them.
    """
    options = resolve_storage_options(storage_options, credentials_block)
    names = [validate_dataset_name(name) for name in datasets] if datasets else find_datasets(store_url, options)
    if scan_deployment:
        rows = scan_on_workers(scan_deployment, names, scan_runs, {
            "store_url": store_url, "out_url": out_url, "storage_options": storage_options,
            "credentials_block": credentials_block})
    else:
        rows = []
        futures = scan_dataset.map(names, unmapped(store_url), unmapped(out_url), unmapped(options))
        for name, future in zip(names, futures):
            outcome = future.result(raise_on_failure=False)
            failed = isinstance(outcome, BaseException)
            rows.append(failed_scan_row(name, f"{type(outcome).__name__}: {outcome}") if failed else outcome)
    failures = [f"{row['dataset']} ({row['error']})" for row in rows if row["error"]]
    create_table_artifact(scan_table(rows), key="scan-summary",
                          description=f"{len(rows)} datasets, {sum(r['objects'] for r in rows)} objects")
    message = f"{len(rows) - len(failures)} of {len(rows)} datasets scanned"
    if failures:
        return Failed(message=f"{message}; failed: {'; '.join(failures)}", data=rows)
    return Completed(message=message, data=rows)
