"""fsio's concurrency and retry helpers: bounded parallel maps, transient-error classification
(including errors that s3fs wraps) and backoff."""

from __future__ import annotations

import errno
import threading
import time

import pytest

from gan_augment.io import fsio
from gan_augment.io.fsio import concurrent_fs, is_transient, parallel_map, retry


def test_parallel_map_returns_every_result_in_either_order():
    def slow_square(x: int) -> int:
        time.sleep(0.002 * (x % 3))
        return x * x

    ordered = list(parallel_map(slow_square, range(50), max_workers=4, ordered=True))
    assert ordered == [(i, i * i) for i in range(50)]
    unordered = list(parallel_map(slow_square, iter(range(50)), max_workers=4))
    assert sorted(unordered) == ordered


def test_parallel_map_bounds_the_work_in_flight():
    lock, state = threading.Lock(), {"now": 0, "most": 0, "started": 0}

    def tracked(x: int) -> int:
        with lock:
            state["now"] += 1
            state["started"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.001)
        with lock:
            state["now"] -= 1
        return x

    consumed = 0
    for _ in parallel_map(tracked, range(200), max_workers=3, window=6, ordered=True):
        consumed += 1
        assert state["started"] - consumed < 6  # never more than `window` results ahead of the consumer
    assert consumed == 200 and state["most"] <= 3


def test_parallel_map_propagates_an_exception():
    def fail_on_seven(x: int) -> int:
        if x == 7:
            raise RuntimeError("seven")
        return x

    with pytest.raises(RuntimeError, match="seven"):
        list(parallel_map(fail_on_seven, range(20), max_workers=2))


class ClientErrorLike(Exception):
    """What botocore raises: the HTTP status sits in `response`."""

    def __init__(self, status: int) -> None:
        super().__init__(f"An error occurred ({status})")
        self.response = {"ResponseMetadata": {"HTTPStatusCode": status}, "Error": {"Code": "X"}}


def wrapped(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize("error, transient", [
    (TimeoutError("read timed out"), True),
    (ConnectionResetError(errno.ECONNRESET, "reset by peer"), True),
    (OSError(errno.EBUSY, "Please reduce your request rate."), True),  # s3fs's SlowDown
    (ClientErrorLike(503), True),
    (ClientErrorLike(429), True),
    (ClientErrorLike(403), False),
    (wrapped(OSError(errno.EIO, "unknown"), ClientErrorLike(500)), True),
    (FileNotFoundError("gone"), False),
    (PermissionError("Access Denied"), False),
    (ValueError("bad argument"), False),
])
def test_is_transient(error, transient):
    assert is_transient(error) is transient


def test_retry_backs_off_on_transient_errors_only(monkeypatch):
    monkeypatch.setattr(fsio.time, "sleep", lambda seconds: None)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OSError(errno.EBUSY, "Please reduce your request rate.")
        return "done"

    assert retry(flaky) == "done" and len(calls) == 3
    calls.clear()

    def missing() -> str:
        calls.append(1)
        raise FileNotFoundError("gone")

    with pytest.raises(FileNotFoundError):
        retry(missing)
    assert len(calls) == 1


def test_concurrent_fs_sizes_the_s3_connection_pool():
    fs, workers = concurrent_fs("s3://bucket/prefix", {"anon": True}, 48)
    assert workers == 48 and fs.config_kwargs == {"max_pool_connections": 48}
    fs, _ = concurrent_fs("s3://bucket", {"anon": True, "config_kwargs": {"max_pool_connections": 5}})
    assert fs.config_kwargs == {"max_pool_connections": 5}
    local, workers = concurrent_fs("/tmp", None)
    assert workers == fsio.default_workers(local) and workers <= 16
