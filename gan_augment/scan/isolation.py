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
import pickle
import queue
import threading
import time
import warnings
from collections.abc import Callable, Sequence
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


def _serve(connection: Any, running: Any) -> None:
    """A worker's loop: receive (function, [args, ...], kwargs), call `function` on each args,
    and send back [("ok"|"error", value, seconds), ...] once all have ended. `running` holds
    the index of the call under way and when it began (`time.monotonic`): the caller's time
    limit is kept on each call from there, without a message per call."""
    # Pillow warns about every damage it works around (corrupt EXIF, a skipped tag): in a
    # scan of a broken store that is thousands of lines; the verdicts carry what matters.
    warnings.simplefilter("ignore")
    while True:
        try:
            fn, calls, kwargs = connection.recv()
        except EOFError:
            return
        # Received, so unpickled: the modules `fn` needs are imported, and the first call's
        # limit starts only now, so that a cold worker's start-up on a loaded machine never counts.
        results = []
        for index, args in enumerate(calls):
            with running.get_lock():
                running[0], running[1] = index, time.monotonic()
            started = time.perf_counter()
            try:
                outcome: tuple[str, Any] = ("ok", fn(*args, **kwargs))
            except Exception as exc:  # noqa: BLE001 - the caller re-raises it
                outcome = ("error", exc)
            results.append((*outcome, time.perf_counter() - started))
        try:
            connection.send(results)
        except Exception:  # noqa: BLE001 - an unpicklable result or exception: that one says so
            connection.send([_picklable(result) for result in results])


def _picklable(result: tuple[str, Any, float]) -> tuple[str, Any, float]:
    try:
        pickle.dumps(result[1])
    except Exception as exc:  # noqa: BLE001 - whatever pickling raises
        return "error", RuntimeError(f"{type(exc).__name__}: {exc}"), result[2]
    return result


class _Worker:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.running = context.Array("d", [-1.0, 0.0])  # (the call under way, its start), see _serve
        self.process = context.Process(target=_serve, args=(child, self.running), daemon=True,
                                       name="gan-augment-decoder")
        self.process.start()
        child.close()

    def call_running(self) -> tuple[int, float]:
        """The index of the call under way in the batch last sent (-1: none begun yet), and when it began."""
        with self.running.get_lock():
            return int(self.running[0]), self.running[1]

    def send(self, fn: Callable[..., Any], calls: list[tuple[Any, ...]], kwargs: dict[str, Any]) -> None:
        with self.running.get_lock():
            self.running[0] = -1.0
        self.connection.send((fn, calls, kwargs))

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
        (outcome,) = self.run_many(fn, [args], max_seconds=max_seconds, **kwargs)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def run_many(self, fn: Callable[..., T], calls: Sequence[tuple[Any, ...]], *, max_seconds: float,
                 **kwargs: Any) -> list[Timed | Exception]:
        """`fn(*args, **kwargs)` for each args of `calls`, one after another in one worker, each
        under its own limit: for each, its `Timed` result or the exception it raised, in order
        (`CallTimedOut` and `WorkerDied` included). A call that spins or kills its worker costs
        only itself: the others are run again in a fresh worker.

        One message carries all the calls and one all their results: a message per small
        image, each way, had cost more than its decode (BENCHMARKS.md, "Near-duplicates").
        """
        outcomes: dict[int, Timed | Exception] = {}
        left = list(enumerate(calls))
        while left:
            with self._slots:  # one batch per worker; waiting here does not count against the limit
                worker = self._take()
                left = self._run_batch(worker, fn, left, kwargs, max_seconds, outcomes)
        return [outcomes[position] for position in range(len(calls))]

    def _run_batch(self, worker: _Worker, fn: Callable[..., Any], calls: list[tuple[int, tuple[Any, ...]]],
                   kwargs: dict[str, Any], max_seconds: float,
                   outcomes: dict[int, Timed | Exception]) -> list[tuple[int, tuple[Any, ...]]]:
        """Run (position, args) `calls` in `worker`, putting each outcome at its position; the
        calls left to run again when one spun past the limit or killed the worker (that one's
        outcome says which; the results of the others died with it)."""
        try:
            worker.send(fn, [args for _, args in calls], kwargs)
            wait = max_seconds
            while not worker.connection.poll(wait):
                index, began = worker.call_running()
                wait = max_seconds if index < 0 else began + max_seconds - time.monotonic()
                if wait <= 0:
                    self._discard(worker)
                    outcomes[calls[index][0]] = CallTimedOut(f"still running after {max_seconds:g} s")
                    return calls[:index] + calls[index + 1:]
            results = worker.connection.recv()
        except (EOFError, OSError) as exc:
            worker.process.join(timeout=5)  # reap it, so that its exit code is known
            code = worker.process.exitcode
            index = max(0, worker.call_running()[0])
            self._discard(worker)
            died = WorkerDied(f"the worker process died (exit code {code})")
            died.__cause__ = exc
            outcomes[calls[index][0]] = died
            return calls[:index] + calls[index + 1:]
        for (position, _), (status, value, seconds) in zip(calls, results, strict=True):
            outcomes[position] = value if status == "error" else Timed(value, seconds)
        self._idle.put(worker)
        return []

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


def run_many_limited(fn: Callable[..., T], calls: Sequence[tuple[Any, ...]], *, max_seconds: float | None,
                     **kwargs: Any) -> list[Timed | Exception]:
    """`run_limited` for each args of `calls`, in one worker of the shared pool (`WorkerPool.run_many`),
    or in this thread when `max_seconds` is None: each call's `Timed` result or its exception, in order."""
    if max_seconds is not None:
        return shared_pool().run_many(fn, calls, max_seconds=max_seconds, **kwargs)
    outcomes: list[Timed | Exception] = []
    for args in calls:
        try:
            outcomes.append(run_limited(fn, *args, max_seconds=None, **kwargs))
        except Exception as exc:  # noqa: BLE001 - returned, as the pool returns it
            outcomes.append(exc)
    return outcomes


@atexit.register
def _close_shared_pool() -> None:
    if _pool is not None and _pool_pid == os.getpid():
        _pool.close()
