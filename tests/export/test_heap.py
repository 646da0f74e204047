"""The heap trimmer of the exports: it trims once resident memory has grown by its slack, and
only then."""

from __future__ import annotations

import sys

import pytest

from gan_augment.export import heap


@pytest.fixture
def fake_process(monkeypatch):
    """A process whose resident bytes the test sets, with a recording malloc_trim."""
    state = {"resident": 1000, "trims": 0}

    def trim(pad: int) -> int:
        state["trims"] += 1
        state["resident"] = 1000  # what the trim gave back
        return 1

    monkeypatch.setattr(heap, "_malloc_trim", lambda: trim)
    monkeypatch.setattr(heap, "resident_bytes", lambda: state["resident"])
    return state


def test_it_trims_once_memory_grew_past_the_slack_and_starts_counting_again(fake_process):
    trim_heap = heap.HeapTrimmer(slack_bytes=500)
    for resident, trims in ((1200, 0), (1500, 0), (1501, 1), (1400, 1), (1500, 1), (1501, 2)):
        fake_process["resident"] = resident
        trim_heap()
        assert fake_process["trims"] == trims, resident


def test_without_malloc_trim_it_does_nothing(monkeypatch):
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)
    heap.HeapTrimmer(slack_bytes=0)()  # no error, nothing to call


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_on_linux_it_reads_this_process_and_finds_glibc():
    assert heap.resident_bytes() > 10 * 2**20  # a Python with torch imported
    heap._malloc_trim.cache_clear()
    assert heap._malloc_trim() is not None  # glibc, as on every machine this project runs on
