"""Near-duplicates: planted copies of real images (Fashion-MNIST) are found by their perceptual
hashes after a verifying scan; discriminator features refine the hash's candidates."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

from gan_augment.curate.near_duplicates import find_near_duplicates
from gan_augment.curate.neighbours import neighbour_pairs
from gan_augment.demo import FASHION_MNIST_DIR, load_fashion_mnist
from gan_augment.io.tables import features_table, manifest_table
from gan_augment.scan.store import scan_store
from gan_augment.testing.planted import pair_scores, write_planted_store

needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR),
                                   reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


@needs_fashion
def test_planted_copies_of_real_images_are_found_after_a_verifying_scan(tmp_path):
    images, _ = load_fashion_mnist(split="t10k")
    pick = images[np.random.default_rng(0).choice(len(images), 60, replace=False)]
    planted = write_planted_store(str(tmp_path / "store" / "fashion"), pick, groups=12, copies=2, seed=0)
    scan = scan_store(str(tmp_path / "store"), out=str(tmp_path / "out"), verify=True, max_seconds=None)
    manifest = scan.datasets["fashion"].manifest
    assert manifest.column("phash").null_count == 0  # every decoded image was hashed
    found = find_near_duplicates(manifest)
    groups = [[uri.removeprefix("file://") for uri in group] for group in found.groups]
    # Copies that keep the whole frame (resized, re-encoded, brightened, PNG<->JPEG) hash within a few bits.
    whole_frame = [[g[0], c] for g in planted.groups for c in g[1:]
                   if planted.kinds[c] in ("resize", "jpeg", "brightness", "format")]
    recall, _ = pair_scores(groups, whole_frame)
    assert recall >= 0.9, (recall, found.summary())
    table = found.to_table()
    assert table.num_rows == sum(len(g) - 1 for g in found.groups) == found.summary()["near_duplicates"]
    kept = {group[0] for group in found.groups}
    assert set(table.column("near_duplicate_of").to_pylist()) <= kept
    assert max(table.column("hamming").to_pylist()) <= found.summary()["max_hamming"]


def test_discriminator_features_refine_the_hash_candidates():
    uris = ["s3://b/a.png", "s3://b/b.png", "s3://b/c.png", "s3://b/d.png"]
    hashes = [0, 1, 3, -1]  # a, b, c within 2 bits of each other; d (all 64 bits set) far away
    rows = [{"uri": u, "dataset": "d", "size_bytes": 1, "etag_or_hash": "", "status": "ok", "phash": h,
             "scanned_at": pa.scalar(0, pa.timestamp("us", tz="UTC")).as_py(), "width": 8, "height": 8 + i}
            for i, (u, h) in enumerate(zip(uris, hashes))]
    manifest = manifest_table(rows, "d")
    hash_only = find_near_duplicates(manifest, min_cosine=None)
    assert hash_only.groups == [["s3://b/c.png", "s3://b/a.png", "s3://b/b.png"]]  # the largest image is kept
    assert hash_only.hamming == {"s3://b/a.png": 2, "s3://b/b.png": 1} and not hash_only.refined
    rng = np.random.default_rng(0)
    base, other = rng.normal(size=16), rng.normal(size=16)
    features = np.stack([base, base + 0.01 * rng.normal(size=16), other, rng.normal(size=16)])  # b ~ a; c differs
    table = features_table(uris, dataset="d", model_id="m", features=features.astype(np.float32))
    refined = find_near_duplicates(manifest, table, min_cosine=0.9)
    assert refined.refined and refined.groups == [["s3://b/b.png", "s3://b/a.png"]]
    assert refined.cosine["s3://b/a.png"] > 0.9


def test_one_neighbour_search_for_hashes_and_features():
    codes = np.array([0, 0b111, 0b1, -1], dtype=np.int64)
    assert neighbour_pairs(codes, 3, "hamming") == [(0, 1, 3.0), (0, 2, 1.0), (1, 2, 2.0)]
    vectors = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]])
    assert [(i, j) for i, j, _ in neighbour_pairs(vectors, 0.05, "cosine")] == [(0, 1)]
    assert neighbour_pairs(vectors, 0.05, "cosine", candidates=[(1, 2), (0, 1)]) == \
        neighbour_pairs(vectors, 0.05, "cosine")
    with pytest.raises(ValueError, match="unknown metric"):
        neighbour_pairs(codes, 1, "euclid")
