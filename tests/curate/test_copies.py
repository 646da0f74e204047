"""Pixel verification of near-copy candidates (`curate.copies`): the prefilter's canonical
window follows a crop, so a cropped copy passes every stage and an unrelated image stops at the
prefilter; one way or the other round, a pair scores the same."""

from __future__ import annotations

import numpy as np
from PIL import Image

from gan_augment.curate.copies import (
    MIN_CANONICAL,
    MIN_CORRELATION,
    THUMBNAIL_SIDE,
    Thumbnails,
    canonical_scores,
    copy_scores,
)


def _object(rng: np.random.Generator) -> Image.Image:
    """A bright textured object on a black background, as Fashion-MNIST's are."""
    canvas = np.zeros((THUMBNAIL_SIDE, THUMBNAIL_SIDE), np.uint8)
    texture = Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).resize((44, 44), Image.Resampling.BICUBIC)
    canvas[10:54, 12:56] = np.asarray(texture)
    return Image.fromarray(canvas)


def _crop(image: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    return np.asarray(image.crop(box).resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR))


def test_the_canonical_window_follows_a_crop_and_the_copy_passes_every_stage():
    rng = np.random.default_rng(0)
    original, other = _object(rng), _object(rng)
    box = (5, 2, 5 + 57, 2 + 57)  # 11% of each side cut, unevenly
    thumbnails = Thumbnails.of(np.stack([np.asarray(original), _crop(original, box), np.asarray(other)]))
    # The crop's window, put back into the original's coordinates, is the original's window.
    scale = (box[2] - box[0]) / THUMBNAIL_SIDE
    left, top, side = thumbnails.frames[1]
    back = np.array([box[0] / THUMBNAIL_SIDE + scale * left, box[1] / THUMBNAIL_SIDE + scale * top, scale * side])
    np.testing.assert_allclose(back, thumbnails.frames[0], atol=0.02)
    prefilter = canonical_scores(thumbnails, np.array([0, 0]), np.array([1, 2]))
    assert prefilter[0] >= MIN_CANONICAL > prefilter[1], prefilter
    scores = copy_scores(thumbnails, np.array([0, 1, 0]), np.array([1, 0, 2]))
    assert scores[0] >= MIN_CORRELATION and scores[1] == scores[0], scores  # either way round
    assert scores[2] == prefilter[1]  # stopped by the prefilter, with its score
