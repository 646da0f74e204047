"""The scheduled path as a site runs it: a real `prefect server start` on loopback (its own home
and SQLite file), the README's two process pools, `prefect deploy` of deployments/prefect.yaml
itself, the automations of deployments/automations.yaml, and workers, all subprocesses
(`pipelines.local_stack`), stopped by their ids when the module's tests end, pass or fail.

Slow (Prefect and torch start in every flow-run process); select with `-m selfhosted`, leave
out with `-m "not selfhosted"`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any
from uuid import UUID

import pyarrow.dataset as ds
import pytest
import yaml
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter
from prefect.deployments import run_deployment
from prefect.events.schemas.automations import AutomationCore
from prefect.flow_runs import wait_for_flow_run

from gan_augment.gan.checkpoint import list_checkpoints, read_model_card
from gan_augment.layout import checkpoints_dir
from pipelines.local_stack import PROJECT_ROOT, LocalStack

pytestmark = pytest.mark.selfhosted

# The automation's window, shortened from the file's 90 s to keep the test short; the heartbeat
# stays every 30 s (Prefect's minimum), so 30 s of slack for a loaded machine remain.
CRASH_WINDOW_SECONDS = 60


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> LocalStack:
    """Server, pools, deployments, automations, a cpu worker and a gpu worker (--limit 1)."""
    root = tmp_path_factory.mktemp("self-hosted")
    with LocalStack(root / "prefect") as stack:
        stack.start_server()
        stack.store, stack.out = str(root / "store"), str(root / "out")
        stack.deploy(stack.store, stack.out)
        automations = yaml.safe_load((PROJECT_ROOT / "deployments" / "automations.yaml").read_text())
        with stack.client() as client:
            for automation in automations["automations"]:
                automation["trigger"]["within"] = CRASH_WINDOW_SECONDS
                client.create_automation(AutomationCore.model_validate(automation))
        stack.start_worker("cpu", "cpu-0")
        stack.start_worker("gpu", "gpu-0", limit=1)
        yield stack


def run_nightly(stack: LocalStack, timeout: float = 900, **parameters: Any) -> Any:
    """`prefect deployment run dark-data/nightly` with `parameters`; its final flow run."""
    with stack.client():  # the stack's server for this process's Prefect calls
        run = run_deployment("dark-data/nightly", parameters=parameters, timeout=0)
        final = asyncio.run(wait_for_flow_run(run.id, timeout=timeout))
    assert final.state.is_final(), stack.log_tail("cpu-0") + stack.log_tail("gpu-0")
    return final


def runs_under(stack: LocalStack, parent_id: UUID) -> list:
    """The flow runs one nightly run made: itself, its subflows and the training runs it
    started (linked by their parent task run)."""
    with stack.client() as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter())
        tasks = {task.id: task.flow_run_id for task in client.read_task_runs()}
    by_id = {run.id: run for run in runs}

    def parent_of(run) -> UUID | None:
        return tasks.get(run.parent_task_run_id) if run.parent_task_run_id else None

    def under(run) -> bool:
        while run is not None:
            if run.id == parent_id:
                return True
            run = by_id.get(parent_of(run))
        return False

    return [run for run in runs if under(run)]


def summary_rows(stack: LocalStack, flow_run_id: UUID) -> dict[str, dict]:
    with stack.client() as client:
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            key={"any_": ["dark-data-summary"]}, flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return {row["dataset"]: row for row in rows}


@pytest.fixture
def tiny(tiny_model_config, tiny_train_config):
    """tiny(**training fields) -> the nightly's parameters with the tests' tiny configs."""
    return lambda **training: {"model": tiny_model_config.to_dict(), "num_samples": 4,
                               "training": {**tiny_train_config.to_dict(), **training}}


def test_the_nightly_deployment_scans_trains_on_the_gpu_pool_and_exports(stack, png_writer, tiny):
    png_writer(os.path.join(stack.store, "digits"), 16)
    os.makedirs(os.path.join(stack.store, "notes"))
    with open(os.path.join(stack.store, "notes", "readme.txt"), "w") as f:
        f.write("not an image\n")
    final = run_nightly(stack, datasets=["digits", "notes"], **tiny())
    assert final.state.is_completed(), final.state.message
    runs = runs_under(stack, final.id)
    assert all(run.state.is_completed() for run in runs), [(run.name, run.state) for run in runs]
    with stack.client() as client:
        names = sorted(client.read_flow(run.flow_id).name for run in runs)
    assert names == ["dark-data", "export-dataset", "scan-store", "train-dataset"]
    (training,) = [run for run in runs if run.parameters.get("dataset") == "digits" and run.deployment_id]
    assert training.work_pool_name == "gpu" and final.work_pool_name == "cpu"

    rows = summary_rows(stack, final.id)
    assert set(rows) == {"digits", "notes"}
    assert (rows["digits"]["training"], rows["digits"]["steps"], rows["digits"]["export"]) == ("trained", 6, "written")
    assert rows["notes"]["training"] == "empty" and "no readable image" in rows["notes"]["error"]
    assert ds.dataset(rows["digits"]["synthetic"]).count_rows() == 4
    assert ds.dataset(rows["digits"]["features"]).count_rows() == 16
    card = read_model_card(rows["digits"]["model"])
    assert card["train_config"]["device"] == "auto" and card["steps"] == 6


def wait_for_checkpoint(stack: LocalStack, parent_id: UUID, timeout: float = 600) -> tuple[Any, str]:
    """The training run of the nightly run `parent_id` once it is Running and has written a
    checkpoint after step 0 (bounded waits; not a timing assertion); (run, its model dir).
    The checkpoint folder is watched closely: the kill must land before the training ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        training = [run for run in runs_under(stack, parent_id)
                    if run.deployment_id and "dataset" in run.parameters and run.state.is_running()]
        if training:
            model_dir = os.path.join(stack.out, training[0].parameters["dataset"], "model")
            while time.monotonic() < deadline and not os.path.exists(os.path.join(model_dir, "model.pt")):
                found = list_checkpoints(checkpoints_dir(model_dir))
                if found and found[0][0] > 0:  # past the step-0 checkpoint
                    return training[0], model_dir
                time.sleep(0.05)
            raise AssertionError(f"{model_dir}: the training ended before a checkpoint after step 0 was seen")
        time.sleep(0.5)
    raise AssertionError("no training run started\n" + stack.log_tail("gpu-0"))


def test_a_gpu_worker_killed_mid_training_loses_at_most_the_last_checkpoint(stack, png_writer, tiny):
    """The gpu worker and its flow-run process are killed during a training; the automation
    marks the silent run Crashed, the nightly run reports that dataset failed with the reason
    and exports the other (trained by a new worker); a re-run resumes from the checkpoint."""
    for name in ("alpha", "beta"):
        png_writer(os.path.join(stack.store, name), 16)
    parameters = {"datasets": ["alpha", "beta"],
                  **tiny(steps=150, log_every=5, checkpoint_every=5, sample_every=150)}
    with stack.client():
        parent = run_deployment("dark-data/nightly", parameters=parameters, timeout=0)
    victim, model_dir = wait_for_checkpoint(stack, parent.id)
    killed = stack.kill("gpu-0")
    assert int(str(victim.infrastructure_pid).rsplit(":", 1)[-1]) in killed  # its flow-run process too
    stack.start_worker("gpu", "gpu-1", limit=1)
    (last_checkpoint, _), *_ = list_checkpoints(checkpoints_dir(model_dir))
    crashed, other = victim.parameters["dataset"], ({"alpha", "beta"} - {victim.parameters["dataset"]}).pop()

    with stack.client():
        final = asyncio.run(wait_for_flow_run(parent.id, timeout=900))
    assert final.state.is_completed(), final.state.message + stack.log_tail("gpu-1")
    with stack.client() as client:
        assert client.read_flow_run(victim.id).state.is_crashed()
    rows = summary_rows(stack, parent.id)
    assert rows[crashed]["training"] == "failed" and "stopped sending heartbeats" in rows[crashed]["error"]
    assert rows[other]["export"] == "written"  # the others finish
    assert f"{crashed} (" in final.state.message  # named in the run's message, with its reason

    uninterrupted = read_model_card(rows[other]["model"])

    rerun = run_nightly(stack, **parameters)  # README: `prefect deployment run dark-data/nightly`
    rows = summary_rows(stack, rerun.id)
    assert (rows[crashed]["training"], rows[crashed]["export"]) == ("trained", "written")
    resumed = read_model_card(model_dir)
    assert resumed["resumed_from"] == last_checkpoint > 0 and resumed["steps"] == 150
    for key in ("model_config", "train_config", "steps"):
        assert resumed[key] == uninterrupted[key], key
