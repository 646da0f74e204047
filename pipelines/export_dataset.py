"""`export-dataset`: a trained dataset's synthetic samples and its real images' discriminator
features, as Parquet under `<out>/<dataset>/synthetic/` and `<out>/<dataset>/features/`.

A finished export leaves a `_SUCCESS` marker (the Hadoop/Spark convention; Parquet readers
skip files starting with "_") recording what it wrote. An export whose marker matches the
current request (same model id, and for samples the same count and seed) is skipped, so
nightly runs over unchanged datasets cost nothing; an interrupted one has no marker.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger, task

from gan_augment import export_features, export_samples, extract_features, layout
from gan_augment.export.tables import ExportResult
from gan_augment.gan.checkpoint import read_model_card
from gan_augment.io.fsio import atomic_write_bytes, basename, join_url, read_bytes, redact_url, remove
from gan_augment.layout import validate_dataset_name
from pipelines.common import IO_TASK, model_dir_url, resolve_storage_options

MARKER = "_SUCCESS"


def read_marker(folder: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the last finished export into `folder` recorded, or {} when none finished."""
    try:
        return json.loads(read_bytes(join_url(folder, MARKER), storage_options))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _export_into(folder: str, request: dict[str, Any], write: Callable[[], ExportResult],
                 storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """Run `write` unless the marker in `folder` records the same `request`; the marker is
    removed first and written last, so it only ever describes a complete export."""
    if {k: read_marker(folder, storage_options).get(k) for k in request} == request:
        return {"status": "up to date", "folder": folder}
    remove(join_url(folder, MARKER), storage_options)
    result = write()
    record = {**request, "rows": result.rows, "files": [basename(url) for url in result.files],
              "skipped": len(result.skipped)}
    atomic_write_bytes(join_url(folder, MARKER), json.dumps(record, indent=2).encode(), storage_options)
    return {"status": "written", "folder": folder, "rows": result.rows, "files": len(result.files),
            "skipped": len(result.skipped)}


@task(name="export-samples", **IO_TASK)
def write_samples(model_dir: str, out: str, num_samples: int, seed: int, model_id: str,
                  storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Synthetic samples of the model as Parquet parts, unless the current ones match."""
    request = {"model_id": model_id, "num_samples": num_samples, "seed": seed}
    return _export_into(out, request, lambda: export_samples(model_dir, out, num_samples, seed=seed,
                                                             storage_options=storage_options), storage_options)


@task(name="export-features", **IO_TASK)
def write_features(model_dir: str, out: str, source: str, manifest_url: str, dataset: str, model_id: str,
                   storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Discriminator features of the dataset's `ok` images (per its manifest, when there is
    one; otherwise every image is validated on the fly), unless the current ones match."""

    def write() -> ExportResult:
        features = extract_features(model_dir, source, manifest=manifest_url, dataset=dataset,
                                    storage_options=storage_options)
        return export_features(features, out, storage_options=storage_options)

    return _export_into(out, {"model_id": model_id, "source": redact_url(source)}, write, storage_options)


@flow(name="export-dataset")
def export_dataset(
    dataset: str,
    out_url: str,
    num_samples: int = 10_000,
    features: bool = True,
    seed: int = 0,
    store_url: str | None = None,
    storage_options: dict[str, Any] | None = None,
    credentials_block: str | None = None,
) -> dict[str, Any]:
    """Export `<out_url>/<dataset>/model` as synthetic samples and real-image features.

    Args:
        dataset: the dataset whose model to export.
        out_url: the output root.
        num_samples: synthetic rows; row i regenerates as `SyntheticDataset(model, num_samples,
            seed=seed)[i]`. Of a class-conditional model: rows of each class, with a `label`.
        features: also write discriminator features of the real images.
        seed: the synthetic table's seed.
        store_url: the image store holding the real images; default: the source recorded in
            the model card.
        storage_options: fsspec options (no credentials; see README).
        credentials_block: the name of a prefect-aws `AwsCredentials` block to take storage
            credentials from, loaded where this run executes; None: the worker's environment.

    Returns:
        {dataset, model_id, synthetic: {...}, features: {...} or None}.
    """
    options = resolve_storage_options(storage_options, credentials_block)
    validate_dataset_name(dataset)
    if num_samples < 0:
        raise ValueError(f"num_samples={num_samples} is invalid: expected 0 or more")
    model_dir = model_dir_url(out_url, dataset)
    card = read_model_card(model_dir, options)
    if card is None:
        raise FileNotFoundError(f"no trained model in {model_dir}; run train-dataset for {dataset!r} first")
    synthetic = write_samples(model_dir, layout.synthetic_dir(out_url, dataset), num_samples, seed,
                              card["model_id"], options)
    real = None
    if features:
        source = join_url(store_url, dataset) if store_url else card.get("source")
        if not source:
            raise ValueError(f"the model card of {dataset!r} records no source; pass store_url to export features")
        real = write_features(model_dir, layout.features_dir(out_url, dataset), source,
                              layout.manifest_url(out_url, dataset), dataset, card["model_id"],
                              options)
    get_run_logger().info("%s: synthetic %s, features %s", dataset, synthetic["status"],
                          real["status"] if real else "not asked for")
    return {"dataset": dataset, "model_id": card["model_id"], "synthetic": synthetic, "features": real}
