"""fsspec plumbing shared by every module that touches storage: filesystems set up with one
retry layer each, retried reads, atomic writes and bounded concurrency. URL helpers (`urls`) and
retries (`retries`) are re-exported here.

Every location is an fsspec URL (`/abs/path`, `file://`, `s3://bucket/prefix`, `memory://`).
`storage_options` are passed to fsspec unchanged; fsspec's own environment configuration
(`FSSPEC_S3_ENDPOINT_URL`, ...) and the standard AWS variables apply as usual.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import queue
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from gan_augment.io.progress import Progress
from gan_augment.io.retries import S3_PROTOCOLS, S3_RETRIES, is_transient, retry
from gan_augment.io.urls import basename, join_url, parent_url, redact_url

# Re-exported: callers reach URL helpers and retries through fsio.
__all__ = ["S3_RETRIES", "atomic_open", "atomic_write_bytes", "basename", "concurrent_fs", "default_workers",
           "exists", "get_fs", "is_transient", "join_url", "parallel_map", "parent_url", "protocol_of", "read_bytes",
           "redact_url", "remove", "retry", "to_url", "with_botocore_config"]

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)

# Object stores whose single PUT is already atomic: the object appears whole or not at all.
_ATOMIC_PUT_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"}


def get_fs(url: str, storage_options: dict[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and protocol-less path for `url`. On S3, botocore's retries
    (`S3_RETRIES`) are the only retry layer, unless `config_kwargs` already say how to retry."""
    if fsspec.utils.get_protocol(url) in S3_PROTOCOLS:
        storage_options = with_botocore_config(storage_options, retries=S3_RETRIES)
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if protocol_of(fs) in S3_PROTOCOLS:
        fs.retries = 1  # s3fs's retry loop around botocore's: one try, so the layers do not multiply
    return fs, path


def with_botocore_config(storage_options: dict[str, Any] | None, **defaults: Any) -> dict[str, Any]:
    """S3 storage options with `defaults` added to botocore's `config_kwargs`. What the caller
    gave and what fsspec's configuration (`fsspec.config.conf["s3"]`) sets win over the defaults."""
    options = dict(storage_options or {})
    configured = fsspec.config.conf.get("s3", {}).get("config_kwargs", {})
    options["config_kwargs"] = {**defaults, **configured, **options.get("config_kwargs", {})}
    return options


def protocol_of(fs: fsspec.AbstractFileSystem) -> str:
    """The primary protocol name of `fs` ("s3", "file", "memory", ...)."""
    protocol = fs.protocol
    return protocol[0] if isinstance(protocol, (tuple, list)) else protocol


def to_url(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The full URL of a protocol-less `path` on `fs` (the inverse of `get_fs`)."""
    return fs.unstrip_protocol(path)


def read_bytes(url: str, storage_options: dict[str, Any] | None = None) -> bytes:
    fs, path = get_fs(url, storage_options)
    return retry(lambda: fs.cat_file(path), fs=fs, what=f"read {redact_url(url)}")


def exists(url: str, storage_options: dict[str, Any] | None = None) -> bool:
    fs, path = get_fs(url, storage_options)
    return retry(lambda: fs.exists(path), fs=fs, what=f"stat {redact_url(url)}")


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


def _umask() -> int:
    """The process's umask. Linux shows it in /proc; elsewhere reading it means setting it, which
    for a moment is not thread-safe (another thread could create a file under umask 0)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


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
        # mkstemp creates the file 0600; a manifest or table on a shared store must be readable
        # as one written by open() is: 0666 less the process's umask.
        os.fchmod(fd, 0o666 & ~_umask())
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
        retry(lambda: put(path), fs=fs, what=f"write {redact_url(url)}")
        return
    tmp = posixpath.join(posixpath.dirname(path), f".tmp-{uuid.uuid4().hex}-{posixpath.basename(path)}")
    retry(lambda: put(tmp), fs=fs, what=f"write {redact_url(url)}")
    fs.mv(tmp, path)


def remove(url: str, storage_options: dict[str, Any] | None = None) -> None:
    """Delete a file if it exists."""
    fs, path = get_fs(url, storage_options)
    try:
        retry(lambda: fs.rm_file(path), fs=fs, what=f"delete {redact_url(url)}")
    except FileNotFoundError:
        pass


# -- concurrent object access -----------------------------------------------------------------


def default_workers(fs: fsspec.AbstractFileSystem) -> int:
    """How many objects to work on at once: object stores are latency-bound, so many requests
    overlap; on local disks a few threads per core overlap file reads with decoding."""
    if isinstance(fs, LocalFileSystem) or protocol_of(fs) == "memory":
        return min(16, 4 * (os.cpu_count() or 1))
    return 32


def concurrent_fs(
    url: str, storage_options: dict[str, Any] | None, max_workers: int | None = None
) -> tuple[fsspec.AbstractFileSystem, int]:
    """The filesystem of `url` set up for `max_workers` concurrent requests (default:
    `default_workers`), and that worker count.

    For S3 the HTTP connection pool grows to the worker count: aiobotocore keeps 10
    connections by default, which would cap the requests in flight at 10 whatever the thread
    count. Options given by the caller or by fsspec's configuration win.
    """
    fs, _ = get_fs(url, storage_options)
    workers = max_workers or default_workers(fs)
    if protocol_of(fs) in S3_PROTOCOLS:
        fs, _ = get_fs(url, with_botocore_config(storage_options, max_pool_connections=workers))
    return fs, workers


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    max_workers: int,
    ordered: bool = False,
    window: int | None = None,
    progress: str | None = None,
    counts: Sequence[int] | None = None,
) -> Iterator[tuple[int, R]]:
    """Apply `fn` to `items` in a thread pool, yielding (index, result) pairs.

    At most `window` items (default 4 x max_workers) are submitted and not yet yielded, so a
    long listing never materialises all results at once. Unordered results come as they
    complete; `ordered=True` yields in input order. `fn` should record per-item failures in its
    result; an exception it raises propagates and stops the map. With `progress` (a title),
    long maps show a progress bar on a terminal and a log line every 10 seconds elsewhere; it
    counts objects, `counts[i]` for item i where an item is a chunk of them (default one).
    """
    total = sum(counts) if counts is not None else len(items) if hasattr(items, "__len__") else None
    bar = Progress(progress, "obj", total=total) if progress else None
    try:
        yield from _bounded_map(fn, items, max_workers, ordered, window or 4 * max_workers, bar, counts)
    finally:
        if bar is not None:
            bar.close()


def _bounded_map(
    fn: Callable[[T], R], items: Iterable[T], max_workers: int, ordered: bool, window: int, bar: Progress | None,
    counts: Sequence[int] | None,
) -> Iterator[tuple[int, R]]:
    # Finished futures report through a queue: O(1) per item, where concurrent.futures.wait
    # would register a waiter on every pending future for every result.
    done: queue.SimpleQueue[tuple[int, Future[R]]] = queue.SimpleQueue()
    iterator = enumerate(items)
    finished: dict[int, R] = {}
    submitted = yielded = next_index = 0  # next_index: the next index to yield when ordered
    exhausted = False
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        while True:
            while not exhausted and submitted - yielded < window:
                item = next(iterator, None)
                if item is None:
                    exhausted = True
                    break
                future = pool.submit(fn, item[1])
                future.add_done_callback(lambda f, index=item[0]: done.put((index, f)))
                submitted += 1
            if submitted == yielded:
                return
            index, future = done.get()
            finished[index] = future.result()
            if bar is not None:
                bar.advance(counts[index] if counts is not None else 1)
            if not ordered:
                yield index, finished.pop(index)
                yielded += 1
            while ordered and next_index in finished:
                yield next_index, finished.pop(next_index)
                next_index, yielded = next_index + 1, yielded + 1
