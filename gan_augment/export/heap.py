"""Hand freed heap memory back to the operating system between the batches of an export.

glibc's malloc serves a large block (a forward pass's activations, megabytes each) with mmap
at first, but each time such a block is freed it raises its mmap threshold (up to 32 MiB), so
that the next passes' activations come from the heap. Small allocations that outlive a pass
(the pyarrow buffers of the row group being built, PNG bytes, Python objects) then sit between
them, the heap's top cannot shrink, and the freed pages stay resident: `export_samples` grew by
about 30 KB a row, linearly (+2,270 MiB at 70,000 rows; BENCHMARKS.md, "Scale: what the profiles
showed"). The same run with the threshold pinned (`MALLOC_MMAP_THRESHOLD_`) or with
`malloc_trim(0)` after each block stays flat. `malloc_trim` is the local choice: it changes no
allocation policy of the caller's process, and glibc (2.8 and later) returns every whole free
page of the heap with it, not only its top. Elsewhere (macOS, Windows, musl) there is nothing
to call and `HeapTrimmer` does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library this process already runs on
    except (OSError, AttributeError):  # a libc without it (musl)
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def resident_bytes() -> int | None:
    """This process's resident memory now (Linux /proc), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


class HeapTrimmer:
    """Call after each batch: returns the free heap to the system once resident memory has grown
    by `slack_bytes` since the last time, so that memory stays within about that much of where it
    started and the trim's cost stays rare.

    Trimming after every batch measured 70% slower (each forward then faults its activations'
    pages in again: 9.2 s against 5.4 s for 10,000 samples of the default 32x32 model); with
    256 MiB of slack a 70,000-row export trims a few times.
    """

    def __init__(self, slack_bytes: int = 256 * 2**20) -> None:
        self.slack_bytes = slack_bytes
        self.trim = _malloc_trim()
        self.mark = resident_bytes() if self.trim else None

    def __call__(self) -> None:
        if self.trim is None or self.mark is None:
            return
        now = resident_bytes()
        if now is not None and now - self.mark > self.slack_bytes:
            self.trim(0)
            self.mark = resident_bytes() or now
