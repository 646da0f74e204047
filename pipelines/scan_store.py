"""`scan-store`: every dataset of an image store gets a fresh `<out>/<dataset>/manifest.parquet`,
and the run a table of what was found and what changed since the last scan.

One task per dataset (`scan-dataset`, mapped): a dataset whose storage calls keep failing is
retried on its own, and the others' manifests are written whatever becomes of it.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task, unmapped
from prefect.artifacts import create_table_artifact
from prefect.states import Completed, Failed, State

from gan_augment import scan_store as scan_image_store
from gan_augment.layout import validate_dataset_name
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
             "bad": ", ".join(f"{status} {n}" for status, n in row["bad"].items()) or "-",
             "new": row["new"], "changed": row["changed"], "deleted": row["deleted"],
             "error": row["error"] or "-"} for row in rows]


@flow(name="scan-store")
def scan_store(
    store_url: str, out_url: str, datasets: list[str] | None = None, storage_options: dict[str, Any] | None = None,
    credentials_block: str | None = None,
) -> State:
    """Scan every dataset (first-level folder) of `store_url` and write its manifest.

    Args:
        store_url: the image store (any fsspec URL).
        out_url: the output root; manifests go to `<out_url>/<dataset>/manifest.parquet`.
        datasets: scan only these datasets; all when None.
        storage_options: fsspec options for both URLs (no credentials; see README).
        credentials_block: the name of a prefect-aws `AwsCredentials` block to take the store's
            credentials from, loaded where the flow runs; None: the worker's environment.

    Returns:
        Completed with one row per dataset (objects, ok, bad by reason, bytes, new/changed/deleted
        since the last scan, the manifest's URL, error None), or, when some datasets could not be
        scanned, Failed with the same rows (theirs with the error) and a message naming them.
    """
    options = resolve_storage_options(storage_options, credentials_block)
    names = [validate_dataset_name(name) for name in datasets] if datasets else find_datasets(store_url, options)
    futures = scan_dataset.map(names, unmapped(store_url), unmapped(out_url), unmapped(options))
    rows = []
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
