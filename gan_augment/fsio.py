"""fsspec plumbing shared by every module that touches storage: URL handling, retried reads,
atomic writes and credential redaction.

Every location is an fsspec URL (`/abs/path`, `file://`, `s3://bucket/prefix`, `memory://`).
`storage_options` are passed to fsspec unchanged; fsspec's own environment configuration
(`FSSPEC_S3_ENDPOINT_URL`, ...) and the standard AWS variables apply as usual.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import posixpath
import random
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

T = TypeVar("T")
log = logging.getLogger(__name__)

# Object stores whose single PUT is already atomic: the object appears whole or not at all.
_ATOMIC_PUT_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"}
_TRANSIENT_TEXT = re.compile(
    r"\b(5\d\d|429)\b|slow ?down|throttl|timed? ?out|temporar|connection (reset|aborted|refused)"
    r"|server disconnected|service unavailable|internal ?error|broken pipe|bad gateway",
    re.IGNORECASE,
)


def get_fs(url: str, storage_options: dict[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and protocol-less path for `url`."""
    return fsspec.core.url_to_fs(url, **(storage_options or {}))


def protocol_of(fs: fsspec.AbstractFileSystem) -> str:
    protocol = fs.protocol
    return protocol[0] if isinstance(protocol, (tuple, list)) else protocol


def join_url(base: str, *parts: str) -> str:
    """Join path parts onto an fsspec URL, keeping its protocol: join_url("s3://b/x", "m.pt")."""
    if "://" in base:
        protocol, rest = base.split("://", 1)
        return f"{protocol}://" + posixpath.join(rest, *parts)
    return os.path.join(base, *parts)


def to_url(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The full URL of a protocol-less `path` on `fs` (the inverse of `get_fs`)."""
    return fs.unstrip_protocol(path)


def basename(url: str) -> str:
    """The last path component of a URL or path, ignoring a trailing separator."""
    return posixpath.basename(url.rstrip("/").split("://", 1)[-1].rstrip(os.sep))


def redact_url(url: str) -> str:
    """`url` with any user:password@ part removed, for logs, errors and model cards."""
    return re.sub(r"(?<=://)[^/@]*@", "", url)


def is_transient(exc: BaseException) -> bool:
    """Whether a storage error is worth retrying: timeouts, resets, throttling and 5xx."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ETIMEDOUT, errno.ECONNRESET, errno.EAGAIN):
        return True
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status >= 500 or status == 429
    return bool(_TRANSIENT_TEXT.search(f"{type(exc).__name__}: {exc}"))


def retry(
    call: Callable[[], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.1,
    max_delay: float = 5.0,
    what: str = "storage call",
) -> T:
    """Run `call`, retrying transient errors with exponential backoff and full jitter
    (the AWS architecture blog's recommendation); permanent errors raise at once."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - classified below
            if attempt == attempts or not is_transient(exc):
                raise
            delay = random.uniform(0, min(max_delay, base_delay * 2**attempt))
            log.debug("%s failed (%s: %s); retry %d/%d in %.2fs", what, type(exc).__name__,
                      exc, attempt, attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def read_bytes(url: str, storage_options: dict[str, Any] | None = None) -> bytes:
    fs, path = get_fs(url, storage_options)
    return retry(lambda: fs.cat_file(path), what=f"read {redact_url(url)}")


def exists(url: str, storage_options: dict[str, Any] | None = None) -> bool:
    fs, path = get_fs(url, storage_options)
    return retry(lambda: fs.exists(path), what=f"stat {redact_url(url)}")


def atomic_write_bytes(url: str, data: bytes, storage_options: dict[str, Any] | None = None) -> None:
    """Write `data` to `url` so that a reader sees the old object or the new one, never a part.

    Local files go through `atomic_open`. Object stores commit a single PUT atomically already.
    Other filesystems get a temporary sibling that is moved into place.
    """
    fs, path = get_fs(url, storage_options)
    if isinstance(fs, LocalFileSystem):
        with atomic_open(url) as f:
            f.write(data)
        return
    _commit_remote(fs, path, url, lambda target: fs.pipe_file(target, data))


@contextlib.contextmanager
def atomic_open(url: str, storage_options: dict[str, Any] | None = None) -> Iterator[BinaryIO]:
    """A binary file whose bytes appear at `url` atomically when the `with` block exits cleanly.

    The bytes are written to a local temporary file first, so memory stays bounded however large
    the output grows (streamed Parquet files). A local target: the temporary file sits in the same
    folder, is fsynced and renamed over the target. A remote target: the file is uploaded in one
    put (atomic on object stores) or to a temporary sibling that is then moved. If the block
    raises, nothing is written and the temporary file is removed.
    """
    fs, path = get_fs(url, storage_options)
    local = isinstance(fs, LocalFileSystem)
    folder = (os.path.dirname(path) or ".") if local else None  # remote: the system temp dir
    if folder:
        os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=posixpath.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if local:
            os.replace(tmp, path)
        else:
            _commit_remote(fs, path, url, lambda target: fs.put_file(tmp, target))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _commit_remote(fs: fsspec.AbstractFileSystem, path: str, url: str, put: Callable[[str], None]) -> None:
    """Store one object at `path` with `put(target)`, atomically for readers of `path`."""
    if protocol_of(fs) in _ATOMIC_PUT_PROTOCOLS or protocol_of(fs) == "memory":
        retry(lambda: put(path), what=f"write {redact_url(url)}")
        return
    tmp = posixpath.join(posixpath.dirname(path), f".tmp-{uuid.uuid4().hex}-{posixpath.basename(path)}")
    retry(lambda: put(tmp), what=f"write {redact_url(url)}")
    fs.mv(tmp, path)


def remove(url: str, storage_options: dict[str, Any] | None = None) -> None:
    """Delete a file if it exists."""
    fs, path = get_fs(url, storage_options)
    try:
        retry(lambda: fs.rm_file(path), what=f"delete {redact_url(url)}")
    except FileNotFoundError:
        pass
