"""The gpu tag: with a tag concurrency limit of 1, two trainings never overlap."""

from __future__ import annotations

import os

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName

from pipelines.common import GPU_TAG
from pipelines.train_dataset import train_model


def test_a_gpu_limit_of_one_serialises_trainings(tmp_path, png_writer, tiny_model_config, tiny_train_config):
    store, out = tmp_path / "store", str(tmp_path / "out")
    for name in ("left", "right"):
        png_writer(str(store / name), 16)

    @flow
    def two_trainings_at_once() -> list[dict]:
        futures = [train_model.submit(name, os.path.join(store, name), out, tiny_model_config, tiny_train_config)
                   for name in ("left", "right")]
        return [future.result() for future in futures]

    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=1)
        try:
            state = two_trainings_at_once(return_state=True)
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
                task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="train-model")))
        finally:
            client.delete_concurrency_limit_by_tag(GPU_TAG)
    assert [summary["status"] for summary in state.result()] == ["trained", "trained"]
    assert len(runs) == 2 and all(GPU_TAG in run.tags for run in runs)
    first, second = sorted(runs, key=lambda run: run.start_time)
    assert first.end_time <= second.start_time  # the second waited for the slot
