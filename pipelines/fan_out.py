"""Training many datasets: one after another in this process, or fanned out to the
`train-dataset` deployment on a work pool (GPU workers), then collected from the model cards.

Either way a dataset whose training fails yields a "failed" summary with the reason; it never
stops the other datasets.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.states import State

from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.gan.checkpoint import read_model_card
from pipelines.common import IO_TASK, model_dir_url, training_summary
from pipelines.train_dataset import train_dataset

TRAIN_FLOW = "train-dataset"


@task(name="collect-training", **IO_TASK)
def collect_training(
    dataset: str, state_type: str, state_name: str, message: str | None, out_url: str,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The training summary of `dataset` from its train-dataset run's final state and the
    model card that run left in the output root (shared storage, so this works for runs on
    other machines too)."""
    model_dir = model_dir_url(out_url, dataset)
    if state_type != "COMPLETED":
        return training_summary(dataset, "failed", message or f"the training run ended {state_name}", None, model_dir)
    status = "skipped" if state_name == "Skipped" else "trained"
    return training_summary(dataset, status, message or status, read_model_card(model_dir, storage_options), model_dir)


def train_in_process(
    datasets: list[str], store_url: str, out_url: str, model: ModelConfig, training: TrainConfig,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run train-dataset as a subflow for each dataset, one after another (one device)."""
    summaries = {}
    for dataset in datasets:
        state: State = train_dataset(dataset, store_url, out_url, model, training, storage_options,
                                     return_state=True)
        summaries[dataset] = collect_training(dataset, state.type.value, state.name, state.message, out_url,
                                              storage_options)
    return summaries


@task(name="find-train-deployment", **IO_TASK)
def find_train_deployment(work_pool: str) -> str:
    """The "train-dataset/<name>" deployment whose runs go to `work_pool`.

    Raises:
        ValueError: there is none, or more than one.
    """
    with get_client(sync_client=True) as client:
        found = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=[TRAIN_FLOW])),
                                        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[work_pool])))
    names = sorted(f"{TRAIN_FLOW}/{deployment.name}" for deployment in found)
    if not names:
        raise ValueError(
            f"no {TRAIN_FLOW} deployment sends its runs to work pool {work_pool!r}; create it with "
            "`prefect deploy --prefect-file deployments/prefect.yaml --all` (see README), or leave "
            "train_work_pool empty to train in this process"
        )
    if len(names) > 1:
        raise ValueError(f"several {TRAIN_FLOW} deployments use work pool {work_pool!r} ({', '.join(names)}); "
                         "keep one per pool")
    return names[0]


@task(name="start-training-run", cache_policy=NO_CACHE)
def start_training_run(deployment: str, parameters: dict[str, Any]) -> str:
    """Create one train-dataset flow run on the work pool and return its id at once.

    The idempotency key ties it to this parent run and dataset, so a retried parent run picks
    up the child it already started instead of training the dataset twice.
    """
    context = FlowRunContext.get()
    key = f"{context.flow_run.id}/{parameters['dataset']}" if context and context.flow_run else None
    return str(run_deployment(deployment, parameters=parameters, timeout=0, idempotency_key=key).id)


@task(name="wait-for-training-runs", cache_policy=NO_CACHE)
def wait_for_training_runs(
    run_ids: dict[str, str], poll_seconds: float = 5.0, timeout_seconds: float | None = None
) -> dict[str, tuple[str, str, str | None]]:
    """Poll until every flow run in `run_ids` (dataset -> flow run id) reaches a final state.

    Returns:
        dataset -> (state type, state name, message). A run still unfinished after
        `timeout_seconds` is reported FAILED with a message saying so (it keeps running).
    """
    logger = get_run_logger()
    pending = {UUID(run_id): dataset for dataset, run_id in run_ids.items()}
    final: dict[str, tuple[str, str, str | None]] = {}
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    with get_client(sync_client=True) as client:
        while pending:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(pending))))
            for run in runs:
                if run.state is not None and run.state.is_final():
                    dataset = pending.pop(run.id)
                    final[dataset] = (run.state.type.value, run.state.name, run.state.message)
                    logger.info("%s: training run %s ended %s", dataset, run.name, run.state.name)
            if pending and deadline is not None and time.monotonic() > deadline:
                for run in runs:
                    if run.id in pending:
                        final[pending.pop(run.id)] = (
                            "FAILED", run.state.name if run.state else "unknown",
                            f"no result after {timeout_seconds:.0f} s (training run {run.name} was still "
                            f"{run.state.name if run.state else 'unknown'}; it was not cancelled)")
                for dataset in pending.values():  # runs the API no longer lists
                    final[dataset] = ("FAILED", "unknown", "the training run disappeared from the API")
                pending.clear()
            if pending:
                time.sleep(poll_seconds)
    return final


def train_on_work_pool(
    work_pool: str, datasets: list[str], store_url: str, out_url: str, model: ModelConfig,
    training: TrainConfig, storage_options: dict[str, Any] | None = None, *,
    poll_seconds: float = 5.0, timeout_seconds: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Start one train-dataset run per dataset on `work_pool`, wait for all, collect each."""
    deployment = find_train_deployment(work_pool)
    run_ids = {}
    for dataset in datasets:
        parameters = {"dataset": dataset, "store_url": store_url, "out_url": out_url, "model": model.to_dict(),
                      "training": training.to_dict(), "storage_options": storage_options}
        run_ids[dataset] = start_training_run(deployment, parameters)
    final = wait_for_training_runs(run_ids, poll_seconds, timeout_seconds)
    return {dataset: collect_training(dataset, *final[dataset], out_url, storage_options) for dataset in datasets}
