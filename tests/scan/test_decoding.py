"""Objects decoded a chunk at a time: a decoding worker reads a local file itself, and what it
finds is what a read in the scanning process would have found, for good files, broken ones and
files that vanish or change into something unreadable after the listing."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
from fsspec.implementations.local import LocalFileSystem

from conftest import encode, noise_image
from gan_augment.scan import decoding
from gan_augment.scan.decoding import decode_objects, probe_objects
from gan_augment.scan.listing import list_images
from gan_augment.scan.objects import DEFAULT_MAX_BYTES, ScanLimits

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.png").write_bytes(encode(noise_image((20, 12), "RGBA", seed=1), "PNG"))
    (folder / "b.jpg").write_bytes(encode(noise_image((16, 16), "L", seed=2), "JPEG"))
    (folder / "c.png").write_bytes(encode(noise_image((16, 16), seed=3), "PNG")[:90])  # truncated
    (folder / "d.gif").write_bytes(np.random.default_rng(0).bytes(300))
    (folder / "e.png").write_bytes(b"")
    (folder / "gone.png").write_bytes(encode(noise_image((8, 8), seed=4), "PNG"))
    (folder / "dir.png").write_bytes(encode(noise_image((8, 8), seed=5), "PNG"))
    return folder


def after_listing(folder):
    """The folder's objects as listed; then one file is deleted and one becomes a folder."""
    objects = list_images(str(folder))
    os.remove(folder / "gone.png")
    os.remove(folder / "dir.png")
    os.mkdir(folder / "dir.png")
    return objects


@pytest.mark.parametrize("in_workers", [True, False], ids=["read in the worker", "read here"])
def test_decoding_records_every_object_whoever_reads_it(folder, monkeypatch, in_workers):
    monkeypatch.setattr(decoding, "LOCAL_READS_IN_WORKERS", in_workers)
    objects = after_listing(folder)
    decoded = {os.path.basename(d.uri): d for d in decode_objects(LocalFileSystem(), objects, 8, 3, 10**7,
                                                                   DEFAULT_MAX_BYTES, 30.0)}
    assert decoded["a.png"].pixels.shape == (8, 8, 3) and decoded["b.jpg"].pixels.shape == (8, 8, 3)
    assert decoded["a.png"].content_hash.startswith("md5:") and decoded["a.png"].phash is not None
    assert decoded["c.png"].reason.startswith("corrupt: ") and decoded["c.png"].content_hash.startswith("md5:")
    assert decoded["d.gif"].reason.startswith("corrupt: ")
    assert decoded["e.png"].reason == "empty: the object is empty (0 bytes)"
    assert decoded["gone.png"].reason.startswith("unreadable: FileNotFoundError")
    assert decoded["dir.png"].reason.startswith("unreadable: IsADirectoryError")


@pytest.mark.parametrize("in_workers", [True, False], ids=["read in the worker", "read here"])
def test_verifying_records_every_object_whoever_reads_it(folder, monkeypatch, in_workers):
    monkeypatch.setattr(decoding, "LOCAL_READS_IN_WORKERS", in_workers)
    objects = after_listing(folder)
    outcomes = dict(zip([os.path.basename(o.uri) for o in objects],
                        probe_objects(LocalFileSystem(), objects, ScanLimits(verify=True)), strict=True))
    assert {name: o.probe.status for name, o in outcomes.items() if o is not None} == {
        "a.png": "ok", "b.jpg": "ok", "c.png": "corrupt", "d.gif": "corrupt", "e.png": "empty",
        "dir.png": "unreadable"}
    assert outcomes["gone.png"] is None  # vanished since the listing: the scan logs it and drops the row
    assert outcomes["a.png"].content_hash == "md5:" + hashlib.md5((folder / "a.png").read_bytes()).hexdigest()
    assert outcomes["a.png"].probe.phash is not None and outcomes["a.png"].probe.phash_canonical is not None
    assert "IsADirectoryError" in outcomes["dir.png"].probe.error


def test_worker_reads_give_what_reads_here_give(folder, monkeypatch):
    objects = list_images(str(folder))
    found = {}
    for in_workers in (True, False):
        monkeypatch.setattr(decoding, "LOCAL_READS_IN_WORKERS", in_workers)
        found[in_workers] = (decode_objects(LocalFileSystem(), objects, 8, 1, 10**7, DEFAULT_MAX_BYTES, 30.0),
                             probe_objects(LocalFileSystem(), objects, ScanLimits(verify=True)))
    for mine, theirs in zip(found[True][0], found[False][0], strict=True):
        assert (mine.uri, mine.reason, mine.content_hash, mine.phash) == (theirs.uri, theirs.reason,
                                                                          theirs.content_hash, theirs.phash)
        assert (mine.pixels is None and theirs.pixels is None) or np.array_equal(mine.pixels, theirs.pixels)
    assert [(o.probe, o.content_hash) for o in found[True][1]] == [(o.probe, o.content_hash) for o in found[False][1]]


def test_chunks_hold_a_bounded_number_of_bytes(folder, monkeypatch):
    monkeypatch.setattr(decoding, "CHUNK_BYTES", 1000)
    objects = [o for o in list_images(str(folder)) if o.size > 0]
    chunks = list(decoding._sources(LocalFileSystem(), list(enumerate(objects))))
    assert [index for chunk in chunks for index, _ in chunk] == list(range(len(objects)))
    for chunk in chunks:  # over the bound only by its last object
        assert sum(objects[index].size for index, _ in chunk[:-1]) < 1000
    assert decoding.chunk_size(1000, 8) == 32 and decoding.chunk_size(40, 8) == 2 and decoding.chunk_size(0, 8) == 1
