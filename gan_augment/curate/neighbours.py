"""The one neighbour search of the curate stage: which pairs of encodings lie within a distance.

Encoders live where their inputs are: the perceptual hash where pixels are decoded
(`scan.phash`), discriminator features in the export (`export.features`). This module only
compares encodings, as imagededup keeps its search (`handlers/search/`) apart from its hashers:
all pairs, in blocks of rows (memory bounded by `BLOCK_ROWS` x N), by Hamming distance between
64-bit hashes or cosine distance between feature vectors, or only the candidate pairs given.

Examples:
    >>> import numpy as np
    >>> codes = np.array([0b1011, 0b1001, 0xFF00], dtype=np.int64)
    >>> neighbour_pairs(codes, 1, "hamming")
    [(0, 1, 1.0)]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METRICS = ("hamming", "cosine")
BLOCK_ROWS = 1024


def _distances(metric: str, rows: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(R, O) distances between two blocks of encodings."""
    if metric == "hamming":
        # XOR then popcount: numpy's bitwise_count runs one instruction per pair.
        return np.bitwise_count(rows[:, None] ^ others[None, :]).astype(np.float64)  # (R, O)
    return 1.0 - rows @ others.T  # (R, O); rows are unit vectors


def _prepare(metric: str, encodings: np.ndarray) -> np.ndarray:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    if metric == "hamming":
        return np.asarray(encodings, dtype=np.int64).view(np.uint64)  # (N,)
    matrix = np.asarray(encodings, dtype=np.float64)  # (N, d)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def neighbour_pairs(
    encodings: np.ndarray, max_distance: float, metric: str,
    candidates: Sequence[tuple[int, int]] | None = None,
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, distance), i < j, whose distance is at most `max_distance`.

    Args:
        encodings: (N,) int64 hashes for "hamming", (N, d) feature vectors for "cosine".
        max_distance: bits for "hamming"; 1 - cosine similarity for "cosine".
        metric: "hamming" or "cosine".
        candidates: compare only these pairs (a refinement of an earlier search); default all.
    """
    codes = _prepare(metric, encodings)
    if candidates is not None:
        if not candidates:
            return []
        left, right = (np.array(side) for side in zip(*candidates))
        if metric == "hamming":
            distance = np.bitwise_count(codes[left] ^ codes[right]).astype(np.float64)
        else:
            distance = 1.0 - np.einsum("ij,ij->i", codes[left], codes[right])
        keep = distance <= max_distance
        return [(int(min(i, j)), int(max(i, j)), float(d)) for i, j, d in
                zip(left[keep], right[keep], distance[keep])]
    pairs = []
    for start in range(0, len(codes), BLOCK_ROWS):
        block = _distances(metric, codes[start:start + BLOCK_ROWS], codes[start:])  # (R, N - start)
        rows, columns = np.nonzero(block <= max_distance)
        for r, c in zip(rows, columns):
            i, j = start + int(r), start + int(c)
            if i < j:
                pairs.append((i, j, float(block[r, c])))
    return pairs
