"""Fan-out: dark-data trains on a `process` work pool through `run_deployment`, served by a
worker subprocess on the test server, and waits with `wait_for_flow_run`; a failing dataset
fails its own run only; a run past its time is cancelled."""

from __future__ import annotations

import asyncio
import os
import time

import pyarrow.dataset as ds
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilter
from prefect.deployments import run_deployment
from prefect.flow_runs import wait_for_flow_run
from prefect.states import Cancelling

from gan_augment.config import TrainConfig
from pipelines.dark_data import dark_data
from pipelines.fan_out import train_on_work_pool, wait_for_training_run


def train_runs_on_the_pool() -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["gpu"])),
                                     flow_run_filter=FlowRunFilter())


def test_dark_data_fans_training_out_to_the_gpu_pool(
        gpu_worker, tmp_path, png_writer, tiny_model_config, tiny_train_config):
    store, out = tmp_path / "store", str(tmp_path / "out")
    png_writer(str(store / "cats"), 16)
    before = len(train_runs_on_the_pool())
    state = dark_data(str(store), out, train_work_pool="gpu", model=tiny_model_config, training=tiny_train_config,
                      num_samples=4, train_timeout_seconds=240, return_state=True)
    assert state.is_completed(), state.message + open(gpu_worker).read()[-3000:]
    row = state.result()[0]
    assert (row["dataset"], row["training"], row["steps"], row["export"]) == ("cats", "trained", 6, "written")
    assert ds.dataset(row["synthetic"]).count_rows() == 4
    runs = train_runs_on_the_pool()
    assert len(runs) == before + 1
    child = max(runs, key=lambda run: run.created)
    assert child.work_pool_name == "gpu" and child.parameters["dataset"] == "cats"
    assert child.parent_task_run_id is not None  # linked under the parent's start-training-run task


def test_a_failing_dataset_fails_its_own_training_run_only(
        gpu_worker, tmp_path, png_writer, tiny_model_config, tiny_train_config):
    store = tmp_path / "store"
    png_writer(str(store / "cats"), 16)
    os.makedirs(store / "ghosts")  # no image at all: its training run fails

    @flow
    def fan_out() -> dict:
        return train_on_work_pool("gpu", ["ghosts", "cats"], str(store), str(tmp_path / "out"), tiny_model_config,
                                  tiny_train_config, timeout_seconds=240)

    summaries = fan_out()
    assert summaries["cats"]["status"] == "trained" and summaries["cats"]["steps"] == 6
    assert summaries["ghosts"]["status"] == "failed" and "found no images" in summaries["ghosts"]["reason"]


def test_an_unknown_work_pool_is_a_clear_error(prefect_api_url, tmp_path, png_writer, tiny_model_config):
    png_writer(str(tmp_path / "store" / "cats"), 4)
    state = dark_data(str(tmp_path / "store"), str(tmp_path / "out"), train_work_pool="tpu",
                      model=tiny_model_config, return_state=True)
    assert state.is_failed() and "no train-dataset deployment sends its runs to work pool 'tpu'" in state.message


def test_a_timed_out_training_run_is_cancelled_not_left_running(
        gpu_worker, tmp_path, png_writer, tiny_model_config, tiny_train_config):
    store, out = tmp_path / "store", tmp_path / "out"
    png_writer(str(store / "cats"), 16)
    endless = TrainConfig(**{**tiny_train_config.to_dict(), "steps": 10**6, "max_seconds": 3600})
    child = run_deployment("train-dataset/gpu", timeout=0, parameters={
        "dataset": "cats", "store_url": str(store), "out_url": str(out), "model": tiny_model_config.to_dict(),
        "training": endless.to_dict()})
    try:
        with get_client(sync_client=True) as client:
            for _ in range(600):  # bounded: until the worker's process trains (not a timing assertion)
                if client.read_flow_run(child.id).state.is_running():
                    break
                time.sleep(0.5)
            assert client.read_flow_run(child.id).state.is_running(), open(gpu_worker).read()[-3000:]

        @flow
        async def wait_one_second() -> tuple:
            return await wait_for_training_run("cats", str(child.id), timeout_seconds=1)

        state_type, name, message = asyncio.run(wait_one_second())
        assert (state_type, name) == ("FAILED", "TimedOut"), message
        assert message == "no result after 1 s: training run cancelled (it ended Cancelled)"
        run = asyncio.run(wait_for_flow_run(child.id, timeout=60))
        assert run.state.is_cancelled()
        assert not (out / "cats" / "model" / "model.pt").exists()  # the training never finished
    finally:  # never leave the endless run to the session's one-run worker
        with get_client(sync_client=True) as client:
            if not client.read_flow_run(child.id).state.is_final():
                client.set_flow_run_state(child.id, Cancelling(), force=True)
