"""Retries of storage calls: which errors are worth another try, and one retry layer per
filesystem.

On S3, botocore retries every request itself (`fsio.get_fs` sets it up: `S3_RETRIES`), so
`retry` leaves S3 requests alone and retries only what botocore never saw (a response body that
broke off while it was read). Filesystems without retries of their own (local, memory, HTTP,
...) are retried by `retry` alone. Errors are classified by type, errno, HTTP status and AWS
error code, never by their message.
"""

from __future__ import annotations

import errno
import logging
import random
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from gan_augment.io.urls import redact_url

T = TypeVar("T")
log = logging.getLogger(__name__)

S3_PROTOCOLS = ("s3", "s3a")
# On S3, botocore is the one retry layer, in its "standard" mode: retries chosen by error code
# and HTTP status (throttling, 5xx, dropped connections), exponential backoff with full jitter,
# 5 attempts. s3fs's own retries are switched off and `retry` leaves S3 requests alone, so a
# store that keeps answering 503 sees 5 GETs per read, not attempts to the third power.
# "adaptive" mode (standard plus a client-side rate limit after throttling) made a read where
# 10% of requests were throttled many times slower (BENCHMARKS.md, "S3 retries under
# throttling"); a store that throttles by load can still ask for it in config_kwargs.
S3_RETRIES = {"mode": "standard", "total_max_attempts": 5}
# EBUSY: s3fs's SlowDown/ServiceUnavailable; EREMOTEIO: its InternalError.
_TRANSIENT_ERRNOS = {errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNABORTED, errno.EAGAIN, errno.EPIPE, errno.EBUSY,
                     getattr(errno, "EREMOTEIO", errno.ETIMEDOUT)}
# AWS error codes that mean "try again later" (from botocore's standard mode: throttling and transient).
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
                    "RequestThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
                    "BandwidthLimitExceeded", "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
                    "InternalError", "ServiceUnavailable", "TransactionInProgressException"}
# Errors of client libraries, by (module, class). A class counts only once its module is loaded:
# an error cannot come from a library that was never imported, and io stays light to import.
_PERMANENT_TYPES = (("ssl", "SSLCertVerificationError"), ("aiohttp", "ClientSSLError"))
_TRANSIENT_TYPES = (("botocore.exceptions", "HTTPClientError"), ("aiohttp", "ClientConnectionError"),
                    ("aiohttp", "ServerTimeoutError"), ("requests.exceptions", "ConnectionError"),
                    ("requests.exceptions", "Timeout"))
# A response body that broke off while it was read: after the client's retries returned, so a
# client that retries requests itself (botocore) never saw it.
_BODY_TYPES = (("http.client", "IncompleteRead"), ("aiohttp", "ClientPayloadError"),
               ("botocore.exceptions", "IncompleteReadError"), ("botocore.exceptions", "ResponseStreamingError"))


def _loaded_types(names: tuple[tuple[str, str], ...]) -> tuple[type, ...]:
    """The classes of `names` whose modules are imported already."""
    modules = ((sys.modules.get(module), name) for module, name in names)
    return tuple(getattr(module, name) for module, name in modules if module is not None and hasattr(module, name))


def _http_status(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)  # botocore's ClientError: a dict; requests' HTTPError: a Response
    if status is None and isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    elif status is None and response is not None:
        status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _error_code(exc: BaseException) -> str | None:
    """The AWS error code of botocore's ClientError ("SlowDown", "NoSuchKey", ...)."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code if isinstance(code, str) else None


def _causes(exc: BaseException | None) -> list[BaseException]:
    """`exc` and the errors it was raised from, outermost first (filesystems wrap client errors)."""
    chain: list[BaseException] = []
    while exc is not None and len(chain) < 5:
        chain.append(exc)
        exc = exc.__cause__
    return chain


def is_transient(exc: BaseException) -> bool:
    """Whether a storage error is worth retrying: timeouts, dropped connections, throttling and
    5xx answers, also when a filesystem wrapped them (s3fs turns S3's 503 SlowDown into
    OSError(EBUSY) raised from botocore's ClientError). Errors are told apart by type, errno,
    HTTP status and AWS error code, never by their message.

    Examples:
        >>> import errno
        >>> is_transient(TimeoutError("read timed out")), is_transient(OSError(errno.EBUSY, "SlowDown"))
        (True, True)
        >>> is_transient(FileNotFoundError("s3://lake/a.png")), is_transient(RuntimeError("503 timed out"))
        (False, False)
    """
    permanent, transient = _loaded_types(_PERMANENT_TYPES), _loaded_types(_TRANSIENT_TYPES + _BODY_TYPES)
    for error in _causes(exc):
        if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, *permanent)):
            return False
        if isinstance(error, (TimeoutError, ConnectionError, *transient)):
            return True
        if isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS:
            return True
        if _error_code(error) in _TRANSIENT_CODES:
            return True
        status = _http_status(error)
        if status is not None:
            return status >= 500 or status == 429
    return False


def is_broken_body(exc: BaseException) -> bool:
    """Whether a response body broke off while it was read (a truncated or reset transfer)."""
    body = _loaded_types(_BODY_TYPES)
    return bool(body) and any(isinstance(error, body) for error in _causes(exc))


def retries_requests(fs: Any) -> bool:
    """Whether `fs`'s client retries its own requests (S3: botocore, set up by `fsio.get_fs`)."""
    protocol = getattr(fs, "protocol", None)  # duck-typed filesystems may have none
    protocols = protocol if isinstance(protocol, (tuple, list)) else (protocol,)
    return bool(protocols) and protocols[0] in S3_PROTOCOLS


def retry(
    call: Callable[[], T],
    *,
    fs: Any = None,
    attempts: int = 5,
    base_delay: float = 0.1,
    max_delay: float = 5.0,
    what: str = "storage call",
) -> T:
    """Run `call`, retrying transient errors (`is_transient`) with exponential backoff and full
    jitter (the AWS architecture blog's recommendation); permanent errors raise at once.

    Args:
        call: the storage call, without arguments.
        fs: the filesystem `call` uses. When its client retries requests itself
            (`retries_requests`: S3), only a body that broke off while it was read is retried
            here; every other error already outlasted the client's retries.
        attempts: calls at most, the first included.
        base_delay, max_delay: the backoff's scale and cap, in seconds.
        what: what the call does, for the debug log.

    Examples:
        >>> calls = []
        >>> def flaky():
        ...     calls.append(1)
        ...     if len(calls) < 2:
        ...         raise TimeoutError("read timed out")
        ...     return "done"
        >>> retry(flaky, base_delay=0.001), len(calls)
        ('done', 2)
    """
    retryable = is_broken_body if fs is not None and retries_requests(fs) else is_transient
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - classified below
            if attempt == attempts or not retryable(exc):
                raise
            delay = random.uniform(0, min(max_delay, base_delay * 2**attempt))
            log.debug("%s failed (%s: %s); retry %d/%d in %.2fs", what, type(exc).__name__,
                      redact_url(str(exc)), attempt, attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
