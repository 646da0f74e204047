"""Decode failures found after the scan are written back into the manifest: with the reason and
the stage, atomically, for copies too, never onto a row of an older version of the object."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import bad_inputs

from gan_augment.io.tables import _MANIFEST_BASE, read_manifest
from gan_augment.scan.cache import build_cache
from gan_augment.scan.listing import list_images
from gan_augment.scan.manifest import DecodeFailure, apply_decode_failures
from gan_augment.scan.store import scan_store
from gan_augment.scan.writeback import decode_failures, record_decode_failures

NOW = datetime(2024, 1, 1, tzinfo=timezone.utc)


def row(uri: str, status: str = "ok", version: str = "etag:1", content_hash: str | None = None,
        duplicate_of: str | None = None) -> dict:
    return {"uri": uri, "dataset": "ds", "size_bytes": 10, "etag_or_hash": version, "format": "PNG", "mode": "L",
            "width": 4, "height": 4, "status": status, "error": None, "scanned_at": NOW,
            "content_hash": content_hash, "duplicate_of": duplicate_of, "checked": "header", "found_in": "scan"}


def test_a_failure_marks_its_row_and_every_copy_of_it():
    rows = [row("a"), row("b", "duplicate", duplicate_of="a"), row("c")]
    changed = apply_decode_failures(rows, {"a": DecodeFailure("corrupt", "cannot decode (x)", 10, "etag:1")},
                                    "training", NOW)
    assert changed == ["a", "b"]
    assert [(r["status"], r["found_in"], r["checked"], r["duplicate_of"]) for r in rows[:2]] == \
        [("corrupt", "training", "decode", None)] * 2
    assert rows[2]["status"] == "ok"


def test_rows_of_another_version_and_verdicts_about_limits_are_left_alone():
    rows = [row("a", version="etag:old"), row("b", content_hash="md5:1", version="md5:1"), row("c")]
    failures = {"a": DecodeFailure("corrupt", "x", 10, "etag:new"),
                "b": DecodeFailure("corrupt", "x", 10, "", "md5:2"),
                "c": DecodeFailure("unreadable", "read failed", 10, "etag:1")}
    assert apply_decode_failures(rows, failures, "training", NOW) == []


def test_training_writes_back_and_keeps_the_scan_limits(tmp_path, png_writer):
    store, out = tmp_path / "store", str(tmp_path / "out")
    png_writer(str(store / "ds"), 4)
    (store / "ds" / "late-damage.png").write_bytes(_damaged_png())
    scan = scan_store(str(store), out=out, max_pixels=10**6).datasets["ds"]
    assert scan.status_counts == {"ok": 5}  # the header looks fine
    before = pq.read_schema(scan.manifest_url).metadata

    build_cache(str(store / "ds"), 16, 1, manifest=scan.manifest_url)
    rows = {r["uri"].rsplit("/", 1)[-1]: r for r in read_manifest(scan.manifest_url).to_pylist()}
    assert rows["late-damage.png"]["status"] == "corrupt" and rows["late-damage.png"]["found_in"] == "training"
    assert pq.read_schema(scan.manifest_url).metadata == before  # same limits: the next scan reuses rows
    assert scan_store(str(store), out=out, max_pixels=10**6).read_objects == 0


def test_a_manifest_written_before_the_new_columns_loads_and_learns(tmp_path, png_writer):
    store, out = tmp_path / "store", str(tmp_path / "out")
    png_writer(str(store / "ds"), 3)
    (store / "ds" / "late-damage.png").write_bytes(_damaged_png())
    url = scan_store(str(store), out=out).datasets["ds"].manifest_url
    table = pq.read_table(url)
    pq.write_table(table.select(_MANIFEST_BASE.names).replace_schema_metadata(table.schema.metadata), url)

    old = read_manifest(url)
    assert old.column("checked").null_count == old.num_rows  # added columns read as null
    objects = list_images(str(store / "ds"))
    skipped = {objects[-1].uri: "corrupt: cannot decode (broken)"}
    assert len(record_decode_failures(url, decode_failures(objects, skipped), "features")) == 1
    assert record_decode_failures(url, decode_failures(objects, skipped), "features") == []  # nothing new
    assert read_manifest(url).column("found_in").to_pylist().count("features") == 1


def test_without_a_manifest_nothing_is_written(tmp_path):
    assert record_decode_failures(str(tmp_path / "none.parquet"),
                                  {"a": DecodeFailure("corrupt", "x", 1)}, "training") == []
    assert not os.path.exists(tmp_path / "none.parquet")


def test_a_reused_memory_mapped_cache_writes_back_too(tmp_path):
    store, out, cache_dir = tmp_path / "store", str(tmp_path / "out"), str(tmp_path / "cache")
    os.makedirs(store / "ds")
    for name, (data, _) in bad_inputs().items():
        (store / "ds" / name).write_bytes(data)
    (store / "ds" / "late-damage.png").write_bytes(_damaged_png())
    build_cache(str(store / "ds"), 16, 1, cache_dir=cache_dir, max_memory_bytes=0)  # no manifest yet
    url = scan_store(str(store), out=out).datasets["ds"].manifest_url
    cache = build_cache(str(store / "ds"), 16, 1, manifest=url, cache_dir=cache_dir, max_memory_bytes=0)
    assert cache.path is not None
    statuses = {r["uri"].rsplit("/", 1)[-1]: r["status"] for r in read_manifest(url).to_pylist()}
    assert statuses["late-damage.png"] == "corrupt"


def _damaged_png() -> bytes:
    """A PNG whose header and chunk CRCs are sound but whose compressed pixels are not."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = bytearray(zlib.compress(b"".join(b"\0" + bytes(range(16)) for _ in range(16))))
    pixels[4:10] = b"\xff" * 6  # damage inside the deflate stream, CRC recomputed over it
    header = struct.pack(">IIBBBBB", 16, 16, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", bytes(pixels)) + chunk(b"IEND", b"")


def test_the_damaged_png_fools_the_header_probe():
    from gan_augment.scan.images import probe_image, verify_image

    data = _damaged_png()
    assert probe_image(data, len(data)).status == "ok" and verify_image(data).status == "corrupt"
    assert pa is not None
