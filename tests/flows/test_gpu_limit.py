"""The gpu tag: with a tag concurrency limit of 1, two trainings never overlap."""

from __future__ import annotations

import os
import threading
import time

from prefect import flow
from prefect.client.orchestration import get_client

import pipelines.train_dataset as train_module
from pipelines.common import GPU_TAG


def test_a_gpu_limit_of_one_serialises_trainings(tmp_path, png_writer, tiny_model_config, tiny_train_config,
                                                 monkeypatch):
    store, out = tmp_path / "store", str(tmp_path / "out")
    for name in ("left", "right"):
        png_writer(str(store / name), 16)
    spans, lock, real_refresh = [], threading.Lock(), train_module.refresh_model

    def timed_refresh(*args, **kwargs):
        started = time.monotonic()
        try:
            return real_refresh(*args, **kwargs)
        finally:
            with lock:
                spans.append((started, time.monotonic()))

    monkeypatch.setattr(train_module, "refresh_model", timed_refresh)

    @flow
    def two_trainings_at_once() -> list[dict]:
        futures = [train_module.train_model.submit(name, os.path.join(store, name), out, tiny_model_config,
                                                   tiny_train_config) for name in ("left", "right")]
        return [future.result() for future in futures]

    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=1)
        # Prefect's task engine remembers for 5 s that a tag had no limit (a client-side TTL
        # cache in prefect.concurrency.services); earlier tests ran gpu-tagged tasks without one.
        time.sleep(6)
        try:
            summaries = two_trainings_at_once()
        finally:
            client.delete_concurrency_limit_by_tag(GPU_TAG)
    assert [summary["status"] for summary in summaries] == ["trained", "trained"]
    (first_start, first_end), (second_start, _) = sorted(spans)
    assert first_end <= second_start  # the second training waited for the slot
