"""The outlier scorer: kNN distances in all standardised dimensions and on the principal
components, and a score that takes the larger of the two."""

from __future__ import annotations

import numpy as np

from gan_augment.export.scores import fit_outlier_scorer


class FakeFeatures:
    """What `fit_outlier_scorer` reads of a `Features`: its length and `outputs(rows)`."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix.astype(np.float32)

    def __len__(self) -> int:
        return len(self.matrix)

    def outputs(self, rows: np.ndarray):
        for start in range(0, len(rows), 64):
            chunk = rows[start:start + 64]
            yield chunk, self.matrix[chunk], np.zeros(len(chunk), np.float32)


def two_kinds_of_odd(seed: int = 0) -> tuple[np.ndarray, int, int]:
    """500 images: 30 dimensions driven by 3 shared factors (the directions the data varies
    along together) and 60 of independent noise; one image 4 standard deviations out along a
    factor, one whose noise dimensions are all 4 out."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(500, 3))
    factors[0] = [4.0, 0.0, 0.0]  # odd on the principal components
    shared = factors @ rng.normal(size=(3, 30)) + 0.1 * rng.normal(size=(500, 30))
    noise = rng.normal(size=(500, 60))
    noise[1] = rng.choice([-4.0, 4.0], size=60)  # odd in the many weak dimensions
    return np.concatenate([shared, noise], axis=1), 0, 1


def test_each_view_finds_its_own_kind_of_odd_image_and_the_score_finds_both():
    matrix, principal_odd, weak_odd = two_kinds_of_odd()
    scorer = fit_outlier_scorer(FakeFeatures(matrix), components=3)
    rows = np.arange(len(matrix))
    knn = scorer.knn_distance(matrix.astype(np.float32), rows)
    principal = scorer.principal_distance(matrix.astype(np.float32), rows)
    assert np.argmax(principal) == principal_odd
    assert np.argmax(knn) == weak_odd and weak_odd not in np.argsort(-principal)[:5]
    assert principal_odd not in np.argsort(-knn)[:2]  # all dimensions alone would miss it in the top 2
    both = scorer.distances(matrix.astype(np.float32), rows)
    np.testing.assert_allclose(both[0], knn, rtol=1e-6)
    np.testing.assert_allclose(both[1], principal, rtol=1e-6)
    score = scorer.score(knn, principal, np.zeros(len(matrix)))
    assert set(np.argsort(-score)[:2].tolist()) == {principal_odd, weak_odd}
    (knn_mean, knn_std), (pc_mean, pc_std) = scorer.knn_stats, scorer.principal_stats
    np.testing.assert_allclose(score, np.maximum((knn - knn_mean) / knn_std, (principal - pc_mean) / pc_std),
                               rtol=1e-6)


def test_a_reference_image_is_not_its_own_neighbour_and_k_follows_the_dataset():
    matrix, _, _ = two_kinds_of_odd(seed=1)
    scorer = fit_outlier_scorer(FakeFeatures(matrix))
    assert scorer.neighbours == 10  # 2% of 500 is below the floor of 10
    assert scorer.components.shape == (90, 20)
    np.testing.assert_allclose(scorer.components.T @ scorer.components, np.eye(20), atol=1e-4)
    own = scorer.knn_distance(matrix[:5].astype(np.float32), np.arange(5))
    as_strangers = scorer.knn_distance(matrix[:5].astype(np.float32))  # each finds itself at distance 0
    assert (own > as_strangers).all()
    assert fit_outlier_scorer(FakeFeatures(matrix[:1])) is None
