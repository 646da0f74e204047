"""Training many datasets: one after another in this process, or fanned out to the
`train-dataset` deployment on a work pool (GPU workers), then collected from the model cards.

Either way a dataset whose training fails yields a "failed" summary with the reason; it never
stops the other datasets. Fanned-out runs are awaited with Prefect's `wait_for_flow_run` (state
events, no polling), one waiting task per run; a run past its time is cancelled, not abandoned.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, WorkPoolFilter, WorkPoolFilterName
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.exceptions import FlowRunWaitTimeout
from prefect.flow_runs import wait_for_flow_run
from prefect.states import Cancelling, State

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
    storage_options: dict[str, Any] | None = None, credentials_block: str | None = None, *,
    resolved_options: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run train-dataset as a subflow for each dataset, one after another (one device); a dataset
    named in `labels` trains a class-conditional model on that labels file.

    `storage_options` and `credentials_block` go to the subflows as parameters; the
    `resolved_options` (with the block's credentials) serve only this process's own reads.
    """
    summaries = {}
    for dataset in datasets:
        state: State = train_dataset(dataset, store_url, out_url, model, training, storage_options,
                                     credentials_block=credentials_block,
                                     labels_url=(labels or {}).get(dataset), return_state=True)
        summaries[dataset] = collect_training(dataset, state.type.value, state.name, state.message, out_url,
                                              resolved_options)
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


# After cancelling a timed-out run, how long to wait for its worker to confirm that it stopped.
CANCEL_GRACE_SECONDS = 120


@task(name="wait-for-training-run", task_run_name="wait-for-{dataset}", cache_policy=NO_CACHE)
async def wait_for_training_run(
    dataset: str, run_id: str, timeout_seconds: float | None = None
) -> tuple[str, str, str | None]:
    """Wait for one train-dataset flow run to end, with Prefect's `wait_for_flow_run` (it
    follows the run's state events; nothing polls).

    A run still unfinished after `timeout_seconds` is cancelled: set to Cancelling, so that its
    worker stops the training process (a run no worker has picked up yet goes straight to
    Cancelled), and reported FAILED with a message saying so.

    Returns:
        (state type, state name, message) of the run's final state.
    """
    logger = get_run_logger()
    try:
        run = await wait_for_flow_run(UUID(run_id), timeout=timeout_seconds)
    except FlowRunWaitTimeout:
        return await cancel_training_run(dataset, UUID(run_id), timeout_seconds)
    logger.info("%s: training run %s ended %s", dataset, run.name, run.state.name)
    return run.state.type.value, run.state.name, run.state.message


async def cancel_training_run(dataset: str, run_id: UUID, timeout_seconds: float | None) -> tuple[str, str, str]:
    """Cancel a timed-out training run and wait (briefly) for its worker to confirm."""
    logger = get_run_logger()
    async with get_client() as client:
        await client.set_flow_run_state(run_id, Cancelling(message=f"no result after {timeout_seconds:.0f} s"))
        logger.warning("%s: training run %s had no result after %.0f s; cancelling it", dataset, run_id,
                       timeout_seconds)
        try:
            run = await wait_for_flow_run(run_id, timeout=CANCEL_GRACE_SECONDS, client=client)
            outcome = f"cancelled (it ended {run.state.name})"
        except FlowRunWaitTimeout:
            outcome = f"cancelling; its worker had not confirmed after {CANCEL_GRACE_SECONDS} s"
    return "FAILED", "TimedOut", f"no result after {timeout_seconds:.0f} s: training run {outcome}"


def train_on_work_pool(
    work_pool: str, datasets: list[str], store_url: str, out_url: str, model: ModelConfig,
    training: TrainConfig, storage_options: dict[str, Any] | None = None, credentials_block: str | None = None, *,
    resolved_options: dict[str, Any] | None = None, timeout_seconds: float | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Start one train-dataset run per dataset on `work_pool`, wait for all (each cancelled after
    `timeout_seconds`), collect each. The runs get `credentials_block` by name and load the block
    on their worker; `resolved_options` serve only this process's reads of the model cards."""
    deployment = find_train_deployment(work_pool)
    run_ids = []
    for dataset in datasets:
        parameters = {"dataset": dataset, "store_url": store_url, "out_url": out_url, "model": model.to_dict(),
                      "training": training.to_dict(), "storage_options": storage_options,
                      "credentials_block": credentials_block}
        if (labels or {}).get(dataset):  # only then: a deployment made before labels keeps working
            parameters["labels_url"] = labels[dataset]
        run_ids.append(start_training_run(deployment, parameters))
    finals = wait_for_training_run.map(datasets, run_ids, unmapped(timeout_seconds)).result()
    return {dataset: collect_training(dataset, *final, out_url, resolved_options)
            for dataset, final in zip(datasets, finals)}
