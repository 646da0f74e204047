"""Is a candidate pair a copy? Aligned correlation of small grey thumbnails.

The perceptual hash cannot tell a copy from a look-alike on small-image datasets (thousands of
trousers or ones within a few bits of each other), and a crop moves it by a dozen bits. So the
candidates the hash proposes are checked on pixels, by stages that each cost more per pair and
see fewer pairs:

1. Each image in a candidate pair is decoded again (`curate.thumbnails.read_thumbnails`: the scan's
   rules and time limit; a bad object is reported, never raised) to a grey `THUMBNAIL_SIDE`
   thumbnail of its centre square, so that a crop, however split between width and height,
   is a shift and one scale of the other image's thumbnail.
2. Prefilter: each image, once, is sampled in a window centred on its intensity centroid and
   `CANONICAL_SPREAD` standard deviations of its intensity wide, at `CANONICAL_SIDE` pixels.
   A crop or a resize moves and scales the content and that window alike, so a copy's window
   holds nearly what its original's does, and one dot product a pair compares them, without
   an alignment. Pairs whose high-passed windows correlate below `MIN_CANONICAL` are no
   copies: on Fashion-MNIST this drops about half the hash candidates (12 of every 13 of the
   wider candidates of a manifest without canonical hashes).
3. Coarse: one image's thumbnail, as a whole, is correlated with windows of the other's (a
   grid of crops down to `CROP_SCALES[-1]` of the side, in the image whose canonical window is
   the narrower) at `COARSE_SIDE` pixels, after a high-pass filter, so that the silhouette two
   look-alikes share counts little and their details count. Pairs whose best window scores
   below `MIN_COARSE` are no copies.
4. Fine: the best window is refined to sub-pixel precision by Gauss-Newton on shift and scale
   (Lucas & Kanade 1981, in Baker & Matthews' inverse-compositional form, 2004), first at
   `COARSE_SIDE`, then, for pairs still scoring `MIN_REFINE`, at `SIDE`; the pair's score is
   the high-pass correlation of the aligned `SIDE` thumbnails. Copies (resized, re-encoded,
   brightened, cropped by up to 10%) score above `MIN_CORRELATION`, look-alikes below.

The prefilter's window follows bright content on a dark background (Fashion-MNIST, MNIST); on
a bright background it spans about the whole image and does not follow a crop, and a cropped
copy there passes only while its window still correlates above `MIN_CANONICAL` (the planted
corpora, both dark, do not measure this).

Memory: about 15 KiB per image in a candidate pair (`Thumbnails`), and the pairs that pass the
coarse comparison (`curate.near_duplicates` makes candidates a block of images at a time).
Time: the decode again of every image in a candidate pair, then each stage in proportion to
the pairs it sees (on Fashion-MNIST's 1,300 files: 3,825, 1,965, 1,710 and 671; from the
pHashes' 24 bits alone, 168,279, 13,541, 8,326 and 1,045).
Thresholds were chosen on Fashion-MNIST and confirmed on MNIST (BENCHMARKS.md, "Near-duplicates").

Examples:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> image = rng.integers(0, 256, (1, THUMBNAIL_SIDE, THUMBNAIL_SIDE)).astype(np.uint8)
    >>> other = rng.integers(0, 256, (1, THUMBNAIL_SIDE, THUMBNAIL_SIDE)).astype(np.uint8)
    >>> thumbnails = Thumbnails.of(np.concatenate([image, image, other]))
    >>> scores = copy_scores(thumbnails, np.array([0, 0]), np.array([1, 2]))
    >>> round(float(scores[0]), 2), bool(scores[1] < MIN_CORRELATION)  # itself; noise
    (1.0, True)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from gan_augment.scan.phash import centred_windows

SIDE = 32  # pixels per side compared: (Fashion-)MNIST's 28 pixels hold all their detail
# Thumbnails are kept at twice SIDE, so that a window sampled from one (a crop, scaled up) is as
# sharp as the whole image it is compared with, shrunk to SIDE.
THUMBNAIL_SIDE = 2 * SIDE
COARSE_SIDE = 16  # the coarse grid compares SIDE / 2 thumbnails
CANONICAL_SIDE = 12  # pixels per side of the prefilter's window (8 and 16 kept more look-alikes on Fashion-MNIST)
CANONICAL_SPREAD = 4.0  # the prefilter window's side, in standard deviations of the intensity
CROP_SCALES = (0.96, 0.92, 0.88)  # window sides of the coarse grid: crops up to ~12%
CROP_OFFSETS = 3  # window positions along each axis per scale
COARSE_STEPS = 1  # Gauss-Newton iterations at COARSE_SIDE, from the grid's best window (a second
# overshot: the least first score of a planted Fashion-MNIST copy had fallen from 0.84 to 0.73)
ALIGN_STEPS = 2  # then at SIDE (4 moved no planted copy's score by more than 0.002, nor which pairs pass)
# Correlations chosen on Fashion-MNIST's planted copies: the gates just below the least a copy
# scored at their stage, the final one where look-alikes stop passing (BENCHMARKS.md).
MIN_CANONICAL = 0.62  # the least planted copy scored 0.664
MIN_COARSE = 0.7
MIN_REFINE = 0.8  # after the alignment at COARSE_SIDE (the least planted copy: 0.846); below MIN_CORRELATION
# The final gate: the best pair recall on a draw of 5,000 Fashion-MNIST images with 500 planted
# groups (`benchmarks/near_duplicates.py --draw 2 --distinct 5000 --groups 500`): recall /
# precision 0.958 / 0.977 at 0.92, 0.961 / 0.993 at 0.93, 0.956 / 0.994 at 0.94, the value
# that 1,000 images and 100 groups had chosen.
MIN_CORRELATION = 0.93
_BLOCK = 256  # images whose coarse windows are held at once: (BLOCK, K, COARSE_SIDE^2) float32
_CHUNK = 512  # pairs aligned at once: their arrays stay in cache (4096 took twice as long)
_PAIRS = 16384  # pairs prefiltered at once: (PAIRS, CANONICAL_SIDE^2) float32 twice, 19 MiB


def _axis(starts: np.ndarray, scales: np.ndarray, side: int, source: int) -> tuple[np.ndarray, np.ndarray]:
    """Where `side` pixel centres of windows (start, scale) in [0, 1] fall on a `source`-pixel
    axis: the (P, side) pixel before each and the weight of the one after; outside, the edge."""
    centres = (np.arange(side, dtype=np.float32) + 0.5) / side
    at = np.clip((starts[:, None] + scales[:, None] * centres) * source - 0.5, 0, source - 1, dtype=np.float32)
    before = np.minimum(at.astype(np.int64), source - 2)
    return before, at - before


def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    """(side^2,) x and y of a side x side grid's pixel centres in [0, 1], row by row."""
    centres = (np.arange(side, dtype=np.float32) + 0.5) / side
    x, y = np.meshgrid(centres, centres)
    return x.ravel(), y.ravel()


def _windows(images: np.ndarray, params: np.ndarray, side: int) -> np.ndarray:
    """(P, side^2) bilinear samples of each (P, S, S) image's window (left, top, scale) in [0, 1]
    coordinates, pixel centres at (k + 0.5) / S, row by row."""
    count, source = images.shape[:2]
    params = np.asarray(params, np.float32)
    columns, right = _axis(params[:, 0], params[:, 2], side, source)  # (P, side) each
    rows, below = _axis(params[:, 1], params[:, 2], side, source)
    # A window's rows and columns are separate: two (side, S) matrices of interpolation weights
    # (two per row) multiply the image from either side, which ran 2.5-4 times as fast as
    # gathering the four neighbours of every sample.
    pair, sample = np.arange(count)[:, None], np.arange(side)[None, :]
    down, across = np.zeros((2, count, side, source), np.float32)
    down[pair, sample, rows], down[pair, sample, rows + 1] = 1 - below, below
    across[pair, sample, columns], across[pair, sample, columns + 1] = 1 - right, right
    return (down @ images.astype(np.float32, copy=False) @ across.transpose(0, 2, 1)).reshape(count, side * side)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    """Zero mean, unit length along the last axis: dot products are correlations."""
    centred = vectors - vectors.mean(axis=-1, keepdims=True)
    norms = np.sqrt(np.einsum("...i,...i->...", centred, centred))[..., None]  # no squares array, as norm makes
    return centred / np.where(norms > 0, norms, 1.0)


@functools.cache
def _blur_matrix(side: int) -> np.ndarray:
    """(side, side): `m @ x` blurs the columns of x with the binomial kernel [1, 4, 6, 4, 1] / 16
    (sigma 1 pixel), the edge pixels repeated beyond the border."""
    matrix = np.zeros((side, side), np.float32)
    for offset, weight in zip(range(-2, 3), np.array([1, 4, 6, 4, 1], np.float32) / 16):
        np.add.at(matrix, (np.arange(side), np.clip(np.arange(side) + offset, 0, side - 1)), weight)
    return matrix


def _highpass(vectors: np.ndarray, side: int) -> np.ndarray:
    """(P, side^2) images less their binomial blur (sigma 1 pixel): the details, not the silhouette."""
    images = vectors.reshape(-1, side, side)
    blur = _blur_matrix(side)
    return (images - blur @ images @ blur.T).reshape(len(images), side * side)  # separable: two products


def _shrink(images: np.ndarray, side: int) -> np.ndarray:
    """(N, side, side) float32 means of blocks of S / side pixels of (N, S, S) images."""
    factor = images.shape[1] // side
    # Block means as a product from either side with a (side, S) averaging matrix: a strided
    # mean over two axes of a 5-D view had cost 20 ms for 1,300 thumbnails.
    average = np.kron(np.eye(side, dtype=np.float32), np.full((1, factor), 1 / factor, np.float32))
    return average @ images.astype(np.float32, copy=False) @ average.T


def crop_windows() -> np.ndarray:
    """(K, 3) windows (left, top, scale) of the coarse grid, the whole image first."""
    windows = [(0.0, 0.0, 1.0)]
    for scale in CROP_SCALES:
        for top in np.linspace(0.0, 1.0 - scale, CROP_OFFSETS):
            windows += [(left, top, scale) for left in np.linspace(0.0, 1.0 - scale, CROP_OFFSETS)]
    return np.array(windows, np.float32)


@functools.cache
def _window_matrix() -> np.ndarray:
    """(COARSE_SIDE^2, K * COARSE_SIDE^2): a flat COARSE_SIDE image times it gives the bilinear
    samples of its K `crop_windows`, high-passed (`_highpass`)."""
    side, pixels = COARSE_SIDE, COARSE_SIDE * COARSE_SIDE
    identity = np.eye(pixels, dtype=np.float32).reshape(pixels, side, side)  # one image per pixel
    highpass = _highpass(identity.reshape(pixels, pixels), side)  # (pixels, pixels)
    return np.concatenate([_windows(identity, np.broadcast_to(w, (pixels, 3)), side) @ highpass
                           for w in crop_windows()], 1)


def canonical_windows(pixels: np.ndarray) -> np.ndarray:
    """(N, 3) windows (left, top, scale) of (N, S, S) images: each centred on its intensity
    centroid and `CANONICAL_SPREAD` standard deviations of its intensity about it wide
    (`phash.centred_windows`, which the canonical hash's window is too)."""
    return centred_windows(pixels, CANONICAL_SPREAD)


@dataclass(frozen=True)
class Thumbnails:
    """Decoded thumbnails and what every comparison derives from them, made once.

    Attributes:
        pixels: (N, THUMBNAIL_SIDE, THUMBNAIL_SIDE) uint8, the windows' source.
        small: (N, COARSE_SIDE, COARSE_SIDE) float32 block means.
        whole: (N, SIDE^2) float32 block means, what windows are aligned to.
        coarse: (N, COARSE_SIDE^2) `small` high-passed and normalised: the whole images of the grid.
        detail: (N, SIDE^2) `whole` high-passed and normalised: what aligned windows are scored against.
        frames: (N, 3) each image's `canonical_windows` (left, top, scale).
        canonical: (N, CANONICAL_SIDE^2) those windows, high-passed and normalised: the prefilter's.
    """

    pixels: np.ndarray
    small: np.ndarray
    whole: np.ndarray
    coarse: np.ndarray
    detail: np.ndarray
    frames: np.ndarray
    canonical: np.ndarray

    @classmethod
    def of(cls, pixels: np.ndarray) -> Thumbnails:
        values = pixels.astype(np.float32)  # once, for every derived array
        whole = _shrink(values, SIDE)
        small = _shrink(whole, COARSE_SIDE)  # block means of block means: the same as from `values`
        coarse = _normalised(_highpass(small.reshape(len(small), COARSE_SIDE * COARSE_SIDE), COARSE_SIDE))
        frames = canonical_windows(values)
        canonical = _windows(values, frames, CANONICAL_SIDE)
        whole = whole.reshape(len(pixels), SIDE * SIDE)
        return cls(pixels, small, whole, coarse, _normalised(_highpass(whole, SIDE)), frames,
                   _normalised(_highpass(canonical, CANONICAL_SIDE)))


def canonical_scores(thumbnails: Thumbnails, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(P,) correlations of the pairs' canonical windows: no alignment, one dot product a pair."""
    scores = np.empty(len(left), np.float32)
    for start in range(0, len(left), _PAIRS):
        end = start + _PAIRS
        scores[start:end] = np.einsum("ij,ij->i", thumbnails.canonical[left[start:end]],
                                      thumbnails.canonical[right[start:end]])
    return scores


def screen(thumbnails: Thumbnails, left: np.ndarray, right: np.ndarray,
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The cheap stages on pairs (left[k], right[k]): the prefilter, then the coarse grid on the
    pairs that pass it, one way round: the image whose canonical window is the narrower (its
    content the smaller in its frame, as an original's is beside its crop) holds the window.
    Both ways round had scored the same least planted copy on either corpus, at 1.7 times the cost.

    Returns:
        (P,) the score of the last stage each pair reached (canonical, then coarse), (P,)
        whether it passed both, (P,) whether `right` holds the window, and (P, 3) that window.
    """
    left, right = np.asarray(left, np.int64), np.asarray(right, np.int64)
    scores = canonical_scores(thumbnails, left, right)
    flip = thumbnails.frames[right, 2] < thumbnails.frames[left, 2]
    windows = np.zeros((len(left), 3), np.float32)
    passed = np.flatnonzero(scores >= MIN_CANONICAL)
    held, whole = np.where(flip, right, left)[passed], np.where(flip, left, right)[passed]
    scores[passed], windows[passed] = coarse_scores(thumbnails, held, whole)
    coarse_passed = np.zeros(len(left), bool)
    coarse_passed[passed] = scores[passed] >= MIN_COARSE
    return scores, coarse_passed, flip, windows


def coarse_scores(thumbnails: Thumbnails, containers: np.ndarray, copies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, the best coarse correlation of `copies[k]` as a whole with a window of
    `containers[k]` (one way round), and that window (left, top, scale)."""
    grid, sampling = crop_windows(), _window_matrix()
    pixels = COARSE_SIDE * COARSE_SIDE
    order = np.argsort(containers, kind="stable")
    holders, starts = np.unique(containers[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    best, window = np.zeros(len(order), np.float32), np.zeros(len(order), np.int64)
    for first in range(0, len(holders), _BLOCK):
        block = holders[first:first + _BLOCK]
        # Every window of an image, high-passed, is one linear map of its pixels: one matrix
        # product makes them all, for a block of images at a time (memory: K windows per image).
        views = (thumbnails.small[block].reshape(len(block), -1) @ sampling).reshape(len(block), len(grid), pixels)
        # The partners' `coarse` vectors have zero mean, so a window's own mean does not change
        # its product with them: only its length about that mean is needed, not a normalised copy.
        squares = np.einsum("bkp,bkp->bk", views, views) - views.sum(2) ** 2 / pixels  # (B, K)
        inverse = 1 / np.sqrt(np.where(squares > 0, squares, 1.0))
        for k in range(len(block)):
            part = order[starts[first + k]:ends[first + k]]
            # (K, P): every window against every partner
            scores = (views[k] @ thumbnails.coarse[copies[part]].T) * inverse[k][:, None]
            window[part] = scores.argmax(0)
            best[part] = scores[window[part], np.arange(len(part))]
    return best, grid[window]


def align(images: np.ndarray, target: np.ndarray, windows: np.ndarray, steps: int = ALIGN_STEPS) -> np.ndarray:
    """Refine windows of `images` so that they match `target`: inverse-compositional Gauss-Newton
    (Baker & Matthews 2004, "Lucas-Kanade 20 years on") on left, top and scale, with the gain
    and bias fitted by least squares at every step.

    Args:
        images: (P, S, S) float32, the images that hold the windows (any side S).
        target: (P, s^2) float32, what each window should look like, sampled at s x s.
        windows: (P, 3) starting windows (left, top, scale) in [0, 1] coordinates.
        steps: Gauss-Newton iterations.

    Returns:
        (P, 3) refined windows.
    """
    side = int(round(np.sqrt(target.shape[1])))
    x, y = _grid(side)
    # The inverse-compositional form differentiates the target, once: the Jacobian and its
    # Hessian are fixed, and each step samples only the window.
    dy, dx = np.gradient(target.reshape(-1, side, side), axis=(1, 2))
    dx, dy = dx.reshape(len(target), -1) * side, dy.reshape(len(target), -1) * side  # per unit of [0, 1]
    jacobian = np.stack([dx, dy, dx * x + dy * y], 1)  # (P, 3, s^2): d target / d (left, top, scale)
    hessian = (jacobian @ jacobian.transpose(0, 2, 1)).astype(np.float64) + 1e-3 * np.eye(3)
    inverse = np.linalg.inv(hessian)  # (P, 3, 3), fixed: once, not a solve per step
    centred = target - target.mean(1, keepdims=True)
    params = windows.astype(np.float32).copy()
    for _ in range(steps):
        seen = _windows(images, params, side)  # (P, s^2)
        seen = seen - seen.mean(1, keepdims=True)
        gain = (seen * centred).sum(1, keepdims=True) / np.maximum((seen * seen).sum(1, keepdims=True), 1e-6)
        residual = gain * seen - centred
        step = (inverse @ (jacobian @ residual[..., None]).astype(np.float64))[..., 0]
        # Compose with the inverse of the step's warp u -> (1 + ds) u + d(left, top).
        grow = (1.0 + step[:, 2:]).clip(0.5, 2.0)
        params[:, :2] -= (params[:, 2:] * step[:, :2] / grow).astype(np.float32)
        params[:, 2:] = (params[:, 2:] / grow).astype(np.float32).clip(0.5, 1.5)
        params[:, :2] = params[:, :2].clip(-0.5, 1.0)  # a diverging pair stays a poor match, not a NaN
    return params


def aligned_scores(thumbnails: Thumbnails, containers: np.ndarray, copies: np.ndarray,
                   windows: np.ndarray) -> np.ndarray:
    """Per pair, the high-pass correlation at SIDE of `copies[k]` with the window of
    `containers[k]` that matches it, refined from the coarse `windows[k]`."""
    scores = np.zeros(len(containers), np.float32)
    for start in range(0, len(containers), _CHUNK):
        held, whole = containers[start:start + _CHUNK], copies[start:start + _CHUNK]
        # Aligned at the coarse side first (a quarter of the pixels), then scored at the full
        # side by the window of the high-passed SIDE thumbnail (`detail`, made once an image,
        # not a filter a pair; a quarter of the source pixels, a little blurred by the sampling).
        params = align(thumbnails.small[held], thumbnails.small[whole].reshape(len(whole), COARSE_SIDE * COARSE_SIDE),
                       windows[start:start + _CHUNK], COARSE_STEPS)
        seen = _windows(thumbnails.detail[held].reshape(-1, SIDE, SIDE), params, SIDE)
        found = (_normalised(seen) * thumbnails.detail[whole]).sum(1)
        # The pairs that may be copies are aligned again at the full side, sampled from the
        # sharper THUMBNAIL_SIDE pixels, whose detail tells a copy from a look-alike; a pair
        # below MIN_REFINE (< MIN_CORRELATION) keeps its first score.
        close = np.flatnonzero(found >= MIN_REFINE)
        if len(close):
            source, target = thumbnails.pixels[held[close]].astype(np.float32), thumbnails.whole[whole[close]]
            params = align(source, target, params[close], ALIGN_STEPS)
            found[close] = _correlation(_windows(source, params, SIDE), thumbnails.detail[whole[close]])
        scores[start:start + _CHUNK] = found
    return scores


def copy_scores(thumbnails: Thumbnails, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Per pair (left[k], right[k]), either way round, the high-pass correlation of the two after
    alignment (1 for a copy, about 0 for unrelated images; a pair the prefilter or the coarse
    grid stopped keeps that stage's score, below its gate)."""
    left, right = np.asarray(left, np.int64), np.asarray(right, np.int64)
    scores, passed, flip, windows = screen(thumbnails, left, right)
    held, whole = np.where(flip, right, left)[passed], np.where(flip, left, right)[passed]
    scores[passed] = aligned_scores(thumbnails, held, whole, windows[passed])
    return scores


def _correlation(seen: np.ndarray, detail: np.ndarray) -> np.ndarray:
    """(P,) correlations of (P, SIDE^2) windows, after the high-pass filter, with the
    (P, SIDE^2) `Thumbnails.detail` of the images they should match."""
    return (_normalised(_highpass(seen, SIDE)) * detail).sum(1)
