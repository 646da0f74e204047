"""Which images to label first: spend a labelling budget where the discriminator's features say
it counts.

Every method picks from the same candidates: the rows of a dataset's features table that the
manifest beside it calls `ok` (bad objects and duplicates are skipped, and counted), minus the
images already labelled. Features are standardised per dimension (as the probe does) and
projected onto their top principal components (`embedding`); distances are Euclidean there.

- `random`: a seeded uniform draw; the baseline.
- `kmeans`: k-means with one cluster per label; the image nearest each centre (the classic
  "typical" pick for a tiny budget).
- `kcenter`: k-center greedy (Sener & Savarese 2018, "Active learning for convolutional neural
  networks: a core-set approach"): each pick is the image farthest from every earlier pick and
  every image already labelled.
- `typiclust`: TypiClust (Hacohen, Dekel & Weinshall 2022, "Active learning on a budget:
  opposite strategies suit high and low budgets"): k-means with one cluster per label (and per
  image already labelled); from each of the largest clusters that hold no labelled image, the
  image of highest typicality, the inverse mean distance to its 20 nearest neighbours in its
  cluster. Diversity comes from the clusters, typicality from where the discriminator's feature
  space is dense: its features were trained to tell real images from ever closer fakes, so the
  dense regions are what the data mostly holds.
- `margin`: a later round, told the labels of the earlier ones. The probe fitted on them scores
  each candidate by its margin, the gap between its two likeliest classes; the `UNSURE_SHARE` least
  sure go to k-means with one cluster per label, and the most typical image of each is picked
  (typicality over the whole pool): the picks go where the boundary is unclear, apart from each
  other and away from outliers (as cluster-margin sampling, Citovsky et al. 2021).

The default, `auto`, is `typiclust` for a first round and `margin` once `labelled` gives the
labels of two classes or more: at a budget of 100, half by each in two rounds beat one round of
TypiClust on both benchmark sets (BENCHMARKS.md, "Which images to label").

Picks come in order (largest clusters first, k-center greedily): a labeller who stops early holds the best prefix.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from gan_augment.curate.embedding import CHUNK_ROWS, embed_features
from gan_augment.curate.neighbours import nearest_distances, squared_distances
from gan_augment.io.fsio import atomic_write_bytes, exists, parent_url, redact_url
from gan_augment.io.labels import label_missing
from gan_augment.io.tables import read_features_matrix, read_manifest

if TYPE_CHECKING:
    from gan_augment.export.features import Features

METHODS = ("typiclust", "margin", "kmeans", "kcenter", "random")
# `auto`: TypiClust (Hacohen et al. 2022) for a first round, `margin` once labels of two classes or
# more are known; measured in BENCHMARKS.md, "Which images to label".
AUTO, DEFAULT_METHOD, LATER_ROUND_METHOD = "auto", "typiclust", "margin"
# The least-sure share `margin` spreads its picks over: at 50 + 50 labels, 0.25 beat 0.1 and 0.5 on both
# benchmark sets (`benchmarks/selection.py --unsure-share S`; BENCHMARKS.md, "Which images to label").
UNSURE_SHARE = 0.25
# Where `margin` measures a pick's typicality: among the whole pool (`pool`), the least-sure share
# (`unsure`) or the pick's own cluster (`cluster`). On three benchmark sets the other two gain up to
# 1.9 points at 50 + 50 labels and lose up to 4.5 at 25 + 25 (`benchmarks/selection.py
# --typicality-among A`; BENCHMARKS.md, "Which images to label").
MARGIN_TYPICALITIES = ("pool", "unsure", "cluster")
MARGIN_TYPICALITY = "pool"
# TypiClust's neighbourhood; typicality of a larger cluster is measured on seeded samples of it,
# since exact neighbours within a cluster cost its size squared.
TYPICALITY_NEIGHBOURS = 20
TYPICALITY_SAMPLE = 4000
# Above this many rows, mini-batch k-means (Sculley 2010) instead of Lloyd's full passes.
MINIBATCH_ABOVE = 50_000
CSV_COLUMNS = ("uri", "label", "rank", "method", "reason", "score")


@dataclass(frozen=True)
class Selection:
    """The images to label, best first.

    Attributes:
        uris: the images, in the order to label them.
        reasons: why each was picked.
        scores: the number behind each reason (a distance or a typicality; NaN for random).
        method: the method that picked them.
        seed: the seed of every random choice.
        candidates: images the method could pick from.
        skipped: rows left out before picking, by reason (a manifest status, or "labelled").
        source: where the features came from (credentials removed).
        unmatched: images `labelled` listed that the features do not hold (a warning names them).
    """

    uris: tuple[str, ...]
    reasons: tuple[str, ...]
    scores: tuple[float, ...]
    method: str
    seed: int
    candidates: int
    skipped: Mapping[str, int] = field(default_factory=dict)
    source: str = ""
    unmatched: int = 0

    def __len__(self) -> int:
        return len(self.uris)

    def to_table(self) -> pa.Table:
        """uri, rank (1 = label first), method, reason, score: columns keyed by uri."""
        n = len(self.uris)
        return pa.table({"uri": pa.array(self.uris, pa.string()), "rank": pa.array(range(1, n + 1), pa.int32()),
                         "method": pa.array([self.method] * n, pa.string()),
                         "reason": pa.array(self.reasons, pa.string()),
                         "score": pa.array(self.scores, pa.float64())})

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "picked": len(self), "candidates": self.candidates, "seed": self.seed,
                "skipped": dict(self.skipped), "source": self.source, "unmatched": self.unmatched}

    def write_csv(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        """Write the picks as CSV (`CSV_COLUMNS`, atomically): `label` is empty for the person who
        labels them; `evaluate --labels` reads the file once it is filled in."""
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for rank, (uri, reason, score) in enumerate(zip(self.uris, self.reasons, self.scores), start=1):
            writer.writerow([uri, "", rank, self.method, reason, "" if math.isnan(score) else f"{score:.6g}"])
        atomic_write_bytes(url, text.getvalue().encode(), storage_options)


def select_for_labelling(
    features: str | Features,
    budget: int,
    method: str = AUTO,
    *,
    manifest: str | None = None,
    labelled: Iterable[str] | Mapping[str, Hashable | None] = (),
    seed: int = 0,
    storage_options: dict[str, Any] | None = None,
) -> Selection:
    """The `budget` images of a dataset to label first, in order, with the reason for each.

    Args:
        features: the dataset's features table (`OUT/<dataset>/features`, any fsspec URL) or a
            `Features` from `extract_features`.
        budget: how many images to pick (all candidates when there are fewer).
        method: one of `METHODS`, or `auto` (see the module's docstring).
        manifest: the dataset's manifest; rows it does not call `ok` are skipped. Default: the
            manifest beside a features table (`OUT/<dataset>/manifest.parquet`), if there is one.
        labelled: images already labelled or waiting for a label (the next round of a labelling
            loop): URIs, or {uri: label} with None for a label still to come. They are never
            picked again; the clustering methods and k-center spend the budget away from them,
            and `margin` fits its probe on those with a label.
        seed: seeds the random draw, k-means and the projection.
        storage_options: fsspec options for the URLs.

    Returns:
        A `Selection`; `.write_csv(url)` writes the file to label.

    Raises:
        ValueError: an unknown method, a budget below 1, no image left to pick, `margin` without
            labels of two classes, or a `labelled` none of whose images the features hold (another
            dataset's list, say): its picks could repeat the images already labelled.
        FileNotFoundError: no features table, or no manifest at an explicit `manifest`.

    Examples:
        >>> from gan_augment import export_features, extract_features
        >>> _ = export_features(extract_features(trained_model, store + "/shapes"), out + "/shapes/features")
        >>> picks = select_for_labelling(out + "/shapes/features", budget=3, method="kcenter")
        >>> len(picks), picks.method, picks.candidates
        (3, 'kcenter', 24)
        >>> picks.reasons[1].startswith("farthest from every earlier pick")
        True
    """
    if method not in (AUTO, *METHODS):
        raise ValueError(f"unknown selection method {method!r}; choose one of {', '.join(METHODS)} or {AUTO}")
    if budget < 1:
        raise ValueError(f"budget={budget}: ask for at least one image to label")
    uris, matrix, source = _load(features, storage_options)
    statuses = _manifest_statuses(features, manifest, storage_options)
    answers = dict(labelled) if isinstance(labelled, Mapping) else dict.fromkeys(labelled)
    listed, unmatched = _listed_rows(answers, uris, source)
    is_labelled = np.isin(np.arange(len(uris)), list(listed))
    status = [statuses.get(uri, "ok") for uri in uris]
    usable = np.array([s == "ok" for s in status], dtype=bool)
    skipped = Counter(s for s in status if s != "ok")
    if (is_labelled & usable).any():
        skipped["labelled"] = int((is_labelled & usable).sum())
    candidates = np.flatnonzero(usable & ~is_labelled)
    if len(candidates) == 0:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(skipped.items())) or "no rows"
        raise ValueError(f"none of the {len(uris)} images of {source} is left to pick ({reasons}); "
                         "extract features of the dataset's ok images first")
    budget = min(budget, len(candidates))
    anchors = np.flatnonzero(usable & is_labelled)
    known = [(row, label) for row, label in listed.items() if label is not None]
    classes = len({label for _, label in known})
    method = (LATER_ROUND_METHOD if classes >= 2 else DEFAULT_METHOD) if method == AUTO else method
    x = embed_features(matrix, seed) if method != "random" else matrix
    if method == "margin":
        if classes < 2:
            raise ValueError(f"method 'margin' fits a probe on the labelled images and needs labels of two classes "
                             f"or more; {len(known)} labelled images of {source} give {classes}: label a first "
                             f"round ({DEFAULT_METHOD}) and pass it as `labelled`")
        margin = _margins(matrix, [row for row, _ in known], [label for _, label in known], seed)
        picks, reasons, scores = _pick_margin(x, candidates, anchors, budget, seed, margin=margin)
    else:
        picks, reasons, scores = _PICKERS[method](x, candidates, anchors, budget, seed)
    return Selection(tuple(uris[i] for i in picks), tuple(reasons), tuple(float(s) for s in scores), method, seed,
                     len(candidates), dict(sorted(skipped.items())), source, unmatched)


# -- inputs ----------------------------------------------------------------------------------------

def _load(features: str | Features, storage_options: dict[str, Any] | None) -> tuple[list[str], np.ndarray, str]:
    if isinstance(features, str):
        uris, matrix = read_features_matrix(features, storage_options)
        return uris, matrix, redact_url(features)
    if not (hasattr(features, "uris") and hasattr(features, "features")):
        raise TypeError(f"features must be a features table URL or a Features; got {type(features).__name__}")
    return list(features.uris), np.asarray(features.features), features.source or features.dataset


def _listed_rows(answers: dict[str, Hashable | None], uris: list[str],
                 source: str) -> tuple[dict[int, Hashable | None], int]:
    """{row: label, None while it is still to come} of the images `answers` lists, by full URI or
    path, and how many it lists that the features lack (a warning; an error when it is all)."""
    keys = {row: uri if uri in answers else uri.split("://", 1)[-1] for row, uri in enumerate(uris)}
    listed = {row: None if label_missing(answers[key]) else answers[key] for row, key in keys.items() if key in answers}
    found = {keys[row] for row in listed}
    missing = [redact_url(key) for key in answers if key not in found]
    if missing:
        if not listed:
            raise ValueError(f"none of the {len(answers)} images listed as labelled is in {source} (e.g. "
                             f"{missing[0]}): pass the labels or picks file of these features, under the URIs they "
                             "were extracted from; picks made without it could repeat the images already labelled")
        warnings.warn(f"{len(missing)} of the {len(answers)} images listed as labelled are not in {source} (e.g. "
                      f"{missing[0]}): left out, and picked again if the features hold them under another name",
                      stacklevel=3)
    return listed, len(missing)


def _manifest_statuses(features: str | Features, manifest: str | None,
                       storage_options: dict[str, Any] | None) -> dict[str, str]:
    """{uri: status} of the manifest (explicit, or beside a features table); {} without one."""
    if manifest is None and isinstance(features, str):
        beside = parent_url(features.rstrip("/")) + "/manifest.parquet"
        manifest = beside if exists(beside, storage_options) else None
    if manifest is None:
        return {}
    table = read_manifest(manifest, storage_options)
    return dict(zip(table.column("uri").to_pylist(), table.column("status").to_pylist()))


# -- methods: (x, candidates, anchors, budget, seed) -> (rows, reasons, scores) ---------------------

Picks = tuple[list[int], list[str], list[float]]


def _pick_random(x: np.ndarray, candidates: np.ndarray, anchors: np.ndarray, budget: int, seed: int) -> Picks:
    rows = np.random.default_rng(seed).permutation(candidates)[:budget]
    return [int(r) for r in rows], [f"drawn at random (seed {seed})"] * budget, [math.nan] * budget


def _pick_kcenter(x: np.ndarray, candidates: np.ndarray, anchors: np.ndarray, budget: int, seed: int) -> Picks:
    rows, reasons, scores = [], [], []
    distance = nearest_distances(x, anchors)[candidates]
    if not len(anchors):  # start where the data is, not at an outlier: the image nearest the mean
        first = int(np.argmin(((x[candidates] - x[candidates].mean(0)) ** 2).sum(1)))
        rows.append(int(candidates[first]))
        reasons.append("nearest the mean of the pool (k-center's first pick)")
        scores.append(0.0)
        distance = np.minimum(distance, nearest_distances(x[candidates], np.array([first])))
        distance[first] = -np.inf  # picked (copies of it stay available at distance 0)
    while len(rows) < budget:
        best = int(np.argmax(distance))
        rows.append(int(candidates[best]))
        reasons.append(f"farthest from every earlier pick: distance {distance[best]:.3g}")
        scores.append(float(distance[best]))
        distance = np.minimum(distance, nearest_distances(x[candidates], np.array([best])))
        distance[best] = -np.inf
    return rows, reasons, scores


def _cluster(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(cluster of each row, centres) of k-means with k clusters."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    kmeans = (MiniBatchKMeans(k, random_state=seed, n_init=3, batch_size=4096) if len(x) > MINIBATCH_ABOVE
              else KMeans(k, random_state=seed, n_init=3))
    with warnings.catch_warnings():  # identical images make fewer distinct clusters; the fill handles it
        warnings.simplefilter("ignore")
        assignment = kmeans.fit_predict(x)
    return assignment, kmeans.cluster_centers_.astype(np.float32)


def _typicality(x: np.ndarray, members: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """TypiClust's typicality of each of `rows` within its cluster `members`: the inverse mean
    distance to its nearest neighbours (0 for an image alone in its cluster)."""
    k = min(TYPICALITY_NEIGHBOURS, len(members) - 1)
    if k < 1:
        return np.zeros(len(rows), dtype=np.float32)
    reference = members if len(members) <= TYPICALITY_SAMPLE else rng.choice(members, TYPICALITY_SAMPLE, False)
    squared = squared_distances(x[rows], x[reference])  # (rows, reference)
    squared[rows[:, None] == reference[None, :]] = np.inf  # an image is not its own neighbour
    nearest = np.sqrt(np.partition(squared, k - 1, axis=1)[:, :k])
    return 1.0 / (nearest.mean(1) + 1e-12)


def _cluster_picks(x: np.ndarray, candidates: np.ndarray, anchors: np.ndarray, budget: int, seed: int,
                   typical: bool) -> Picks:
    """One pick from each of the largest clusters that hold no labelled image: the member
    nearest the centre (`kmeans`) or the most typical one (`typiclust`)."""
    clusters, centres = _cluster(x, min(budget + len(anchors), len(x)), seed)
    sizes = np.bincount(clusters, minlength=len(centres))
    covered = set(clusters[anchors].tolist())
    is_candidate = np.zeros(len(x), dtype=bool)
    is_candidate[candidates] = True
    rng = np.random.default_rng(seed)
    rows, reasons, scores = [], [], []
    for c in sorted(range(len(centres)), key=lambda c: (-sizes[c], c)):
        if len(rows) == budget:
            break
        members = np.flatnonzero(clusters == c)
        options = members[is_candidate[members]]
        if c in covered or not len(options):
            continue
        sample = options if len(options) <= TYPICALITY_SAMPLE else rng.choice(options, TYPICALITY_SAMPLE, False)
        if typical:
            values = _typicality(x, members, sample, rng)
            best = int(np.argmax(values))
            reasons.append(f"most typical of cluster {c} ({sizes[c]} images): typicality {values[best]:.3g}")
        else:
            values = np.sqrt(((x[sample] - centres[c]) ** 2).sum(1))
            best = int(np.argmin(values))
            reasons.append(f"nearest the centre of cluster {c} ({sizes[c]} images): distance {values[best]:.3g}")
        rows.append(int(sample[best]))
        scores.append(float(values[best]))
    return _fill_with_kcenter(x, candidates, anchors, budget, seed, (rows, reasons, scores))


def _margins(matrix: np.ndarray, rows: list[int], labels: list[Hashable], seed: int) -> np.ndarray:
    """Each row's margin under the probe fitted on the labelled rows: the probability of its
    likeliest class minus that of the next (0 = a coin toss between two classes)."""
    from gan_augment.evaluate.linear import fit_linear  # the probe's classifier, without loading torch

    probe = fit_linear(matrix[rows], np.asarray(labels), seed=seed)
    margins = np.empty(len(matrix), dtype=np.float64)
    for start in range(0, len(matrix), CHUNK_ROWS):  # the scaler's float64 copy of a chunk, not of the pool
        probabilities = np.sort(probe.predict_proba(matrix[start:start + CHUNK_ROWS]), axis=1)
        margins[start:start + CHUNK_ROWS] = probabilities[:, -1] - probabilities[:, -2]
    return margins


def _fill_with_kcenter(x: np.ndarray, candidates: np.ndarray, anchors: np.ndarray, budget: int, seed: int,
                       picks: Picks) -> Picks:
    """`picks`, topped up by k-center where fewer distinct clusters than asked (identical images)."""
    rows, reasons, scores = picks
    if len(rows) < budget:
        rest = candidates[~np.isin(candidates, rows)]
        more = _pick_kcenter(x, rest, np.concatenate([anchors, rows]).astype(int), budget - len(rows), seed)
        rows, reasons, scores = rows + more[0], reasons + more[1], scores + more[2]
    return rows, reasons, scores


def _pick_margin(x: np.ndarray, candidates: np.ndarray, anchors: np.ndarray, budget: int, seed: int, *,
                 margin: np.ndarray) -> Picks:
    """The most typical image of each of `budget` k-means clusters of the least-sure candidates."""
    keep = max(budget, int(UNSURE_SHARE * len(candidates)))
    unsure = candidates[np.argsort(margin[candidates], kind="stable")[:keep]]
    clusters, _ = _cluster(x[unsure], min(budget, len(unsure)), seed)
    sizes = np.bincount(clusters)
    rng = np.random.default_rng(seed)
    rows, reasons, scores = [], [], []
    pool = np.arange(len(x))
    for c in sorted(np.flatnonzero(sizes), key=lambda c: (-sizes[c], c)):
        members = unsure[clusters == c]  # a large cluster: its typicality measured on a seeded sample
        members = members if len(members) <= TYPICALITY_SAMPLE else rng.choice(members, TYPICALITY_SAMPLE, False)
        among = {"pool": pool, "unsure": unsure, "cluster": members}[MARGIN_TYPICALITY]
        values = _typicality(x, among, members, rng)
        best = int(members[np.argmax(values)])
        rows.append(best)
        reasons.append(f"most typical of {sizes[c]} images where the probe is unsure (cluster {c}): "
                       f"margin {margin[best]:.3g}")
        scores.append(float(margin[best]))
    return _fill_with_kcenter(x, candidates, anchors, budget, seed, (rows, reasons, scores))


_PICKERS: dict[str, Callable[..., Picks]] = {
    "random": _pick_random,
    "kmeans": lambda *args: _cluster_picks(*args, typical=False),
    "kcenter": _pick_kcenter,
    "typiclust": lambda *args: _cluster_picks(*args, typical=True),
}
