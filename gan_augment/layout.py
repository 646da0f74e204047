"""The output layout: where each dataset's artefacts live under an output root.

    <out>/<dataset>/manifest.parquet          the scan's verdict, one row per object
    <out>/<dataset>/model/model.pt            final EMA generator + discriminator (weights only)
    <out>/<dataset>/model/model.json          the model card
    <out>/<dataset>/model/checkpoints/        resumable checkpoints
    <out>/<dataset>/model/samples/            sample grids and the loss curve (PNG)
    <out>/<dataset>/synthetic/part-*.parquet  generated samples
    <out>/<dataset>/features/part-*.parquet   discriminator features of the real images
    <out>/<dataset>/near_duplicates.parquet   near-copies among the images (curate stage)
    <out>/<dataset>/report.html               the dataset's report
    <out>/index.html                          the index of every dataset's report

Every path is built here and nowhere else, so that the scan, the trainer, the exports, the CLI
and the flows agree on it. A dataset name is one path component: it is validated before it
becomes part of a URL.

Examples:
    >>> model_dir("s3://lake-out", "cameras")
    's3://lake-out/cameras/model'
    >>> manifest_url("/data/out", "cameras")
    '/data/out/cameras/manifest.parquet'
    >>> validate_dataset_name("../etc")
    Traceback (most recent call last):
    ...
    ValueError: invalid dataset name '../etc': use one folder name without '..', path separators or control characters
"""

from __future__ import annotations

import re

from gan_augment.io.fsio import join_url, parent_url

MANIFEST_FILE = "manifest.parquet"
MODEL_DIR = "model"
MODEL_FILE, CARD_FILE = "model.pt", "model.json"
CHECKPOINTS_DIR, SAMPLES_DIR = "checkpoints", "samples"
SYNTHETIC_DIR, FEATURES_DIR = "synthetic", "features"
REPORT_FILE, INDEX_FILE = "report.html", "index.html"
NEAR_DUPLICATES_FILE = "near_duplicates.parquet"

_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


def is_valid_dataset_name(name: str) -> bool:
    """Whether `name` is safe as one path component (no '..', separators or control characters)."""
    return bool(name) and name not in (".", "..") and ".." not in name and not _BAD_NAME.search(name)


def validate_dataset_name(name: str) -> str:
    """Return `name` if it is safe as one path component, else raise ValueError."""
    if not is_valid_dataset_name(name):
        raise ValueError(
            f"invalid dataset name {name!r}: use one folder name without '..', path separators "
            "or control characters"
        )
    return name


def dataset_dir(out: str, dataset: str) -> str:
    """`<out>/<dataset>`, after validating the name."""
    return join_url(out, validate_dataset_name(dataset))


def manifest_url(out: str, dataset: str) -> str:
    return join_url(dataset_dir(out, dataset), MANIFEST_FILE)


def model_dir(out: str, dataset: str) -> str:
    return join_url(dataset_dir(out, dataset), MODEL_DIR)


def synthetic_dir(out: str, dataset: str) -> str:
    return join_url(dataset_dir(out, dataset), SYNTHETIC_DIR)


def features_dir(out: str, dataset: str) -> str:
    return join_url(dataset_dir(out, dataset), FEATURES_DIR)


def report_url(out: str, dataset: str) -> str:
    return join_url(dataset_dir(out, dataset), REPORT_FILE)


def near_duplicates_url(out: str, dataset: str) -> str:
    return join_url(dataset_dir(out, dataset), NEAR_DUPLICATES_FILE)


def index_url(out: str) -> str:
    """`<out>/index.html`: the reports of every dataset of an output root."""
    return join_url(out, INDEX_FILE)


def manifest_of_model(model_location: str) -> str:
    """The manifest beside a model directory `<out>/<dataset>/model`."""
    return join_url(parent_url(model_location), MANIFEST_FILE)


def model_file(model_location: str) -> str:
    return join_url(model_location, MODEL_FILE)


def card_file(model_location: str) -> str:
    return join_url(model_location, CARD_FILE)


def checkpoints_dir(model_location: str) -> str:
    return join_url(model_location, CHECKPOINTS_DIR)


def samples_file(model_location: str, name: str) -> str:
    """`<model>/samples/<name>` (a PNG grid or the loss curve)."""
    return join_url(model_location, SAMPLES_DIR, name)
