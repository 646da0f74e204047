"""The space the curate stage measures feature distances in: each dimension of the discriminator's
features standardised, then projected onto the top `EMBED_DIM` principal components. Selection
clusters and measures typicality there; the near-duplicate search refines its pairs there.

A pool's matrix can be large (1,000,000 images of 896 features are 3.6 GB of float32), so the
embedding is made `CHUNK_ROWS` rows at a time: beyond the matrix itself it holds the embedding,
the PCA sample and one chunk, never a standardised copy of the whole (BENCHMARKS.md, "Selection
at scale").
"""

from __future__ import annotations

import numpy as np

# 20 components picked better than 50 at a budget of 10 on both benchmark sets and as well at 100
# (BENCHMARKS.md, "Which images to label"; 3 seeds while choosing).
EMBED_DIM = 20
# The principal components come from the covariance of at most this many seeded rows.
PCA_ROWS = 20_000
CHUNK_ROWS = 16_384


def embed_features(matrix: np.ndarray, seed: int) -> np.ndarray:
    """Standardised features on their top principal components, float32 (all of the standardised
    features where they have no more than `EMBED_DIM` dimensions). The components come from the
    covariance of at most `PCA_ROWS` seeded rows: exact, and cheap for any pool."""
    x = np.asarray(matrix, dtype=np.float32)
    mean = x.mean(axis=0)
    scale = np.where((std := _std(x, mean)) > 1e-8, std, 1.0)  # a constant dimension becomes 0
    dims = min(EMBED_DIM, x.shape[0], x.shape[1])
    if dims == x.shape[1]:
        return (x - mean) / scale
    fit = x if len(x) <= PCA_ROWS else x[np.random.default_rng(seed).choice(len(x), PCA_ROWS, replace=False)]
    fit = (fit - mean) / scale
    _, vectors = np.linalg.eigh(fit.T.astype(np.float64) @ fit / len(fit))  # ascending eigenvalues
    projection = vectors[:, ::-1][:, :dims].astype(np.float32)
    embedded = np.empty((len(x), dims), dtype=np.float32)
    for start in range(0, len(x), CHUNK_ROWS):
        chunk = x[start:start + CHUNK_ROWS] - mean
        chunk /= scale
        embedded[start:start + CHUNK_ROWS] = chunk @ projection
    return embedded


def _std(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """`x.std(axis=0)` to the last bit, a chunk at a time: numpy sums a column's squares row after
    row in float32, and so does this, carrying the running sums in as each chunk's first row."""
    squares = np.zeros((1, x.shape[1]), dtype=np.float32)
    for start in range(0, len(x), CHUNK_ROWS):
        deviations = np.concatenate([squares, x[start:start + CHUNK_ROWS] - mean])
        deviations[1:] *= deviations[1:]
        squares = np.add.reduce(deviations, axis=0, keepdims=True)
    return np.sqrt(squares[0] / np.float32(max(len(x), 1)))
