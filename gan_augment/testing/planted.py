"""Stores with planted answers, built from real images: near-copies (for the near-duplicate
search) and images of another data set (for the outlier score). Shared by the tests, which
build small ones, and the benchmarks, which build large ones.

Every image is written at `SIDE` pixels (MNIST-like sources are upscaled, bicubic), and each
planted copy is one of `COPY_KINDS`: resized 0.5-2x, re-encoded as JPEG of quality 30-95, cropped
by up to 10%, brightened or darkened by up to 15%, converted PNG <-> JPEG (quality 90), or all
of these at once ("mixed"). File names are shuffled, so that their order says nothing.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance

SIDE = 64
COPY_KINDS = ("resize", "jpeg", "crop", "brightness", "format", "mixed")


@dataclass(frozen=True)
class PlantedStore:
    """What was planted in one dataset folder.

    Attributes:
        folder: the dataset's folder.
        groups: each planted group's paths, the original first.
        kinds: {copy path: its COPY_KINDS entry}.
        singles: paths of images that have no copy.
        outliers: paths of images of another data set.
    """

    folder: str
    groups: list[list[str]]
    kinds: dict[str, str]
    singles: list[str]
    outliers: list[str]


def _upscaled(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(pixels).resize((SIDE, SIDE), Image.Resampling.BICUBIC)


def _encode(image: Image.Image, fmt: str, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def make_copy(image: Image.Image, original_format: str, kind: str, rng: np.random.Generator) -> tuple[bytes, str]:
    """A near-copy of `image` (stored as `original_format`) of the given kind: (bytes, format)."""
    fmt, quality = original_format, 90
    if kind in ("crop", "mixed"):
        width, height = image.size
        cut = rng.uniform(0.03, 0.10)  # of each dimension, split at random between both sides
        dx, dy = int(round(width * cut)), int(round(height * cut))
        left, top = int(rng.integers(0, dx + 1)), int(rng.integers(0, dy + 1))
        image = image.crop((left, top, width - (dx - left), height - (dy - top)))
    if kind in ("resize", "mixed"):
        factor = rng.uniform(0.5, 2.0)
        image = image.resize((max(8, round(image.width * factor)), max(8, round(image.height * factor))),
                             Image.Resampling.BICUBIC)
    if kind in ("brightness", "mixed"):
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.85, 1.15))
    if kind in ("jpeg", "mixed"):
        fmt, quality = "JPEG", int(rng.integers(30, 96))
    if kind == "format":
        fmt = "JPEG" if original_format == "PNG" else "PNG"
    return _encode(image, fmt, quality), fmt


def write_planted_store(
    folder: str, images: np.ndarray, *, groups: int, copies: int = 2, outliers: np.ndarray | None = None,
    seed: int = 0,
) -> PlantedStore:
    """Write `images` (N, H, W) uint8 into `folder`: the first `groups` get `copies` near-copies
    each (kinds in turn), the rest stay single; `outliers` (M, H, W) are added as singles too.
    Originals are PNG, one in four JPEG (quality 90)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    extra = outliers if outliers is not None else np.empty((0, *images.shape[1:]), np.uint8)
    total = len(images) + groups * copies + len(extra)
    names = iter(rng.permutation(total))

    def write(data: bytes, fmt: str) -> str:
        path = os.path.join(folder, f"img-{next(names):06d}.{'jpg' if fmt == 'JPEG' else 'png'}")
        with open(path, "wb") as f:
            f.write(data)
        return path

    planted, kinds, singles, turn = [], {}, [], 0
    for index, pixels in enumerate(images):
        image, fmt = _upscaled(pixels), "JPEG" if index % 4 == 3 else "PNG"
        original = write(_encode(image, fmt), fmt)
        if index >= groups:
            singles.append(original)
            continue
        members = [original]
        for _ in range(copies):
            kind = COPY_KINDS[turn % len(COPY_KINDS)]
            turn += 1
            members.append(write(*make_copy(image, fmt, kind, rng)))
            kinds[members[-1]] = kind
        planted.append(members)
    strangers = [write(_encode(_upscaled(pixels), "PNG"), "PNG") for pixels in extra]
    return PlantedStore(folder, planted, kinds, singles, strangers)


def pair_scores(found: Sequence[Sequence[str]], truth: Sequence[Sequence[str]]) -> tuple[float, float]:
    """(recall, precision) over pairs of images: a pair is true when both are in one planted
    group, found when both are in one found group (images not in any group pair with nothing)."""
    def pairs(groups: Sequence[Sequence[str]]) -> set[tuple[str, str]]:
        return {(a, b) for g in groups for a in g for b in g if a < b}

    truth_pairs, found_pairs = pairs(truth), pairs(found)
    hits = len(truth_pairs & found_pairs)
    return hits / max(len(truth_pairs), 1), hits / max(len(found_pairs), 1) if found_pairs else 1.0
