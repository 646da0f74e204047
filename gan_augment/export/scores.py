"""How unusual each real image is to the trained discriminator: the score the features table
carries beside each feature vector.

Two views of "far from what D learnt", both from the export's one forward pass:
- `logit`: D's real/fake logit. D was trained to call the dataset real, so an image it finds
  fake-looking is unlike the bulk of it.
- `knn_distance`: the mean Euclidean distance to the k nearest images of a reference sample
  in D's feature space, each dimension standardised by the reference (a kNN density estimate:
  Loftsgaarden & Quesenberry 1965; the kNN-distance outlier score of Ramaswamy et al. 2000). An
  image alone in feature space has a large one. k grows with the dataset (2% of it, from 10 up
  to `NEIGHBOURS`, 40), not the usual fixed 5-10: odd images come in groups (40 Fashion-MNIST
  images planted among 2,000 digits are 4 of each garment), and a k below a group's size finds
  each member's neighbours in its own group. On the planted stores of `benchmarks/outliers.py`
  (2,040 images), k = 10 ranked 35 / 40 and 19 / 40 of the planted images in the top 80, and
  k = 40 36 / 40 and 30 / 40.

`outlier_score` standardises both over the reference and adds them, the logit with weight
`LOGIT_WEIGHT`: 0 for now, since on the planted case of tests/curate/test_outliers.py the logit
ranked the planted images no higher than chance while the kNN distance did
(`benchmarks/outliers.py` measures each column alone on trained models). The reference is every image,
or a seeded sample of `REFERENCE_ROWS` for a larger dataset, so the cost is linear in the
dataset; the search is plain numpy (chunked distances): scikit-learn's brute-force search is the
same arithmetic, and numpy keeps the export free of another import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gan_augment.export.features import Features

NEIGHBOURS = 40
MIN_NEIGHBOURS = 10
REFERENCE_ROWS = 20_000
LOGIT_WEIGHT = 0.0


@dataclass(frozen=True)
class OutlierScorer:
    """Scores images against a reference sample of their dataset (made by `fit_outlier_scorer`).

    Attributes:
        mean, scale: (d,) per-dimension standardisation of the features.
        reference: (M, d) standardised features of the reference images.
        reference_rows: (M,) their row indices in the `Features` they came from, so that an
            image of the reference is never its own neighbour.
        knn_stats, logit_stats: (mean, std) of the reference's kNN distances and logits.
        neighbours: k of the kNN distance.
    """

    mean: np.ndarray
    scale: np.ndarray
    reference: np.ndarray
    reference_rows: np.ndarray
    knn_stats: tuple[float, float]
    logit_stats: tuple[float, float]
    neighbours: int = NEIGHBOURS

    def knn_distance(self, features: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """(B,) mean distance of each of (B, d) `features` to its nearest reference images;
        `rows` (B,) are their row indices, so that a reference image skips itself."""
        return self._knn_standardised((features - self.mean) / self.scale, rows)

    def _knn_standardised(self, query: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        squared = ((query**2).sum(1)[:, None] + (self.reference**2).sum(1)[None, :]
                   - 2.0 * query @ self.reference.T)  # (B, M)
        if rows is not None:
            own = np.asarray(rows)[:, None] == self.reference_rows[None, :]  # (B, M)
            squared[own] = np.inf
        k = min(self.neighbours, self.reference.shape[0] - (rows is not None))
        nearest = np.partition(squared, k - 1, axis=1)[:, :k]  # (B, k)
        return np.sqrt(np.maximum(nearest, 0.0)).mean(1)

    def score(self, knn: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """(B,) outlier scores: standardised kNN distance plus LOGIT_WEIGHT times the standardised
        negated logit (higher = more unusual)."""
        (knn_mean, knn_std), (logit_mean, logit_std) = self.knn_stats, self.logit_stats
        return (knn - knn_mean) / knn_std + LOGIT_WEIGHT * (logit_mean - logits) / logit_std


def fit_outlier_scorer(features: Features, *, reference_rows: int = REFERENCE_ROWS,
                       neighbours: int = NEIGHBOURS, seed: int = 0) -> OutlierScorer | None:
    """Standardisation and reference sample of a dataset's features; None for a dataset of one
    image. k is 2% of the dataset, at least MIN_NEIGHBOURS and at most `neighbours` (and half
    the dataset).

    Args:
        features: what `extract_features` returns; the discriminator runs over the reference rows.
        reference_rows: the most images in the reference (a seeded sample above that).
        neighbours: k of the kNN distance.
        seed: the sample's seed.
    """
    count = len(features)
    # 2% of the dataset between MIN_NEIGHBOURS and `neighbours`; never more than half of it.
    neighbours = min(max(count // 50, MIN_NEIGHBOURS), neighbours, count // 2)
    if neighbours < 1:
        return None
    rows = np.arange(count)
    if count > reference_rows:
        rows = np.sort(np.random.default_rng(seed).choice(count, reference_rows, replace=False))
    parts = list(features.outputs(rows))
    # float32 throughout: the reference (20,000 x d at most) and its distance blocks are the
    # export's largest arrays; float64 doubled them for no change in the ranking.
    matrix = np.concatenate([part[1] for part in parts])  # (M, d) float32
    logits = np.concatenate([part[2] for part in parts]).astype(np.float64)  # (M,)
    del parts
    mean, scale = matrix.mean(0), matrix.std(0)
    scale[scale < 1e-8] = 1.0  # a dimension that never varies carries no distance
    matrix -= mean
    matrix /= scale  # standardised in place
    scorer = OutlierScorer(mean, scale, matrix, rows, (0.0, 1.0), (0.0, 1.0), neighbours)
    knn = np.concatenate([scorer._knn_standardised(matrix[i:i + 1024], rows[i:i + 1024])
                          for i in range(0, len(rows), 1024)])
    return OutlierScorer(mean, scale, scorer.reference, rows, _stats(knn), _stats(logits), neighbours)


def _stats(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std()) or 1.0
