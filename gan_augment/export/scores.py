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

`outlier_score` looks at the kNN distance in two views of the same standardised features: all
their dimensions (the `knn_distance` column), and their top `PRINCIPAL_COMPONENTS` principal
components (the reference's covariance), where the few directions the dataset varies most along
are not drowned by hundreds of weak ones. Each distance is standardised over the reference and
the score is the larger of the two: an image is unusual when either view puts it far from the
rest. The two fail on different stores: on the planted stores of `benchmarks/outliers.py`
(2,040 images, 300 steps, training seeds 0 and 1), all dimensions ranked 36 and 37 / 40 of the
digits planted among garments in the top 80 but 30 and 25 / 40 of the garments planted among
digits, the 20 components 23 and 17 / 40 against 39 and 37 / 40; the larger of the two
standardised distances 33 and 33 / 40, and 37 and 36 / 40 (BENCHMARKS.md, "Outliers").

D's negated logit, standardised, is added with weight `LOGIT_WEIGHT`: 0 for now, since on the
planted case of tests/curate/test_outliers.py the logit ranked the planted images no higher than
chance while the kNN distance did (`benchmarks/outliers.py` measures each column alone on
trained models). The reference is every image, or a seeded sample of `REFERENCE_ROWS` for a
larger dataset, so the cost is linear in the dataset; the search is plain numpy (chunked
distances): scikit-learn's brute-force search is the same arithmetic, and numpy keeps the export
free of another import.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gan_augment.export.features import Features

NEIGHBOURS = 40
MIN_NEIGHBOURS = 10
REFERENCE_ROWS = 20_000
LOGIT_WEIGHT = 0.0
PRINCIPAL_COMPONENTS = 20


@dataclass(frozen=True)
class OutlierScorer:
    """Scores images against a reference sample of their dataset (made by `fit_outlier_scorer`).

    Attributes:
        mean, scale: (d,) per-dimension standardisation of the features.
        reference: (M, d) standardised features of the reference images.
        reference_rows: (M,) their row indices in the `Features` they came from, so that an
            image of the reference is never its own neighbour.
        components: (d, p) the reference's top principal components (orthonormal columns).
        knn_stats, principal_stats, logit_stats: (mean, std) over the reference of its kNN
            distances in all dimensions and on the components, and of its logits.
        neighbours: k of the kNN distances.
    """

    mean: np.ndarray
    scale: np.ndarray
    reference: np.ndarray
    reference_rows: np.ndarray
    components: np.ndarray
    knn_stats: tuple[float, float]
    principal_stats: tuple[float, float]
    logit_stats: tuple[float, float]
    neighbours: int = NEIGHBOURS

    def distances(self, features: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(`knn_distance`, `principal_distance`) of (B, d) `features`, standardised once."""
        query = (features - self.mean) / self.scale
        return self._knn(query, self.reference, rows), self._knn(query @ self.components, self._projected, rows)

    def knn_distance(self, features: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """(B,) mean distance of each of (B, d) `features` to its nearest reference images in
        all dimensions; `rows` (B,) are their row indices, so that a reference image skips itself."""
        return self._knn((features - self.mean) / self.scale, self.reference, rows)

    def principal_distance(self, features: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """(B,) the same on the principal components."""
        return self._knn((features - self.mean) / self.scale @ self.components, self._projected, rows)

    @cached_property
    def _projected(self) -> np.ndarray:
        return self.reference @ self.components  # (M, p)

    def _knn(self, query: np.ndarray, reference: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        squared = ((query**2).sum(1)[:, None] + (reference**2).sum(1)[None, :]
                   - 2.0 * query @ reference.T)  # (B, M)
        if rows is not None:
            own = np.asarray(rows)[:, None] == self.reference_rows[None, :]  # (B, M)
            squared[own] = np.inf
        k = min(self.neighbours, reference.shape[0] - (rows is not None))
        nearest = np.partition(squared, k - 1, axis=1)[:, :k]  # (B, k)
        return np.sqrt(np.maximum(nearest, 0.0)).mean(1)

    def score(self, knn: np.ndarray, principal: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """(B,) outlier scores: the larger of the standardised kNN distances in all dimensions
        and on the components, plus LOGIT_WEIGHT times the standardised negated logit (higher =
        more unusual)."""
        (knn_mean, knn_std), (pc_mean, pc_std) = self.knn_stats, self.principal_stats
        logit_mean, logit_std = self.logit_stats
        distance = np.maximum((knn - knn_mean) / knn_std, (principal - pc_mean) / pc_std)
        return distance + LOGIT_WEIGHT * (logit_mean - logits) / logit_std


def fit_outlier_scorer(features: Features, *, reference_rows: int = REFERENCE_ROWS,
                       neighbours: int = NEIGHBOURS, components: int = PRINCIPAL_COMPONENTS,
                       seed: int = 0) -> OutlierScorer | None:
    """Standardisation, principal components and reference sample of a dataset's features; None
    for a dataset of one image. k is 2% of the dataset, at least MIN_NEIGHBOURS and at most
    `neighbours` (and half the dataset).

    Args:
        features: what `extract_features` returns; the discriminator runs over the reference rows.
        reference_rows: the most images in the reference (a seeded sample above that).
        neighbours: k of the kNN distances.
        components: principal components of the second view (at most the feature dimension).
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
    # The covariance's eigenvectors, largest eigenvalue first (eigh returns them ascending).
    _, vectors = np.linalg.eigh((matrix.T @ matrix).astype(np.float64) / len(matrix))  # (d, d)
    top = vectors[:, ::-1][:, :min(components, matrix.shape[1])].astype(np.float32)  # (d, p)
    unit = (0.0, 1.0)
    scorer = OutlierScorer(mean, scale, matrix, rows, top, unit, unit, unit, neighbours)
    blocks = [(matrix[i:i + 1024], rows[i:i + 1024]) for i in range(0, len(rows), 1024)]
    knn = np.concatenate([scorer._knn(block, matrix, own) for block, own in blocks])
    principal = np.concatenate([scorer._knn(block @ top, scorer._projected, own) for block, own in blocks])
    return OutlierScorer(mean, scale, matrix, rows, top, _stats(knn), _stats(principal), _stats(logits), neighbours)


def _stats(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std()) or 1.0
