"""select_for_labelling: every method picks distinct, usable images in a deterministic order,
skips what the manifest rejects and what is already labelled, and spends a tiny budget across
the data's clusters."""

from __future__ import annotations

import csv
import math
import types
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gan_augment.curate import METHODS, select_for_labelling
from gan_augment.io.labels import read_labels, read_listed_labels
from gan_augment.io.tables import features_table, write_features, write_manifest

CLUSTERS, PER_CLUSTER, DIM = 6, 40, 24
FIRST_ROUND = [m for m in METHODS if m != "margin"]  # margin needs the labels of an earlier round


def blobs(seed: int = 0, sizes: list[int] | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(uris, features, cluster of each row): well separated Gaussian clusters."""
    rng = np.random.default_rng(seed)
    sizes = sizes or [PER_CLUSTER] * CLUSTERS
    centres = rng.normal(size=(len(sizes), DIM)) * 6
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    features = (centres[cluster] + rng.normal(size=(len(cluster), DIM))).astype(np.float32)
    return [f"file:///store/ds/img-{i:03d}.png" for i in range(len(cluster))], features, cluster


def as_features(uris: list[str], features: np.ndarray) -> types.SimpleNamespace:
    """What `extract_features` returns, as far as selection reads it."""
    return types.SimpleNamespace(uris=uris, features=features, source="/store/ds", dataset="ds")


def write_dataset(out, uris: list[str], features: np.ndarray, statuses: dict[str, str]) -> str:
    """OUT/ds/features and OUT/ds/manifest.parquet with the given non-ok statuses."""
    write_features(str(out / "ds" / "features"), [features_table(uris, dataset="ds", model_id="m", features=features)],
                   features.shape[1], {})
    now = datetime.now(timezone.utc)
    rows = [dict(uri=uri, dataset="ds", size_bytes=10, etag_or_hash="mtime:1", format="PNG", mode="L", width=16,
                 height=16, status=statuses.get(uri, "ok"), error=None if uri not in statuses else "bad",
                 scanned_at=now, content_hash=None, duplicate_of=None) for uri in uris]
    write_manifest(str(out / "ds" / "manifest.parquet"), rows, "ds")
    return str(out / "ds" / "features")


@pytest.mark.parametrize("method", FIRST_ROUND)
def test_every_method_picks_distinct_candidates_deterministically(method):
    uris, features, _ = blobs()
    first = select_for_labelling(as_features(uris, features), 10, method, seed=3)
    again = select_for_labelling(as_features(uris, features), 10, method, seed=3)
    assert first == again and len(first) == 10 and len(set(first.uris)) == 10
    assert set(first.uris) <= set(uris) and first.method == method and first.candidates == len(uris)
    assert len(first.reasons) == len(first.scores) == 10 and all(first.reasons)
    assert all(math.isnan(s) for s in first.scores) == (method == "random")


@pytest.mark.parametrize("method", ["typiclust", "kmeans"])
def test_clustering_methods_cover_every_cluster_with_one_label_each(method):
    uris, features, cluster = blobs()
    picks = select_for_labelling(as_features(uris, features), CLUSTERS, method)
    assert sorted(cluster[[uris.index(u) for u in picks.uris]]) == list(range(CLUSTERS))
    assert "cluster" in picks.reasons[0]


def test_picks_come_largest_cluster_first():
    uris, features, cluster = blobs(sizes=[10, 60, 30])
    picks = select_for_labelling(as_features(uris, features), 3, "typiclust")
    assert [int(cluster[uris.index(u)]) for u in picks.uris] == [1, 2, 0]
    assert picks.reasons[0].startswith("most typical of cluster") and "(60 images)" in picks.reasons[0]


def test_kcenter_starts_central_and_then_goes_far():
    uris, features, cluster = blobs()
    picks = select_for_labelling(as_features(uris, features), CLUSTERS, "kcenter")
    assert picks.reasons[0].startswith("nearest the mean")
    assert list(picks.scores[1:]) == sorted(picks.scores[1:], reverse=True)  # greedy: ever nearer
    assert len(set(cluster[[uris.index(u) for u in picks.uris]])) == CLUSTERS


@pytest.mark.parametrize("method", FIRST_ROUND)
def test_labelled_images_are_never_picked_and_the_budget_goes_elsewhere(method):
    uris, features, cluster = blobs()
    labelled = [uris[i] for i in np.flatnonzero(cluster == 0)[:3]]
    picks = select_for_labelling(as_features(uris, features), CLUSTERS - 1, method, labelled=labelled)
    assert not set(picks.uris) & set(labelled) and picks.skipped == {"labelled": 3}
    assert picks.candidates == len(uris) - 3
    if method != "random":  # the labelled cluster needs no other label
        assert 0 not in cluster[[uris.index(u) for u in picks.uris]]


def test_a_labelled_list_of_other_images_is_refused_or_named_not_silently_ignored():
    uris, features, _ = blobs()
    source = as_features(uris, features)
    elsewhere = ["file:///store/other/img-000.png", "file:///store/other/img-001.png"]
    # none found: picks made as if nothing were labelled could repeat the images already labelled
    with pytest.raises(ValueError, match=r"none of the 2 images listed as labelled is in /store/ds \(e\.g\. "
                                         r"file:///store/other/img-000\.png\): pass the labels or picks file"):
        select_for_labelling(source, 3, labelled={uri: "a" for uri in elsewhere})
    with pytest.warns(UserWarning, match=r"1 of the 3 images listed as labelled are not in /store/ds "
                                         r"\(e\.g\. file:///store/other/img-001\.png\)"):
        picks = select_for_labelling(source, 3, labelled=[uris[0], uris[1], elsewhere[1]])
    assert picks.unmatched == 1 and picks.summary()["unmatched"] == 1 and picks.skipped == {"labelled": 2}
    assert select_for_labelling(source, 3, labelled=["/store/ds/img-000.png"]).unmatched == 0  # a path matches


def test_the_manifest_beside_the_features_skips_bad_and_duplicate_images(tmp_path):
    uris, features, _ = blobs()
    bad = {uris[0]: "duplicate", uris[1]: "duplicate", uris[2]: "corrupt"}
    table = write_dataset(tmp_path, uris, features, bad)
    picks = select_for_labelling(table, len(uris), "random")
    assert picks.skipped == {"corrupt": 1, "duplicate": 2} and picks.candidates == len(uris) - 3
    assert len(picks) == len(uris) - 3 and not set(picks.uris) & set(bad)  # a budget above the pool: all of it
    # An explicit manifest wins; features without one beside them keep every row.
    other = tmp_path / "elsewhere"
    write_dataset(other, uris, features, {uris[5]: "corrupt"})
    assert select_for_labelling(table, 4, manifest=str(other / "ds" / "manifest.parquet")).skipped == {"corrupt": 1}
    alone = tmp_path / "alone.parquet"
    write_features(str(alone), [features_table(uris, dataset="ds", model_id="m", features=features)], DIM, {})
    assert select_for_labelling(str(alone), 4).skipped == {}


def test_the_picks_file_is_a_labels_file_once_filled_in(tmp_path):
    uris, features, cluster = blobs()
    picks = select_for_labelling(as_features(uris, features), 5, "kmeans")
    path = str(tmp_path / "picks.csv")
    picks.write_csv(path)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["uri", "label", "rank", "method", "reason", "score"]
    assert [r["uri"] for r in rows] == list(picks.uris) and [r["rank"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert all(r["label"] == "" for r in rows) and read_listed_labels(path) == dict.fromkeys(picks.uris)
    with pytest.raises(ValueError, match="no row .* has a label yet .*5 rows with an empty label"):
        read_labels(path)
    for row in rows[:3]:  # a person labels three of the five
        row["label"] = f"class-{cluster[uris.index(row['uri'])]}"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert read_labels(path) == {r["uri"]: r["label"] for r in rows[:3]}


def test_a_picks_file_that_lists_an_image_twice_keeps_its_label_or_refuses_two(tmp_path):
    path = tmp_path / "picks.csv"
    path.write_text("uri,label\na.png,\na.png,cat\nb.png,dog\nb.png,\nc.png,\n,cat\n")
    assert read_listed_labels(str(path)) == {"a.png": "cat", "b.png": "dog", "c.png": None}
    assert read_labels(str(path)) == {"a.png": "cat", "b.png": "dog"}
    numbers = str(tmp_path / "labels.parquet")  # a float label column: NaN is a blank cell
    pq.write_table(pa.table({"uri": ["a.png", "b.png"], "label": [1.0, float("nan")]}), numbers)
    assert read_listed_labels(numbers) == {"a.png": 1.0, "b.png": None}
    path.write_text("uri,label\na.png,cat\na.png,dog\n")
    with pytest.raises(ValueError, match="gives 'a.png' two labels \\('cat' and 'dog'\\)"):
        read_listed_labels(str(path))


def test_the_summary_and_table_are_keyed_by_uri():
    uris, features, _ = blobs()
    picks = select_for_labelling(as_features(uris, features), 4, "typiclust", seed=1)
    table = picks.to_table()
    assert table.column_names == ["uri", "rank", "method", "reason", "score"]
    assert table.column("uri").to_pylist() == list(picks.uris) and table.column("rank").to_pylist() == [1, 2, 3, 4]
    assert picks.summary() == {"method": "typiclust", "picked": 4, "candidates": len(uris), "seed": 1,
                               "skipped": {}, "source": "/store/ds", "unmatched": 0}


def test_identical_images_still_fill_the_budget():
    features = np.zeros((12, 8), dtype=np.float32)
    features[6:] = 1.0  # two distinct points, six copies each
    uris = [f"u{i}" for i in range(12)]
    for method in METHODS:
        labelled = {"u0": "a", "u6": "b"} if method == "margin" else ()
        picks = select_for_labelling(as_features(uris, features), 5, method, labelled=labelled)
        assert len(set(picks.uris)) == 5 and not set(labelled) & set(picks.uris)


def two_classes(seed: int = 0, n: int = 400) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(uris, features, class): the class is the sign of the first dimension, spread evenly over
    [-3, 3]; the second dimension is noise."""
    rng = np.random.default_rng(seed)
    features = rng.normal(scale=0.1, size=(n, 2)).astype(np.float32)
    features[:, 0] = np.linspace(-3, 3, n)
    return [f"s3://bucket/ds/{i:03d}.png" for i in range(n)], features, (features[:, 0] > 0).astype(int)


def test_margin_picks_where_the_labels_so_far_leave_the_boundary_unclear():
    uris, features, label = two_classes()
    ends = [*range(0, 50, 5), *range(len(uris) - 50, len(uris), 5)]  # a first round that saw only the outer parts
    labelled = {uris[i]: ["left", "right"][label[i]] for i in ends}
    picks = select_for_labelling(as_features(uris, features), 6, "margin", labelled=labelled)
    assert picks.method == "margin" and picks.skipped == {"labelled": 20}
    x0 = features[[uris.index(u) for u in picks.uris], 0]
    assert np.abs(x0).max() < 0.9  # inside the least-sure quarter around the boundary at 0
    assert len(set(np.round(x0, 2))) == 6 and all("probe is unsure" in r for r in picks.reasons)
    assert all(0 <= s < 1 for s in picks.scores)
    random = select_for_labelling(as_features(uris, features), 6, "random", labelled=labelled)
    assert np.abs(features[[uris.index(u) for u in random.uris], 0]).mean() > np.abs(x0).mean()


def test_margin_scores_the_pool_a_chunk_at_a_time_as_in_one_piece(monkeypatch):
    from gan_augment.curate import selection

    uris, features, _ = two_classes()
    labelled = {uris[0]: "left", uris[1]: "left", uris[-1]: "right", uris[-2]: "right"}
    whole = select_for_labelling(as_features(uris, features), 6, "margin", labelled=labelled, seed=1)
    monkeypatch.setattr(selection, "CHUNK_ROWS", 50)
    assert select_for_labelling(as_features(uris, features), 6, "margin", labelled=labelled, seed=1) == whole


def test_margin_measures_typicality_of_a_large_cluster_on_a_seeded_sample(monkeypatch):
    from gan_augment.curate import selection

    uris, features, label = two_classes()
    labelled = {uris[0]: "left", uris[-1]: "right"}
    monkeypatch.setattr(selection, "TYPICALITY_SAMPLE", 30)  # each of 3 clusters of 99 unsure is larger
    first = select_for_labelling(as_features(uris, features), 3, "margin", labelled=labelled, seed=2)
    assert first == select_for_labelling(as_features(uris, features), 3, "margin", labelled=labelled, seed=2)
    assert len(set(first.uris)) == 3 and not set(first.uris) & set(labelled)


@pytest.mark.parametrize("among", ["pool", "unsure", "cluster"])
def test_margin_measures_typicality_where_margin_typicality_says(monkeypatch, among):
    from gan_augment.curate import selection

    # A band of 95 unsure images around the boundary at 0, and a dense clump of sure ones just past
    # its right edge: counted in (`pool`), the clump makes the band's edge the most typical.
    band, clump = np.linspace(-0.47, 0.47, 95), np.linspace(0.5, 0.51, 150)
    rest = np.concatenate([np.linspace(-3, -0.6, 70), np.linspace(0.6, 3, 65)])
    ends = np.concatenate([np.full(10, -3.0), np.full(10, 3.0)])
    x0 = np.concatenate([ends, band, clump, rest])
    features = np.stack([x0, np.zeros_like(x0)], axis=1).astype(np.float32)
    uris = [f"s3://bucket/ds/{i:03d}.png" for i in range(len(x0))]
    labelled = {uris[i]: "left" if x0[i] < 0 else "right" for i in range(20)}
    monkeypatch.setattr(selection, "MARGIN_TYPICALITY", among)
    picks = select_for_labelling(as_features(uris, features), 1, "margin", labelled=labelled)
    assert picks.candidates == 380 and "95 images where the probe is unsure" in picks.reasons[0]
    picked = abs(x0[uris.index(picks.uris[0])])
    assert picked == band[-1] if among == "pool" else picked < 0.3  # one cluster: unsure and cluster agree


def test_auto_is_typiclust_until_two_classes_are_labelled_then_margin():
    uris, features, label = two_classes()
    source = as_features(uris, features)
    auto = select_for_labelling(source, 4)
    assert auto.method == "typiclust" and auto == select_for_labelling(source, 4, "typiclust")
    waiting = dict.fromkeys(auto.uris)  # picked, not labelled yet: "", None and NaN are labels to come
    waiting[auto.uris[0]], waiting[auto.uris[1]] = "", float("nan")
    assert select_for_labelling(source, 4, labelled=waiting).method == "typiclust"
    one_class = {uris[0]: "left", uris[1]: "left"}
    assert select_for_labelling(source, 4, labelled=one_class).method == "typiclust"
    with pytest.raises(ValueError, match="'margin' fits a probe .* needs labels of two classes or more; 2 labelled "
                                         "images of /store/ds give 1: label a first round"):
        select_for_labelling(source, 4, "margin", labelled=one_class)
    # Labels keyed by path (no scheme) match, as for the other methods.
    both = {uris[0].split("://", 1)[1]: "left", uris[-1]: "right", uris[1]: None}
    later = select_for_labelling(source, 4, labelled=both)
    assert later.method == "margin" and later.skipped == {"labelled": 3} and later.candidates == len(uris) - 3


def test_bad_requests_teach(tmp_path):
    uris, features, _ = blobs()
    source = as_features(uris, features)
    with pytest.raises(ValueError, match="unknown selection method 'best'; choose one of typiclust, margin, .* auto"):
        select_for_labelling(source, 5, "best")
    with pytest.raises(ValueError, match="budget=0: ask for at least one"):
        select_for_labelling(source, 0)
    table = write_dataset(tmp_path, uris[:3], features[:3], {u: "corrupt" for u in uris[:3]})
    with pytest.raises(ValueError, match=r"none of the 3 images .* is left to pick \(corrupt 3\)"):
        select_for_labelling(table, 2)
    with pytest.raises(FileNotFoundError):
        select_for_labelling(str(tmp_path / "nothing"), 2)
    with pytest.raises(TypeError, match="features table URL or a Features"):
        select_for_labelling(features, 2)
