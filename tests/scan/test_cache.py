"""The decoded training cache: bad objects left out with their reason, manifests reused,
memory-mapped caches reused across runs, and no store object read twice."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from conftest import bad_inputs, encode, noise_image, write_png_folder

from gan_augment.gan.checkpoint import read_model_card
from gan_augment.scan.cache import build_cache, iter_images
from gan_augment.scan.store import scan_store
from gan_augment.training.trainer import train

INPUTS = bad_inputs()
GOOD = sorted(name for name, (_, status) in INPUTS.items() if status == "ok")


def fill(store, dataset="zoo") -> str:
    for name, (data, _) in INPUTS.items():
        store.put(f"{dataset}/{name}", data)
    return store.url_of(dataset)


def test_cache_keeps_only_good_images(store):
    source = fill(store)
    cache = build_cache(source, 16, 3, store.storage_options)
    assert cache.images.shape == (len(GOOD), 3, 16, 16) and cache.images.dtype == torch.uint8
    assert cache.uris == [store.url_of(f"zoo/{name}") for name in GOOD]
    expected = {store.url_of(f"zoo/{name}"): status for name, (_, status) in INPUTS.items() if status != "ok"}
    assert {uri: reason.split(":", 1)[0] for uri, reason in cache.skipped.items()} == expected
    assert cache.path is None


def test_cache_matches_a_plain_decode_loop(tmp_path):
    from gan_augment.scan.images import decode_image

    folder = tmp_path / "ds"
    paths = write_png_folder(str(folder), 12, size=24, channels=3)
    cache = build_cache(str(folder), 16, 3, max_workers=3)
    expected = np.stack([decode_image(open(p, "rb").read(), 16, 3) for p in sorted(paths)])  # (N, S, S, C)
    assert torch.equal(cache.images, torch.from_numpy(expected).permute(0, 3, 1, 2))


def test_manifest_spares_reading_rejected_objects(tmp_path, read_log):
    folder = tmp_path / "store" / "zoo"
    folder.mkdir(parents=True)
    for name, (data, _) in INPUTS.items():
        (folder / name).write_bytes(data)
    scan_store(str(tmp_path / "store"), out=str(tmp_path / "out"))
    read_log.clear()
    cache = build_cache(str(folder), 16, 1, manifest=str(tmp_path / "out" / "zoo" / "manifest.parquet"))
    assert sorted(os.path.basename(path) for path in read_log) == GOOD
    plain = build_cache(str(folder), 16, 1)
    assert torch.equal(cache.images, plain.images) and cache.uris == plain.uris
    assert cache.fingerprint == plain.fingerprint and cache.skipped.keys() == plain.skipped.keys()
    # A manifest path with nothing behind it is ignored.
    assert build_cache(str(folder), 16, 1, manifest=str(tmp_path / "none.parquet")).fingerprint == plain.fingerprint


def test_fingerprint_is_stable_and_follows_the_data(tmp_path):
    folder = tmp_path / "ds"
    write_png_folder(str(folder), 6)
    first, second = build_cache(str(folder), 16, 1), build_cache(str(folder), 16, 1)
    assert first.fingerprint == second.fingerprint
    (folder / "img-000.png").write_bytes(encode(noise_image((16, 16), "L", seed=42), "PNG"))
    assert build_cache(str(folder), 16, 1).fingerprint != first.fingerprint
    (folder / "bad.png").write_bytes(b"")  # a bad object is not data: the fingerprint ignores it
    changed = build_cache(str(folder), 16, 1)
    (folder / "bad.png").unlink()
    assert build_cache(str(folder), 16, 1).fingerprint == changed.fingerprint


def test_mapped_cache_is_reused_without_reading_the_store(tmp_path, read_log):
    folder = tmp_path / "ds"
    write_png_folder(str(folder), 10, channels=3)
    (folder / "broken.png").write_bytes(b"not a png")
    in_memory = build_cache(str(folder), 16, 3)
    read_log.clear()
    mapped = build_cache(str(folder), 16, 3, cache_dir=str(tmp_path / "cache"), max_memory_bytes=0)
    assert len(read_log) == 11 and mapped.path is not None and os.path.dirname(mapped.path) == str(tmp_path / "cache")
    assert torch.equal(mapped.images, in_memory.images) and mapped.uris == in_memory.uris
    assert mapped.fingerprint == in_memory.fingerprint and mapped.skipped == in_memory.skipped
    read_log.clear()
    again = build_cache(str(folder), 16, 3, cache_dir=str(tmp_path / "cache"), max_memory_bytes=0)
    assert read_log == [] and again.path == mapped.path
    assert torch.equal(again.images, in_memory.images) and again.skipped == in_memory.skipped
    assert sorted(os.listdir(tmp_path / "cache")) == sorted([os.path.basename(mapped.path),
                                                             os.path.basename(mapped.path)[:-3] + ".json"])
    # Another size is another cache file; a changed dataset is a new key too.
    assert build_cache(str(folder), 8, 3, cache_dir=str(tmp_path / "cache"), max_memory_bytes=0).path != mapped.path


def test_iter_images_streams_in_listing_order(tmp_path):
    folder = tmp_path / "ds"
    write_png_folder(str(folder), 5)
    (folder / "img-002.png").write_bytes(b"garbage")
    decoded = list(iter_images(str(folder), 16, 1, max_workers=2))
    assert [d.uri.rsplit("/", 1)[-1] for d in decoded] == [f"img-{i:03d}.png" for i in range(5)]
    assert [d.pixels is None for d in decoded] == [False, False, True, False, False]
    assert decoded[2].reason.startswith("corrupt") and decoded[0].pixels.shape == (16, 16, 1)


def test_no_image_at_all_is_a_clear_error(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match="could be decoded"):
        build_cache(str(tmp_path / "ds"), 16, 1)


def test_training_reads_each_object_once_and_skips_bad_ones(tmp_path, read_log, tiny_model_config,
                                                           tiny_train_config):
    folder = tmp_path / "store" / "blobs"
    write_png_folder(str(folder), 12)
    for name, (data, _) in INPUTS.items():  # every kind of bad input, and the odd modes
        (folder / name).write_bytes(data)
    read_log.clear()
    result = train(str(folder), str(tmp_path / "out"), tiny_model_config, tiny_train_config)
    images_read = [path for path in read_log if path.startswith(str(folder))]
    assert sorted(images_read) == sorted(str(path) for path in folder.iterdir() if path.stat().st_size)
    assert result.num_images == 12 + len(GOOD)
    card = read_model_card(str(tmp_path / "out" / "blobs" / "model"))
    assert card["skipped_images"] == len(INPUTS) - len(GOOD)
