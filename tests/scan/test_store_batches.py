"""A scan holds one batch of datasets at a time, and leaves an unchanged dataset's manifest alone."""

from __future__ import annotations

import os

import gan_augment.scan.store as store_module
from gan_augment.io.tables import read_manifest
from gan_augment.scan.store import scan_store


def without_times(path: str) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "scanned_at"} for row in read_manifest(path).to_pylist()]


def test_a_scan_in_small_batches_writes_the_same_manifests(tmp_path, monkeypatch, png_writer):
    store = tmp_path / "store"
    for seed, name in enumerate(("ants", "bees", "cats", "dogs")):
        png_writer(str(store / name), 3, seed=seed)
    (store / "bees" / "copy.png").write_bytes((store / "ants" / "img-000.png").read_bytes())
    (store / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    whole = scan_store(str(store), out=str(tmp_path / "whole"))
    monkeypatch.setattr(store_module, "BATCH_OBJECTS", 2)  # every dataset a batch of its own
    batched = scan_store(str(store), out=str(tmp_path / "batched"))
    assert sorted(batched.datasets) == sorted(whole.datasets) == ["ants", "bees", "cats", "dogs"]
    for name in whole.datasets:
        assert without_times(batched.datasets[name].manifest_url) == without_times(whole.datasets[name].manifest_url)
        assert batched.datasets[name].new == whole.datasets[name].new


def test_an_unchanged_dataset_is_neither_read_nor_rewritten(tmp_path, png_writer):
    store, out = tmp_path / "store", str(tmp_path / "out")
    png_writer(str(store / "ants"), 3, seed=1)
    png_writer(str(store / "bees"), 3, seed=2)
    first = scan_store(str(store), out=out)
    written = {name: os.stat(scan.manifest_url).st_mtime_ns for name, scan in first.datasets.items()}
    png_writer(str(store / "bees" / "more"), 1, seed=3)

    again = scan_store(str(store), out=out)

    ants, bees = again.datasets["ants"], again.datasets["bees"]
    assert (ants.read_objects, ants.unchanged, ants.new) == (0, 3, [])
    assert os.stat(ants.manifest_url).st_mtime_ns == written["ants"]
    assert ants.manifest.equals(first.datasets["ants"].manifest)
    assert (bees.read_objects, len(bees.new), bees.manifest.num_rows) == (1, 1, 4)
    assert os.stat(bees.manifest_url).st_mtime_ns != written["bees"]
