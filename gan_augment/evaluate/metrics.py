"""Sample-quality distances: the sliced Wasserstein distance on Laplacian-pyramid patches (needs
no pretrained network), and the Frechet and kernel distances between feature sets that FID and
KID use (`fid.py` makes the features).

Images are (N, C, H, W) tensors, uint8 in [0, 255] or float in [-1, 1] (the generator's range);
a uint8 set and a float set can be compared with each other.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gan_augment.gan.pixels import to_model_range


def as_signed(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]; float images are taken to be in [-1, 1] already."""
    return to_model_range(images) if images.dtype == torch.uint8 else images.float()


def check_images(images: Tensor, name: str, min_count: int = 1) -> None:
    """Raise a ValueError unless `images` is an (N, C, H, W) tensor with N >= `min_count`."""
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"{name} must be an (N, C, H, W) image tensor, got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    if images.shape[0] < min_count:
        raise ValueError(f"{name} holds {images.shape[0]} image(s); this metric needs at least {min_count}")


# -- sliced Wasserstein distance (Karras et al. 2018, "Progressive Growing of GANs", appendix D) --

# The 5x5 binomial filter of Burt & Adelson's Laplacian pyramid (1983), as one separable 1-D tap.
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


@dataclass(frozen=True)
class SlicedWasserstein:
    """SWD per pyramid level (finest first) and their mean; lower is closer.

    Attributes:
        resolutions: the side of each Laplacian level, e.g. (32, 16) for 32x32 images; the last
            level is the low-pass residual.
        distances: the distance at each level.
        mean: the mean over levels.
        descriptors: 7x7 patch descriptors compared per set and level.
    """

    resolutions: tuple[int, ...]
    distances: tuple[float, ...]
    mean: float
    descriptors: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _blur(images: Tensor, gain: float = 1.0) -> Tensor:
    """Separable 5x5 binomial blur, mirrored at the borders (scipy's and OpenCV's pyramid edges)."""
    c = images.shape[1]
    tap = (_BINOMIAL * math.sqrt(gain)).to(images)
    padded = F.pad(images, (2, 2, 2, 2), mode="reflect")
    rows = F.conv2d(padded, tap.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)
    return F.conv2d(rows, tap.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)


def laplacian_pyramid(images: Tensor, min_resolution: int = 16) -> list[Tensor]:
    """Laplacian pyramid of (B, C, S, S) float images: band-pass levels at S, S/2, ... and the
    low-pass residual at `min_resolution` last (a single level when S == min_resolution)."""
    levels, current = [], images
    while current.shape[-1] > min_resolution:
        down = _blur(current)[:, :, ::2, ::2]  # (B, C, S/2, S/2), OpenCV's pyrDown
        up = torch.zeros_like(current)
        up[:, :, ::2, ::2] = down
        levels.append(current - _blur(up, gain=4.0))  # pyrUp: zero-insert, blur with 4x the filter
        current = down
    levels.append(current)
    return levels


def _pyramid_sides(side: int, min_resolution: int) -> list[int]:
    """The side of each level of `laplacian_pyramid` for S x S images: [S, S/2, ..., min_resolution]."""
    sides = [side]
    while sides[-1] > min_resolution:
        sides.append(sides[-1] // 2)
    return sides


def _pyramid_descriptors(images: Tensor, count: int, patch: int, min_resolution: int, batch_size: int,
                         generator: torch.Generator) -> list[Tensor]:
    """`count` random patch x patch descriptors per pyramid level: [(count, C, patch, patch)].

    Descriptor k comes from image order[k % N] of a random permutation, so each image gives
    count / N of them (Karras et al. take a fixed number per image; this also allows a cap).
    """
    n, c = images.shape[:2]
    image_of = torch.randperm(n, generator=generator).repeat(count // n + 1)[:count]  # (count,)
    sides = _pyramid_sides(images.shape[-1], min_resolution)
    corners = [torch.randint(0, side - patch + 1, (2, count), generator=generator) for side in sides]  # (y, x)
    offsets = torch.arange(patch)
    out = [torch.empty(count, c, patch, patch) for _ in sides]
    for start in range(0, n, batch_size):
        # SWD runs on the CPU (numpy sorts the projections), whatever device the images are on.
        pyramid = laplacian_pyramid(as_signed(images[start:start + batch_size].cpu()), min_resolution)
        rows = ((image_of >= start) & (image_of < start + batch_size)).nonzero().squeeze(1)  # (R,)
        for level, band in enumerate(pyramid):  # band: (B, C, s, s)
            y = (corners[level][0, rows, None] + offsets)[:, :, None]  # (R, patch, 1)
            x = (corners[level][1, rows, None] + offsets)[:, None, :]  # (R, 1, patch)
            picked = band[(image_of[rows] - start)[:, None, None], :, y, x]  # (R, patch, patch, C)
            out[level][rows] = picked.permute(0, 3, 1, 2)
    return out


def _standardise(descriptors: Tensor, reference: Tensor) -> np.ndarray:
    """(D, C, p, p) descriptors standardised per channel by the reference set's statistics, as
    a (D, C * p * p) array.

    Karras et al. standardise each set by its own statistics, which hides a change of mean or
    contrast per channel; standardising both by the real set's keeps such a change visible and
    still makes the distance independent of the pixel scale.
    """
    mean = reference.mean(dim=(0, 2, 3), keepdim=True)
    std = reference.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)
    return ((descriptors - mean) / std).flatten(1).numpy()


def _sliced_distance(a: np.ndarray, b: np.ndarray, slices: int, repeats: int, rng: np.random.Generator) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between the projections
    of two equally sized point sets (D, dim): the mean gap between their sorted projections."""
    total = 0.0
    for _ in range(repeats):
        directions = rng.standard_normal((a.shape[1], slices), dtype=np.float32)
        directions /= np.linalg.norm(directions, axis=0, keepdims=True)  # (dim, slices)
        # Sorting dominates the cost; numpy's vectorised float32 sort is ~3x torch's on CPU.
        projected_a = np.sort(directions.T @ a.T, axis=1)  # (slices, D), sorted along the contiguous axis
        projected_b = np.sort(directions.T @ b.T, axis=1)
        total += float(np.abs(projected_a - projected_b).mean())
    return total / repeats


def sliced_wasserstein(
    real: Tensor,
    fake: Tensor,
    *,
    patch_size: int = 7,
    patches_per_image: int = 128,
    max_descriptors: int = 2**15,
    slices: int = 128,
    repeats: int = 4,
    min_resolution: int = 16,
    batch_size: int = 256,
    seed: int = 0,
) -> SlicedWasserstein:
    """Sliced Wasserstein distance between two image sets on Laplacian-pyramid patches
    (Karras et al. 2018, appendix D): each pyramid level down to `min_resolution` gives random
    7x7 patch descriptors, standardised per channel by the real set's statistics, and the
    distance is the 1-D Wasserstein distance of their projections on random directions,
    averaged over `slices` x `repeats` directions.

    Args:
        real: (N, C, S, S) reference images, uint8 or float in [-1, 1]; S >= `min_resolution`.
        fake: (M, C, S, S) images to compare with them.
        patch_size: patch side (the paper: 7).
        patches_per_image: descriptors per image of the smaller set (the paper: 128).
        max_descriptors: at most this many descriptors per set and level (the cost is a sort of
            `slices` x this many values per set, level and repeat).
        slices, repeats: random directions per repeat, and repeats (the paper: 128 x 4).
        min_resolution: the coarsest pyramid level (the paper: 16).
        batch_size: images per pyramid computation (bounds memory).
        seed: seeds the patch positions and directions: equal inputs give equal distances.

    Returns:
        `SlicedWasserstein`: per-level distances and their mean (0 for identical sets).

    Raises:
        ValueError: not image tensors, mismatched shapes, or images smaller than `min_resolution`.
    """
    check_images(real, "real")
    check_images(fake, "fake")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real images are {tuple(real.shape[1:])} (C, H, W) but fake ones are "
                         f"{tuple(fake.shape[1:])}; compare images of one shape")
    side = real.shape[-1]
    if real.shape[-2] != side or side < min_resolution or min_resolution < patch_size:
        raise ValueError(f"SWD needs square images of at least {min_resolution}x{min_resolution} (and "
                         f"min_resolution >= patch_size={patch_size}); got {real.shape[-2]}x{side}")
    count = min(min(len(real), len(fake)) * patches_per_image, max_descriptors)
    # Both sets draw their patches from one seed: the same positions, so identical sets give 0.
    real_levels, fake_levels = (
        _pyramid_descriptors(images, count, patch_size, min_resolution, batch_size,
                             torch.Generator().manual_seed(seed))
        for images in (real, fake))
    rng = np.random.default_rng(seed)
    distances = [_sliced_distance(_standardise(a, a), _standardise(b, a), slices, repeats, rng)
                 for a, b in zip(real_levels, fake_levels)]
    return SlicedWasserstein(tuple(_pyramid_sides(side, min_resolution)), tuple(distances),
                             float(np.mean(distances)), count)


# -- Frechet and kernel distances between feature sets (FID, KID) ---------------------------------


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017):
    ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)).

    Computed in float64 through symmetric eigen-decompositions: with s = sigma1^(1/2),
    tr((sigma1 sigma2)^(1/2)) = tr((s sigma2 s)^(1/2)), and s sigma2 s is symmetric positive
    semi-definite, so its square root is real and exact up to rounding. A general `sqrtm` of the
    non-symmetric product can return complex values and fail on the singular covariances that
    few samples give.

    Raises:
        ValueError: shapes that do not match, or values that are not finite.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"frechet_distance needs two means of shape (d,) and two covariances of shape (d, d); "
                         f"got {mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    if not all(np.isfinite(x).all() for x in (mu1, mu2, sigma1, sigma2)):
        raise ValueError("frechet_distance got non-finite means or covariances (NaN/inf features?)")
    root1 = _psd_sqrt((sigma1 + sigma1.T) / 2)
    middle = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0.0)
    trace_root = np.sqrt(eigenvalues).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix; rounding's negative eigenvalues -> 0."""
    eigenvalues, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(eigenvalues.clip(min=0.0))) @ vectors.T


def _polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KID's kernel (a_i . b_j / d + 1)^3 for all row pairs: (len(a), len(b))."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


# Up to this many rows in both sets together, KID computes the whole kernel matrix once (512 MiB).
_FULL_GRAM_ROWS = 8192


def kernel_inception_distance(
    feats1: np.ndarray, feats2: np.ndarray, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): the unbiased estimate of the squared MMD
    with the polynomial kernel k(x, y) = (x . y / d + 1)^3, averaged over random subsets.

    Args:
        feats1, feats2: (N, d) and (M, d) feature arrays.
        subsets: number of random subset pairs (the paper's reference code: 100).
        subset_size: rows per subset (1000 there), capped by N and M.
        seed: seeds the subset draws.

    Returns:
        (mean, standard deviation) over the subsets. The estimate is unbiased, so it can be
        slightly negative when both sets come from one distribution.

    Raises:
        ValueError: feature widths differ, or fewer than 2 rows in a set.
    """
    x, y = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"KID needs two (N, d) feature arrays of one width; got {x.shape} and {y.shape}")
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError(f"KID needs at least 2 feature rows per set; got {len(x)} and {len(y)}")
    z = np.concatenate([x, y])  # rows [0, N) are x, [N, N + M) are y
    # Small sets: one kernel matrix for all subsets instead of three products per subset.
    gram = _polynomial_kernel(z, z) if len(z) <= _FULL_GRAM_ROWS else None

    def kernel(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return gram[np.ix_(rows, cols)] if gram is not None else _polynomial_kernel(z[rows], z[cols])

    rng = np.random.default_rng(seed)
    estimates = np.empty(subsets)
    for k in range(subsets):
        a, b = rng.choice(len(x), m, replace=False), len(x) + rng.choice(len(y), m, replace=False)
        k_aa, k_bb, k_ab = kernel(a, a), kernel(b, b), kernel(a, b)
        # The U-statistic: the kernel of a sample with itself (the diagonal) is left out.
        within = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
        estimates[k] = within - 2.0 * k_ab.mean()
    return float(estimates.mean()), float(estimates.std())
