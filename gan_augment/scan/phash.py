"""The perceptual hash of an image: 64 bits that change little when the image is resized,
re-encoded, slightly cropped or brightened, so that near-copies have nearby hashes.

pHash as Zauner (2010, "Implementation and benchmarking of perceptual image hash functions")
and imagededup's `PHash` compute it: the grayscale image resized to 32x32, its 2-D DCT-II, the
8x8 lowest frequencies, each bit set where a coefficient is at least the median of the 63 that
are not the DC term. The DCT is two products with a fixed 32x32 matrix (numpy only: scipy's
`fft.dctn` would be a dependency for one line). Computed where the scan or the training cache
already holds decoded pixels (`images.verify_image`, `images.decode_image`), never by a read of
its own. The neighbour search over hashes is `curate.neighbours`.

`canonical_hash` is the same hash of a window centred on the image's intensity centroid and
`CANONICAL_SPREAD` standard deviations of it wide: a crop moves and scales the content and that
window alike, so a cropped copy's canonical hash stays near its original's (the near-duplicate
search makes candidates from both). The window follows bright content on a dark background; on
a bright one it spans about the whole image and follows a crop less (not measured: the planted
corpora are dark).

Examples:
    >>> from PIL import Image
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> blobs = [Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).resize((64, 64)) for _ in "ab"]
    >>> hamming(perceptual_hash(blobs[0]), perceptual_hash(blobs[0].resize((40, 40))))  # a resized copy
    0
    >>> hamming(perceptual_hash(blobs[0]), perceptual_hash(blobs[1]))  # another image: about half the bits
    32
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

HASH_SIDE = 32  # the image is resized to HASH_SIDE x HASH_SIDE before the DCT
HASH_LOW = 8  # HASH_LOW x HASH_LOW low frequencies give the 64 bits
# The canonical hash's window side, in standard deviations of the intensity about its centroid
# (chosen on Fashion-MNIST's planted copies, sampled from the search's thumbnails: within 14
# bits, 3 kept 586 of 600 planted pairs among 2,017 candidates, 4 kept 590 among 5,450).
CANONICAL_SPREAD = 3.0


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: `m @ x` is the DCT of the columns of x."""
    k = np.arange(n)[:, None]
    m = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT_LOW = _dct_matrix(HASH_SIDE)[:HASH_LOW]  # (8, 32): only the rows the hash keeps


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit pHash of a decoded image, as a signed int64 (the manifest's column type).

    Args:
        image: any mode `images.to_channels` produced (L or RGB); it is converted to L.
    """
    return _bits(np.asarray(_small(image)))


def perceptual_hashes(image: Image.Image) -> tuple[int, int]:
    """`perceptual_hash` and `canonical_hash` of a decoded image, from one resize."""
    small = _small(image)
    pixels = np.asarray(small)
    return _bits(pixels), _canonical_bits(small, pixels)


def canonical_hash(image: Image.Image) -> int:
    """The pHash of the image's canonical window (`centred_windows`, `CANONICAL_SPREAD` wide):
    a crop or a resize moves and scales the content and that window alike, so a cropped copy's
    canonical hash stays near its original's where its pHash moves by a dozen bits or more."""
    small = _small(image)
    return _canonical_bits(small, np.asarray(small))


def centred_windows(images: np.ndarray, spread: float) -> np.ndarray:
    """(N, 3) windows (left, top, scale) in [0, 1] coordinates of (N, S, S) images: each centred
    on the image's intensity centroid and `spread` standard deviations of its intensity about
    that centroid wide (a blank image: a point)."""
    count, side = len(images), images.shape[1]
    # The intensity's sum and its first and second moments, one product for all images.
    mass, x, y, squares = (images.reshape(count, side * side).astype(np.float32) @ _moments(side)).T
    mass = np.maximum(mass, 1e-6)
    x, y = x / mass, y / mass
    width = spread * np.sqrt(np.maximum(squares / mass - x * x - y * y, 1e-6) / 2)
    return np.stack([x - width / 2, y - width / 2, width], 1)


@functools.cache
def _moments(side: int) -> np.ndarray:
    """(side^2, 4): 1, x, y and x^2 + y^2 at each pixel centre in [0, 1], row by row."""
    centres = (np.arange(side, dtype=np.float32) + 0.5) / side
    x, y = np.meshgrid(centres, centres)
    return np.stack([np.ones_like(x), x, y, x * x + y * y], -1).reshape(side * side, 4)


def _small(image: Image.Image) -> Image.Image:
    """The image in grey at HASH_SIDE x HASH_SIDE."""
    gray = image if image.mode == "L" else image.convert("L")
    # reducing_gap: integer-factor reduction first on large images, as decode_image does.
    return gray.resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)


def _canonical_bits(small: Image.Image, pixels: np.ndarray) -> int:
    """The hash bits of a HASH_SIDE grey image's canonical window (`pixels`: its array),
    resampled to HASH_SIDE."""
    left, top, side = centred_windows(pixels[None], CANONICAL_SPREAD)[0] * HASH_SIDE
    window = small.transform((HASH_SIDE, HASH_SIDE), Image.Transform.EXTENT,
                             (float(left), float(top), float(left + side), float(top + side)),
                             Image.Resampling.BILINEAR)  # outside the image: black
    return _bits(np.asarray(window))


def _bits(pixels: np.ndarray) -> int:
    """The 64 hash bits of a (HASH_SIDE, HASH_SIDE) grey image, as a signed int64."""
    low = _DCT_LOW @ pixels @ _DCT_LOW.T  # (32, 32) uint8 -> (8, 8) float64
    flat = low.reshape(-1)
    # The median of the 63 AC coefficients is the 32nd smallest; a partition finds it without
    # np.median's overhead, which had cost more than the DCT.
    bits = np.packbits(flat >= np.partition(flat[1:], 31)[31])  # (8,) uint8, the first coefficient the top bit
    return int(bits.view(">i8")[0])


def hamming(a: int, b: int) -> int:
    """Bits in which two hashes differ."""
    return ((a ^ b) & 0xFFFFFFFFFFFFFFFF).bit_count()
