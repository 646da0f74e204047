"""Time-limited calls in worker processes: no single object can stall a scan or a decode.

Pillow's decoders run in C and cannot be interrupted from Python; a crafted file (a progressive
JPEG with thousands of scans, a TIFF of a million strips) can keep one busy for hours, and a
decoder that crashes would take the whole process with it. So the probe and the decode of
each object run in a small pool of worker processes: a call that outlasts its time limit has
its worker killed (a fresh one replaces it), and a worker that dies is reported, not fatal.

Workers are started with "spawn" (never fork: the parent may hold threads, an event loop or
CUDA), lazily and only as many as calls run at once, up to the number of usable CPUs. They
import only `gan_augment.scan.images` (Pillow and numpy), never torch.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# What one object may cost to probe or decode before it is given up as `too_slow`. A 90
# megapixel image (Pillow's decompression-bomb limit) decodes in a few seconds even on a
# loaded core; a decoder still busy after this long is spinning on a crafted file.
DEFAULT_MAX_SECONDS = 30.0


class CallTimedOut(Exception):
    """The call outlasted its time limit; its worker was killed."""


class WorkerDied(Exception):
    """The worker process died during the call (a crash in a C decoder, or it was killed)."""


@dataclass(frozen=True)
class Timed:
    """A call's return value and the seconds it computed for (time spent waiting for a free
    worker not included)."""

    value: Any
    seconds: float


def _serve(connection: Any) -> None:
    """A worker's loop: receive (function, args, kwargs), send back ("ok"|"error", value, seconds)."""
    # Pillow warns about every damage it works around (corrupt EXIF, a skipped tag): in a
    # scan of a broken store that is thousands of lines; the verdicts carry what matters.
    warnings.simplefilter("ignore")
    while True:
        try:
            fn, args, kwargs = connection.recv()
        except EOFError:
            return
        # Received, so unpickled: the modules `fn` needs are imported. The caller's time limit
        # starts now, so that a cold worker's start-up on a loaded machine never counts.
        connection.send(("started", None, 0.0))
        started = time.perf_counter()
        try:
            outcome: tuple[str, Any] = ("ok", fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - the caller re-raises it
            outcome = ("error", exc)
        seconds = time.perf_counter() - started
        try:
            connection.send((*outcome, seconds))
        except Exception as exc:  # noqa: BLE001 - an unpicklable result or exception
            connection.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}"), seconds))


class _Worker:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), daemon=True, name="gan-augment-decoder")
        self.process.start()
        child.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=5)
        self.connection.close()


class WorkerPool:
    """Worker processes that run picklable calls under a time limit, shared by threads.

    Args:
        max_workers: the most processes alive at once (default: the usable CPUs).
    """

    def __init__(self, max_workers: int | None = None) -> None:
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.max_workers = max_workers or usable
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(self.max_workers)
        self._lock = threading.Lock()
        self._all: set[_Worker] = set()

    def run(self, fn: Callable[..., T], *args: Any, max_seconds: float, **kwargs: Any) -> Timed:
        """`fn(*args, **kwargs)` in a worker; its exception is re-raised here.

        Raises:
            CallTimedOut: it ran longer than `max_seconds`.
            WorkerDied: the worker process died while running it.
        """
        with self._slots:  # one call per worker; waiting here does not count against the limit
            worker = self._take()
            try:
                worker.connection.send((fn, args, kwargs))
                worker.connection.recv()  # ("started", ...): the call itself begins now
                if not worker.connection.poll(max_seconds):
                    self._discard(worker)
                    raise CallTimedOut(f"still running after {max_seconds:g} s")
                status, value, seconds = worker.connection.recv()
            except (EOFError, OSError) as exc:
                worker.process.join(timeout=5)  # reap it, so that its exit code is known
                code = worker.process.exitcode
                self._discard(worker)
                raise WorkerDied(f"the worker process died (exit code {code})") from exc
            self._idle.put(worker)
        if status == "error":
            raise value
        return Timed(value, seconds)

    def _take(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            worker = _Worker()
            with self._lock:
                self._all.add(worker)
            return worker

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def close(self) -> None:
        """Stop every worker."""
        with self._lock:
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.kill()


_pool: WorkerPool | None = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()


def shared_pool() -> WorkerPool:
    """This process's pool (a forked child gets its own, never its parent's workers)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool, _pool_pid = WorkerPool(), os.getpid()
        return _pool


def run_limited(fn: Callable[..., T], *args: Any, max_seconds: float | None, **kwargs: Any) -> Timed:
    """`fn(*args, **kwargs)` limited to `max_seconds` in the shared worker pool, or in this
    thread when `max_seconds` is None (no isolation, no limit).

    Raises:
        CallTimedOut, WorkerDied: see `WorkerPool.run`; and whatever `fn` raises.
    """
    if max_seconds is None:
        started = time.perf_counter()
        value = fn(*args, **kwargs)
        return Timed(value, time.perf_counter() - started)
    return shared_pool().run(fn, *args, max_seconds=max_seconds, **kwargs)


@atexit.register
def _close_shared_pool() -> None:
    if _pool is not None and _pool_pid == os.getpid():
        _pool.close()
