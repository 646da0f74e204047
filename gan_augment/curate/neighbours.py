"""The one neighbour search of the curate stage: which pairs of encodings lie within a distance.

Encoders live where their inputs are: the perceptual hash where pixels are decoded
(`scan.phash`), discriminator features in the export (`export.features`). This module only
compares encodings, as imagededup keeps its search (`handlers/search/`) apart from its hashers:
all pairs, in blocks of rows (memory bounded by `BLOCK_ROWS` x N), by Hamming distance between
64-bit hashes or cosine distance between feature vectors, or only the candidate pairs given.
Selection's Euclidean distances (`squared_distances`, `nearest_distances`) live here too.

Examples:
    >>> import numpy as np
    >>> codes = np.array([0b1011, 0b1001, 0xFF00], dtype=np.int64)
    >>> neighbour_pairs(codes, 1, "hamming")
    [(0, 1, 1.0)]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

METRICS = ("hamming", "cosine")
BLOCK_ROWS = 1024


def _distances(metric: str, rows: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(R, O) distances between two blocks of encodings."""
    if metric == "hamming":
        # XOR then popcount: numpy's bitwise_count runs one instruction per pair; the counts
        # stay uint8 (an eighth of float64's memory traffic) until a pair is kept.
        return np.bitwise_count(rows[:, None] ^ others[None, :])  # (R, O)
    return 1.0 - rows @ others.T  # (R, O); rows are unit vectors


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared Euclidean distances, without an (a, b, d) intermediate."""
    return np.maximum((a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :], 0)


def nearest_distances(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each row of `x`'s Euclidean distance to the nearest of `x[rows]` (inf when `rows` is
    empty), 256 of `rows` at a time."""
    nearest = np.full(len(x), np.inf, dtype=np.float32)
    for start in range(0, len(rows), 256):
        nearest = np.minimum(nearest, np.sqrt(squared_distances(x, x[rows[start:start + 256]]).min(1)))
    return nearest


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
    if candidates is not None and not candidates:
        return []
    pairs = None if candidates is None else tuple(np.array(side) for side in zip(*candidates))
    left, right, distance = neighbour_arrays(encodings, max_distance, metric, pairs)
    return [(int(i), int(j), float(d)) for i, j, d in zip(left, right, distance)]


def neighbour_arrays(
    encodings: np.ndarray, max_distance: float, metric: str,
    candidates: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`neighbour_pairs` as three arrays (left, right, distance), left < right: no Python
    object per pair, for searches that return hundreds of thousands of them."""
    codes = _prepare(metric, encodings)
    if candidates is not None:
        left, right = (np.asarray(side, np.int64) for side in candidates)
        if metric == "hamming":
            distance = np.bitwise_count(codes[left] ^ codes[right]).astype(np.float64)
        else:
            distance = 1.0 - np.einsum("ij,ij->i", codes[left], codes[right])
        keep = distance <= max_distance
        left, right = left[keep], right[keep]
        return np.minimum(left, right), np.maximum(left, right), distance[keep]
    found = list(neighbour_blocks(encodings, max_distance, metric))
    if not found:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    return tuple(np.concatenate(parts) for parts in zip(*found))  # type: ignore[return-value]


def neighbour_blocks(
    encodings: np.ndarray, max_distance: float, metric: str, *, rows: int = BLOCK_ROWS,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`neighbour_arrays` a block of `rows` encodings at a time, so that a search with many
    pairs never holds them all: (left, right, distance) of the pairs i < j whose left is in the block."""
    codes = _prepare(metric, encodings)
    for start in range(0, len(codes), rows):
        block = _distances(metric, codes[start:start + rows], codes[start:])  # (R, N - start)
        found, columns = np.nonzero(block <= max_distance)
        left, right = start + found, start + columns
        keep = left < right
        yield left[keep], right[keep], block[found[keep], columns[keep]].astype(np.float64)
