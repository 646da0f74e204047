"""embed_features: the standardised principal components, made a chunk at a time, equal to the
same computation on the whole matrix."""

from __future__ import annotations

import numpy as np

from gan_augment.curate import embedding
from gan_augment.curate.embedding import embed_features


def reference(x: np.ndarray) -> np.ndarray:
    """The embedding in one piece: standardise, principal components of all rows, project."""
    std = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)
    _, vectors = np.linalg.eigh(z.T.astype(np.float64) @ z / len(z))
    return z @ vectors[:, ::-1][:, :embedding.EMBED_DIM].astype(np.float32)


def test_chunks_give_the_whole_matrix_embedding(monkeypatch):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(700, 48)) * rng.uniform(0.1, 30, 48) + rng.normal(size=48) * 50).astype(np.float32)
    x[:, 5] = 3.0  # a constant dimension becomes 0, not NaN
    whole = embed_features(x, seed=0)
    monkeypatch.setattr(embedding, "CHUNK_ROWS", 64)
    chunked = embed_features(x, seed=0)
    assert chunked.shape == (700, embedding.EMBED_DIM) and chunked.dtype == np.float32
    assert np.array_equal(embedding._std(x, x.mean(axis=0)), x.std(axis=0))  # to the last bit
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.abs(chunked), np.abs(reference(x)), rtol=1e-4, atol=1e-4)  # a component's sign
    assert np.isfinite(chunked).all()


def test_narrow_features_are_only_standardised():
    x = np.random.default_rng(1).normal(size=(30, 6)).astype(np.float32) * 4 + 2
    out = embed_features(x, seed=0)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-5)
