"""The manifest table: its row logic (incremental plan, duplicates) and the Parquet file, which
every common reader loads."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pytest
from conftest import bad_inputs

from gan_augment.io.parquet import read_gan_augment_metadata
from gan_augment.io.tables import MANIFEST_SCHEMA, manifest_table, read_manifest
from gan_augment.scan.images import Probe
from gan_augment.scan.listing import ImageObject
from gan_augment.scan.manifest import apply_verdicts, content_key, mark_duplicates, new_row, plan_scan, rows_to_hash
from gan_augment.scan.store import scan_store

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def obj(name: str, size: int = 10, version: str = "etag:v1") -> ImageObject:
    return ImageObject(f"s3://b/ds/{name}", size, version, f"b/ds/{name}")


def row(name: str, size: int = 10, version: str = "etag:v1", status: str = "ok", content_hash=None) -> dict:
    return new_row(obj(name, size, version), "ds", Probe(status, "" if status == "ok" else "why"), content_hash, NOW)


def duplicate(name: str, of: str) -> dict:
    return {**row(name), "status": "duplicate", "error": f"same content as {obj(of).uri}", "duplicate_of": obj(of).uri}


def test_plan_reuses_unchanged_rows_and_reports_changes():
    previous = manifest_table([row("same.png"), row("resized.png"), row("retagged.png"), row("gone.png"),
                               row("failed.png", status="unreadable")], "ds")
    listed = [obj("same.png"), obj("resized.png", size=11), obj("retagged.png", version="etag:v2"),
              obj("failed.png"), obj("new.png")]
    plan = plan_scan(listed, previous)
    assert [r["uri"] for r in plan.reused] == [obj("same.png").uri]
    probed = ("resized.png", "retagged.png", "failed.png", "new.png")
    assert [o.uri for o in plan.to_probe] == [obj(name).uri for name in probed]
    assert plan.new == [obj("new.png").uri] and plan.deleted == [obj("gone.png").uri]
    assert plan.changed == [obj("resized.png").uri, obj("retagged.png").uri]
    assert plan_scan(listed, previous, reuse=False).reused == []


def test_objects_without_change_token_are_compared_by_hash():
    previous = manifest_table([row("a.png", version="", content_hash="md5:1"),
                               row("b.png", version="", content_hash="md5:2")], "ds")
    plan = plan_scan([obj("a.png", version=""), obj("b.png", version="")], previous)
    assert len(plan.to_probe) == 2 and plan.changed == []
    plan.settle({obj("a.png").uri: {"content_hash": "md5:1"}, obj("b.png").uri: {"content_hash": "md5:3"}})
    assert plan.changed == [obj("b.png").uri]


def test_duplicates_by_hash_or_single_part_etag():
    md5 = "0123456789abcdef0123456789abcdef"
    rows = [row("c.png", version=f"etag:{md5}"), row("a.png", content_hash=f"md5:{md5}"),
            row("b.png", version="etag:abc-2"), row("d.png", version="etag:abc-2", status="corrupt"),
            row("e.png", size=99, content_hash=f"md5:{md5}")]
    assert content_key(rows[0]) == f"md5:{md5}" and content_key(rows[2]) is None  # multipart ETag
    assert [r["uri"] for r in rows_to_hash(rows)] == [obj("b.png").uri]
    mark_duplicates(rows)
    assert [(r["status"], r["duplicate_of"]) for r in rows] == [
        ("duplicate", obj("a.png").uri), ("ok", None), ("ok", None), ("corrupt", None), ("ok", None)]


def test_verdicts_skip_known_bad_objects_only_while_unchanged():
    rows = {r["uri"]: r for r in (row("bad.png", status="corrupt"), row("ok.png"),
                                  duplicate("dup.png", of="ok.png"), duplicate("orphan.png", of="gone.png"))}
    keep, skipped = apply_verdicts([obj("bad.png"), obj("ok.png"), obj("dup.png"), obj("orphan.png"),
                                    obj("bad.png", version="etag:v2")], rows)
    assert [o.uri for o in keep] == [obj("ok.png").uri, obj("orphan.png").uri, obj("bad.png").uri]
    assert skipped == {obj("bad.png").uri: "corrupt: why",
                       obj("dup.png").uri: f"duplicate: same content as {obj('ok.png').uri}"}


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("readers")
    (root / "store" / "zoo").mkdir(parents=True)
    for name, (data, _) in bad_inputs().items():
        (root / "store" / "zoo" / name).write_bytes(data)
    scan_store(str(root / "store"), out=str(root / "out"))
    return str(root / "out" / "zoo" / "manifest.parquet")


def test_manifest_loads_in_every_reader(manifest_path, tmp_path):
    import datasets
    import duckdb
    import pandas as pd
    import polars as pl

    table = read_manifest(manifest_path)
    assert table.schema.remove_metadata().equals(MANIFEST_SCHEMA) and table.num_rows == 21
    assert read_gan_augment_metadata(table.schema)["dataset"] == "zoo"
    uris = table.column("uri").to_pylist()
    assert pd.read_parquet(manifest_path)["uri"].tolist() == uris
    assert pl.read_parquet(manifest_path)["uri"].to_list() == uris
    assert [r[0] for r in duckdb.sql(f"SELECT uri FROM '{manifest_path}' ORDER BY uri").fetchall()] == uris
    loaded = datasets.load_dataset("parquet", data_files=manifest_path, split="train", cache_dir=str(tmp_path))
    assert loaded["uri"] == uris and loaded.features["width"].dtype == "int32"
    counts = duckdb.sql(f"SELECT status, count(*) FROM '{manifest_path}' GROUP BY status").fetchall()
    assert dict(counts)["corrupt"] == 4 and isinstance(table.column("scanned_at").type, pa.TimestampType)
