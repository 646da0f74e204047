"""fsio's concurrency and retry helpers: bounded parallel maps, transient-error classification
by type, errno, status and code (including errors that s3fs wraps), backoff, and the one retry
layer per filesystem."""

from __future__ import annotations

import errno
import threading
import time

import aiohttp
import pytest

from gan_augment.io import fsio, retries
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
    """What botocore raises: the HTTP status and the AWS error code sit in `response`."""

    def __init__(self, status: int, code: str = "X") -> None:
        super().__init__(f"An error occurred ({status})")
        self.response = {"ResponseMetadata": {"HTTPStatusCode": status}, "Error": {"Code": code}}


def wrapped(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize("error, transient", [
    (TimeoutError("read timed out"), True),
    (ConnectionResetError(errno.ECONNRESET, "reset by peer"), True),
    (OSError(errno.EBUSY, "Please reduce your request rate."), True),  # s3fs's SlowDown
    (ClientErrorLike(503), True),
    (ClientErrorLike(429), True),
    (ClientErrorLike(400, "RequestTimeout"), True),  # by code: S3 answers a stalled upload 400
    (ClientErrorLike(403), False),
    (wrapped(OSError(errno.EIO, "unknown"), ClientErrorLike(500)), True),
    (aiohttp.ClientPayloadError("Response payload is not completed"), True),
    (aiohttp.ServerDisconnectedError(), True),
    (aiohttp.ClientResponseError(None, (), status=502), True),
    (FileNotFoundError("gone"), False),
    (PermissionError("Access Denied"), False),
    (ValueError("bad argument"), False),
    (RuntimeError("503 Service Unavailable: connection reset, timed out"), False),  # text alone says nothing
])
def test_is_transient(error, transient):
    assert is_transient(error) is transient


def test_retry_backs_off_on_transient_errors_only(monkeypatch):
    monkeypatch.setattr(retries.time, "sleep", lambda seconds: None)
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


def test_retry_leaves_s3_requests_to_botocore(monkeypatch):
    """On S3 a 503 already outlasted botocore's attempts: not retried again. A body that broke
    off while it was read came after them: retried."""
    monkeypatch.setattr(retries.time, "sleep", lambda seconds: None)
    s3, _ = fsio.get_fs("s3://bucket/key", {"anon": True})
    calls = []

    def throttled() -> str:
        calls.append(1)
        raise wrapped(OSError(errno.EBUSY, "Slow Down"), ClientErrorLike(503, "SlowDown"))

    with pytest.raises(OSError):
        retry(throttled, fs=s3)
    assert len(calls) == 1
    calls.clear()

    def truncated() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise aiohttp.ClientPayloadError("Response payload is not completed")
        return "done"

    assert retry(truncated, fs=s3) == "done" and len(calls) == 3


def test_get_fs_makes_botocore_the_only_s3_retry_layer():
    fs, _ = fsio.get_fs("s3://bucket/key", {"anon": True})
    assert fs.config_kwargs == {"retries": fsio.S3_RETRIES} and fs.retries == 1
    mine = {"retries": {"mode": "standard", "max_attempts": 2}}
    fs, _ = fsio.get_fs("s3://bucket/key", {"anon": True, "config_kwargs": mine})
    assert fs.config_kwargs == mine  # the caller's choice wins


def test_concurrent_fs_sizes_the_s3_connection_pool():
    fs, workers = concurrent_fs("s3://bucket/prefix", {"anon": True}, 48)
    assert workers == 48 and fs.config_kwargs == {"max_pool_connections": 48, "retries": fsio.S3_RETRIES}
    fs, _ = concurrent_fs("s3://bucket", {"anon": True, "config_kwargs": {"max_pool_connections": 5}})
    assert fs.config_kwargs["max_pool_connections"] == 5
    local, workers = concurrent_fs("/tmp", None)
    assert workers == fsio.default_workers(local) and workers <= 16
