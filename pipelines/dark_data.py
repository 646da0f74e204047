"""`dark-data`: the whole pipeline over one image store: scan, train every dataset, export,
and a summary of what each dataset became.

Embedded by default: with `train_work_pool=None` the trainings run in this process, one after
another on its GPU or CPU. With a work pool name they fan out to the `train-dataset`
deployment on that pool (GPU workers) and are collected when all have finished. Either way a
dataset that fails (nothing readable, a training crash, an export error) is reported with its
reason and the others go on.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State

from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.curate.report import write_reports
from pipelines.common import resolve_storage_options
from pipelines.export_dataset import export_dataset
from pipelines.fan_out import train_in_process, train_on_work_pool
from pipelines.scan_store import scan_store


def summary_row(scan: dict[str, Any], training: dict[str, Any] | None, export: dict[str, Any] | None) -> dict[str, Any]:
    """One dataset's line of the run summary (also what `dark-data` returns)."""
    row = {"dataset": scan["dataset"], "images_ok": scan["ok"], "images_bad": sum(scan["bad"].values()),
           "training": "-", "steps": None, "images_per_second": None, "model": None,
           "export": "-", "synthetic": None, "features": None, "error": None}
    if scan.get("error"):
        return {**row, "error": f"scan: {scan['error']}"}
    if training is None:
        bad = ", ".join(f"{status} {n}" for status, n in scan["bad"].items()) or "no image objects"
        return {**row, "training": "empty", "error": f"no readable image ({bad})"}
    row.update(training=training["status"], steps=training["steps"], model=training["model_dir"],
               images_per_second=training["images_per_second"])
    if training["status"] == "failed":
        return {**row, "error": training["reason"]}
    if export is not None and "error" in export:
        return {**row, "export": "failed", "error": export["error"]}
    if export is not None:
        row.update(export=export["synthetic"]["status"], synthetic=export["synthetic"]["folder"],
                   features=export["features"]["folder"] if export["features"] else None)
    return row


@task(name="publish-summary", cache_policy=NO_CACHE)
def publish_summary(rows: list[dict[str, Any]]) -> None:
    """The run's summary table artifact."""
    exported = sum(row["export"] in ("written", "up to date") for row in rows)
    create_table_artifact(rows, key="dark-data-summary",
                          description=f"{exported} of {len(rows)} datasets exported")


@task(name="write-reports", cache_policy=NO_CACHE)
def write_report_pages(out_url: str, datasets: list[str], storage_options: dict[str, Any] | None) -> str:
    """Each dataset's report.html and the index over them; a link artifact points at the index."""
    files = write_reports(out_url, datasets, storage_options)
    create_link_artifact(files.index, link_text="reports of every dataset", key="dark-data-report",
                         description=f"{len(files.reports)} dataset reports: open {files.index} in a browser")
    return files.index


@flow(name="dark-data")
def dark_data(
    store_url: str,
    out_url: str,
    datasets: list[str] | None = None,
    train_work_pool: str | None = None,
    model: ModelConfig = ModelConfig(),
    training: TrainConfig = TrainConfig(),
    num_samples: int = 1000,
    features: bool = True,
    seed: int = 0,
    storage_options: dict[str, Any] | None = None,
    train_timeout_seconds: float | None = None,
    credentials_block: str | None = None,
    labels: dict[str, str] | None = None,
) -> State:
    """Scan `store_url`, train a DCGAN per dataset, export samples and features to `out_url`.

    Args:
        store_url: the image store (any fsspec URL); each first-level folder is a dataset.
        out_url: the output root (the storage layout of docs/design.md).
        datasets: only these datasets; all when None.
        train_work_pool: None trains in this process; a work pool name starts one run of the
            `train-dataset` deployment on that pool per dataset.
        model, training: the configs every dataset trains with.
        num_samples: synthetic samples exported per dataset.
        features: also export discriminator features of the real images.
        seed: the synthetic tables' seed.
        storage_options: fsspec options for both URLs (no credentials; see README).
        train_timeout_seconds: with a work pool, cancel a training run still unfinished after
            this long and report it as failed; None waits.
        credentials_block: the name of a prefect-aws `AwsCredentials` block with the store's
            credentials; every run this one starts gets the name and loads the block itself.
        labels: {dataset: URL of a `uri,label` file} for datasets that get a class-conditional
            model (labelled and pseudo-labelled images; its synthetic table has `num_samples`
            samples of each class and a `label` column); the others stay unconditional.

    Returns:
        A Completed state whose result is one summary row per dataset and whose message
        names the datasets that were not exported and why.
    """
    options = resolve_storage_options(storage_options, credentials_block)  # for this flow's own tasks
    scan_state = scan_store(store_url, out_url, datasets, storage_options, credentials_block, return_state=True)
    scanned = scan_state.result(raise_on_failure=False)
    if isinstance(scanned, BaseException):  # not even the listing worked; failed datasets come as rows
        raise scanned
    scans = {row["dataset"]: row for row in scanned}
    trainable = [name for name, row in scans.items() if row["ok"] > 0]
    if train_work_pool:
        trained = train_on_work_pool(train_work_pool, trainable, store_url, out_url, model, training,
                                     storage_options, credentials_block, resolved_options=options,
                                     timeout_seconds=train_timeout_seconds, labels=labels)
    else:
        trained = train_in_process(trainable, store_url, out_url, model, training, storage_options,
                                   credentials_block, resolved_options=options, labels=labels)

    exports: dict[str, dict[str, Any]] = {}
    for name, summary in trained.items():
        if summary["status"] == "failed":
            continue
        state = export_dataset(name, out_url, num_samples, features, seed, store_url, storage_options,
                               credentials_block, return_state=True)
        exports[name] = state.result() if state.is_completed() else {"error": f"export: {state.message}"}

    rows = [summary_row(scans[name], trained.get(name), exports.get(name)) for name in sorted(scans)]
    publish_summary(rows)
    report = write_report_pages(out_url, sorted(scans), options, return_state=True)  # a report never fails the run
    missing = [f"{row['dataset']} ({row['error']})" for row in rows if row["error"]]
    message = f"{len(rows) - len(missing)} of {len(rows)} datasets exported"
    message += f"; reports: {report.result()}" if report.is_completed() else f"; no report ({report.message})"
    return Completed(message=message + (f"; not exported: {'; '.join(missing)}" if missing else ""), data=rows)
