"""`scan-store`: every dataset of an image store gets a fresh `<out>/<dataset>/manifest.parquet`,
and the run a table of what was found and what changed since the last scan."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from gan_augment import scan_store as scan_image_store
from pipelines.common import IO_TASK, check_storage_options


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
    }


@task(name="scan-datasets", **IO_TASK)
def scan_datasets(
    store_url: str, out_url: str, datasets: list[str] | None = None, storage_options: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Scan the store incrementally against the manifests already in `out_url` and write new
    ones; returns one small row per dataset. Retried: a scan is storage I/O, and reruns reuse
    every object the failed attempt had not changed."""
    result = scan_image_store(store_url, out=out_url, datasets=datasets, storage_options=storage_options)
    return [_scan_row(scan) for _, scan in sorted(result.datasets.items())]


def scan_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scan summary as artifact rows: bad objects by reason in one readable cell."""
    return [{"dataset": row["dataset"], "objects": row["objects"], "ok": row["ok"],
             "bad": ", ".join(f"{status} {n}" for status, n in row["bad"].items()) or "-",
             "new": row["new"], "changed": row["changed"], "deleted": row["deleted"]} for row in rows]


@flow(name="scan-store")
def scan_store(
    store_url: str, out_url: str, datasets: list[str] | None = None, storage_options: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Scan every dataset (first-level folder) of `store_url` and write its manifest.

    Args:
        store_url: the image store (any fsspec URL).
        out_url: the output root; manifests go to `<out_url>/<dataset>/manifest.parquet`.
        datasets: scan only these datasets; all when None.
        storage_options: fsspec options for both URLs (no credentials; see README).

    Returns:
        One row per dataset: objects, ok, bad by reason, bytes, new/changed/deleted since the
        last scan, and the manifest's URL.
    """
    check_storage_options(storage_options)
    rows = scan_datasets(store_url, out_url, datasets, storage_options)
    create_table_artifact(scan_table(rows), key="scan-summary",
                          description=f"{len(rows)} datasets, {sum(r['objects'] for r in rows)} objects")
    return rows
