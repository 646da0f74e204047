"""Worker processes under a time limit: a call that spins is cut off, a worker that dies is
reported, and the pool goes on serving."""

from __future__ import annotations

import os
import time

import pytest

from gan_augment.scan.images import ImageRejected
from gan_augment.scan.isolation import CallTimedOut, WorkerDied, WorkerPool, run_limited


def reject(status: str, reason: str) -> None:
    raise ImageRejected(status, reason)


@pytest.fixture
def pool():
    pool = WorkerPool(max_workers=1)
    yield pool
    pool.close()


def test_a_call_past_its_limit_is_cut_off_and_the_pool_goes_on(pool):
    with pytest.raises(CallTimedOut, match="still running after 0.5 s"):
        pool.run(time.sleep, 600, max_seconds=0.5)
    assert pool.run(abs, -3, max_seconds=60).value == 3


def test_a_worker_that_dies_is_reported_and_replaced(pool):
    with pytest.raises(WorkerDied, match="exit code 3"):
        pool.run(os._exit, 3, max_seconds=60)
    assert pool.run(abs, -4, max_seconds=60).value == 4


def test_exceptions_cross_back_with_their_fields(pool):
    with pytest.raises(ImageRejected) as caught:
        pool.run(reject, "corrupt", "cannot decode (broken data stream)", max_seconds=60)
    assert (caught.value.status, caught.value.reason) == ("corrupt", "cannot decode (broken data stream)")


def test_without_a_limit_the_call_runs_here():
    timed = run_limited(os.getpid, max_seconds=None)
    assert timed.value == os.getpid() and timed.seconds >= 0
    assert run_limited(os.getpid, max_seconds=60).value != os.getpid()
