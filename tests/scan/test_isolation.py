"""Worker processes under a time limit: a call that spins is cut off, a worker that dies is
reported, and the pool goes on serving."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from gan_augment.scan.images import ImageRejected
from gan_augment.scan.isolation import CallTimedOut, WorkerDied, WorkerPool, run_limited, run_many_limited


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
    first = pool.run(os.getpid, max_seconds=60).value
    assert pool.pids() == [first]
    with pytest.raises(WorkerDied, match="exit code 3"):
        pool.run(os._exit, 3, max_seconds=60)
    assert pool.pids() == []
    assert pool.run(abs, -4, max_seconds=60).value == 4 and pool.pids() != [first]


def test_exceptions_cross_back_with_their_fields(pool):
    with pytest.raises(ImageRejected) as caught:
        pool.run(reject, "corrupt", "cannot decode (broken data stream)", max_seconds=60)
    assert (caught.value.status, caught.value.reason) == ("corrupt", "cannot decode (broken data stream)")


def test_without_a_limit_the_call_runs_here():
    timed = run_limited(os.getpid, max_seconds=None)
    assert timed.value == os.getpid() and timed.seconds >= 0
    assert run_limited(os.getpid, max_seconds=60).value != os.getpid()


def sleep_or_exit(seconds: float, code: int | None = None) -> float:
    """Sleep, then return the seconds; with a code, exit the process at once instead."""
    if code is not None:
        os._exit(code)
    time.sleep(seconds)
    return seconds


def test_a_batch_keeps_each_call_to_its_own_limit_and_order(pool):
    calls = [(0.0,), (600.0,), (0.01,), (0.0, 3), (0.0,), ("not a number",)]
    outcomes = pool.run_many(sleep_or_exit, calls, max_seconds=2.0)
    assert outcomes[0].value == 0.0 and outcomes[2].value == 0.01 and outcomes[4].value == 0.0
    assert isinstance(outcomes[1], CallTimedOut)
    assert isinstance(outcomes[3], WorkerDied) and "exit code 3" in str(outcomes[3])
    assert isinstance(outcomes[5], TypeError)
    assert pool.run(abs, -5, max_seconds=60).value == 5


def test_a_batch_of_slow_calls_is_not_cut_off_for_its_total(pool):
    outcomes = pool.run_many(sleep_or_exit, [(0.4,)] * 4, max_seconds=1.0)
    assert [o.value for o in outcomes] == [0.4] * 4


def test_without_a_limit_a_batch_runs_here_and_returns_exceptions():
    outcomes = run_many_limited(sleep_or_exit, [(0.0,), ("x",)], max_seconds=None)
    assert outcomes[0].value == 0.0 and isinstance(outcomes[1], TypeError)


def test_a_worker_never_imports_the_parent_s_main_module(tmp_path):
    # A training script imports torch; its decoding workers must not (multiprocessing's spawn
    # imports the main module in every child: 2 s and half a GB each). A function only the
    # script defines cannot run there, and says why.
    marker = tmp_path / "imported"
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import xml.dom.minidom  # what a script imports (torch, say), a worker has no use for
        with open({str(marker)!r}, "a") as f:
            f.write("once\\n")
        from gan_augment.scan.isolation import WorkerPool

        def here(x):
            return x

        if __name__ == "__main__":
            pool = WorkerPool(max_workers=1)
            print(pool.run(abs, -2, max_seconds=60).value)
            try:
                pool.run(here, 1, max_seconds=60)
            except RuntimeError as exc:
                print(exc)
            print(pool.run(eval, "'xml.dom.minidom' in __import__('sys').modules", max_seconds=60).value)
            pool.close()
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    value, error, imported = done.stdout.splitlines()
    assert value == "2" and "cannot load the function" in error and imported == "False"
    assert marker.read_text() == "once\n"
