"""`train-dataset`: one dataset of a store becomes an up-to-date model in `<out>/<dataset>/model`.

Skipped when the model card already records the current data fingerprint and config; resumed
from the newest checkpoint when a previous run crashed (both come from
`gan_augment.training.refresh.refresh_model`).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State

from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.io.fsio import join_url, read_bytes
from gan_augment.layout import validate_dataset_name
from gan_augment.training.refresh import refresh_model
from pipelines.artifacts import TrainingProgress, training_markdown
from pipelines.common import GPU_TAG, IO_TASK, artifact_key, resolve_storage_options, training_summary


@task(name="train-model", tags=[GPU_TAG], cache_policy=NO_CACHE)
def train_model(
    dataset: str,
    source_url: str,
    out_url: str,
    model: ModelConfig,
    training: TrainConfig,
    storage_options: dict[str, Any] | None = None,
    force: bool = False,
    labels_url: str | None = None,
) -> dict[str, Any]:
    """Train (or skip, or resume) one dataset; returns its training summary. With `labels_url`
    (a `uri,label` file) the model is class-conditional.

    No retries: training is compute, and a rerun resumes from the last checkpoint anyway.
    """
    progress = TrainingProgress(artifact_key("progress", dataset), dataset)
    outcome = refresh_model(source_url, out_url, model, training, dataset=dataset,
                            storage_options=storage_options, force=force, callback=progress, labels=labels_url)
    progress.update(100.0, f"{dataset}: {outcome.status} ({outcome.reason})")
    return training_summary(dataset, outcome.status, outcome.reason, outcome.card, outcome.model_dir)


@task(name="publish-training-report", **IO_TASK)
def publish_training_report(summary: dict[str, Any], storage_options: dict[str, Any] | None = None) -> None:
    """A markdown artifact with the final sample grid (embedded) and metrics of one dataset."""
    grid = None
    if summary["samples"]:
        try:
            grid = read_bytes(summary["samples"], storage_options)
        except FileNotFoundError:
            grid = None  # a model trained before sample grids existed; report it without one
    create_markdown_artifact(training_markdown(summary, grid), key=artifact_key("training", summary["dataset"]),
                             description=f"training report of {summary['dataset']}")


@flow(name="train-dataset")
def train_dataset(
    dataset: str,
    store_url: str,
    out_url: str,
    model: ModelConfig = ModelConfig(),
    training: TrainConfig = TrainConfig(),
    storage_options: dict[str, Any] | None = None,
    force: bool = False,
    credentials_block: str | None = None,
    labels_url: str | None = None,
) -> State:
    """Train a DCGAN on `<store_url>/<dataset>` into `<out_url>/<dataset>/model`.

    Args:
        dataset: the dataset (first-level folder of the store).
        store_url: the image store (any fsspec URL).
        out_url: the output root.
        model: the network shape (`ModelConfig` fields).
        training: the training run (`TrainConfig` fields; `max_seconds` is a clean budget).
        storage_options: fsspec options for both URLs; no credentials (they would be stored
            with the run), use the worker's environment for those.
        force: retrain even when the model is up to date.
        credentials_block: the name of a prefect-aws `AwsCredentials` block to take storage
            credentials from, loaded where this run executes; None: the worker's environment.
        labels_url: a CSV or Parquet file with columns `uri,label` for some or all images of the
            dataset (what `gan-augment select` writes and `evaluate --labels` reads): the model
            becomes class-conditional, the unlabelled images get pseudo-labels; None: unconditional.

    Returns:
        A Completed state (named "Skipped" when the model was already up to date) whose
        result is the training summary and whose message says why it trained or skipped.
    """
    options = resolve_storage_options(storage_options, credentials_block)
    validate_dataset_name(dataset)
    summary = train_model(dataset, join_url(store_url, dataset), out_url, model, training, options, force,
                          labels_url)
    publish_training_report(summary, options)
    name = "Skipped" if summary["status"] == "skipped" else "Completed"
    return Completed(name=name, message=summary["reason"], data=summary)
