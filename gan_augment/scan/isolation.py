"""Time-limited calls in worker processes: no single object can stall a scan or a decode.

Pillow's decoders run in C and cannot be interrupted from Python; a crafted file (a progressive
JPEG with thousands of scans, a TIFF of a million strips) can keep one busy for hours, and a
decoder that crashes would take the whole process with it. So the probe and the decode of
each object run in a small pool of worker processes: a call that outlasts its time limit has
its worker killed (a fresh one replaces it), and a worker that dies is reported, not fatal.

Workers are fresh interpreters (never fork: the parent may hold threads, an event loop or
CUDA), started lazily and only as many as calls run at once, up to the number of usable CPUs.
They import only what their calls need (`gan_augment.scan`: Pillow, numpy, fsspec), never
torch, and never the parent's main module: multiprocessing's "spawn" imports it in every child,
so a worker of a training script that imports torch took 2.0 s to start and held 557 MB, where
one of this module's takes 0.2 s and 76 MB. They talk over a socket pair
(`multiprocessing.connection`), and share a 16-byte file mapping that says which call of a
batch is under way and since when; both descriptors pass to the worker by `pass_fds` (POSIX:
Linux, macOS).
"""

from __future__ import annotations

import atexit
import json
import mmap
import os
import pickle
import queue
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe
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


class _Slot:
    """Which call of the batch last sent is under way (-1: none begun yet) and when it began
    (`time.monotonic_ns`, one clock for all processes), in a 16-byte mapping of a file that the
    parent and its worker share."""

    def __init__(self, fd: int) -> None:
        self.map = mmap.mmap(fd, 16)

    def begin(self, index: int) -> None:
        # The start first: a reader between the two writes pairs the last call with a later
        # start, so that call's limit ends later, never earlier.
        struct.pack_into("q", self.map, 8, time.monotonic_ns())
        struct.pack_into("q", self.map, 0, index)

    def reset(self) -> None:
        """No call of the next batch has begun."""
        struct.pack_into("q", self.map, 0, -1)

    def read(self) -> tuple[int, float]:
        """(index, its start in `time.monotonic` seconds)."""
        while True:
            index, began = struct.unpack_from("qq", self.map)
            if struct.unpack_from("q", self.map)[0] == index:  # not torn by a `begin` in between
                return index, began / 1e9


def _serve(connection: Connection, slot: _Slot) -> None:
    """A worker's loop: receive (pickled function, [args, ...], kwargs), call the function on
    each args, and send back [("ok"|"error", value, seconds), ...] once all have ended. Each
    call's index and start go to `slot`: the caller keeps its time limit on each call from
    there, without a message per call."""
    # Pillow warns about every damage it works around (corrupt EXIF, a skipped tag): in a
    # scan of a broken store that is thousands of lines; the verdicts carry what matters.
    warnings.simplefilter("ignore")
    while True:
        try:
            pickled, calls, kwargs = connection.recv()
        except EOFError:
            return
        try:
            # Unpickled, so the modules `fn` needs are imported: the first call's limit starts
            # only after, so that a cold worker's start-up on a loaded machine never counts.
            fn = pickle.loads(pickled)
        except Exception as exc:  # noqa: BLE001 - a function this interpreter cannot import
            connection.send([("error", RuntimeError(f"the worker cannot load the function: {exc}"), 0.0)] * len(calls))
            continue
        results = []
        for index, args in enumerate(calls):
            slot.begin(index)
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


def _worker_main() -> None:
    """A worker interpreter's entry: argv is [the parent's sys.path as JSON, socket fd, slot fd]."""
    _serve(Connection(int(sys.argv[2])), _Slot(int(sys.argv[3])))


# The worker's command: the parent's import path first, so that it finds what the parent finds
# (a checkout on sys.path, a test module whose function it runs).
_BOOT = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
         "from gan_augment.scan.isolation import _worker_main; _worker_main()")


class _Worker:
    def __init__(self) -> None:
        self.connection, child = Pipe()  # a socket pair
        with tempfile.TemporaryFile() as shared:
            shared.write(struct.pack("qq", -1, 0))
            shared.flush()
            self.slot = _Slot(shared.fileno())
            fds = (child.fileno(), shared.fileno())
            self.process = subprocess.Popen([sys.executable, "-c", _BOOT, json.dumps(sys.path), *map(str, fds)],
                                            pass_fds=fds, stdin=subprocess.DEVNULL)
        child.close()

    def call_running(self) -> tuple[int, float]:
        """The index of the call under way in the batch last sent (-1: none begun yet), and when it began."""
        return self.slot.read()

    def send(self, fn: Callable[..., Any], calls: list[tuple[Any, ...]], kwargs: dict[str, Any]) -> None:
        self.slot.reset()
        self.connection.send((pickle.dumps(fn), calls, kwargs))

    def exit_code(self) -> int | None:
        """The worker's exit code (negative: the signal that ended it) once it has ended, reaped."""
        try:
            return self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        self.process.kill()
        self.exit_code()
        self.connection.close()
        self.slot.map.close()


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
            code = worker.exit_code()
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

    def pids(self) -> list[int]:
        """The process ids of the workers alive (to watch their CPU or memory)."""
        with self._lock:
            return [worker.process.pid for worker in self._all]

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
