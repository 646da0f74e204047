"""Sample-quality distances: SWD on Laplacian-pyramid patches, the Frechet distance on known
Gaussians and KID's unbiased estimator."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import blob_tensor

from gan_augment.evaluate.metrics import (
    frechet_distance,
    kernel_inception_distance,
    laplacian_pyramid,
    sliced_wasserstein,
)
from gan_augment.gan.pixels import to_model_range

# -- SWD ------------------------------------------------------------------------------------------


def test_laplacian_pyramid_levels():
    flat = torch.full((2, 3, 32, 32), 0.25)
    bands = laplacian_pyramid(flat)
    assert [tuple(b.shape) for b in bands] == [(2, 3, 32, 32), (2, 3, 16, 16)]
    assert bands[0].abs().max() < 1e-6  # a constant image has no detail
    torch.testing.assert_close(bands[1], torch.full((2, 3, 16, 16), 0.25))
    assert len(laplacian_pyramid(torch.rand(1, 1, 16, 16))) == 1


def test_swd_is_zero_for_identical_sets_at_every_level():
    images = blob_tensor(64)
    same = sliced_wasserstein(images, images.clone())
    assert same.resolutions == (32, 16) and same.distances == (0.0, 0.0) and same.mean == 0.0
    assert same.descriptors == 64 * 128
    single = sliced_wasserstein(images[:, :, :16, :16], images[:, :, :16, :16])
    assert single.resolutions == (16,) and single.mean == 0.0


def test_swd_grows_with_the_shift():
    real = blob_tensor(64, seed=1)
    other = blob_tensor(64, seed=2)  # same distribution, other samples

    def swd(fake: torch.Tensor):
        return sliced_wasserstein(real, fake.round().clamp(0, 255).to(torch.uint8), max_descriptors=4096)

    brighter = [swd(other.float() + shift).mean for shift in (0, 15, 30, 60)]
    assert brighter == sorted(brighter) and brighter[-1] > 10 * brighter[0]
    g = torch.Generator().manual_seed(3)
    noisier = [swd(other + torch.randn(other.shape, generator=g) * sigma).distances[0] for sigma in (0, 10, 20, 40)]
    assert noisier == sorted(noisier) and noisier[-1] > 10 * noisier[0]  # the fine level sees added detail


def test_swd_input_kinds_seeds_and_sizes():
    real, fake = blob_tensor(40, channels=3, seed=4), blob_tensor(60, channels=3, seed=5)
    as_uint8 = sliced_wasserstein(real, fake, seed=7)
    assert sliced_wasserstein(to_model_range(real), to_model_range(fake), seed=7) == as_uint8
    assert sliced_wasserstein(real, fake, seed=7) == as_uint8
    assert sliced_wasserstein(real, fake, seed=8) != as_uint8  # the seed draws patches and directions
    assert as_uint8.descriptors == 40 * 128  # the smaller set decides
    assert sliced_wasserstein(real, fake, max_descriptors=1000).descriptors == 1000
    assert sliced_wasserstein(real, fake, batch_size=7, seed=7) == as_uint8  # batching changes nothing


def test_swd_bad_input():
    with pytest.raises(ValueError, match="one shape"):
        sliced_wasserstein(blob_tensor(4), blob_tensor(4, channels=3))
    with pytest.raises(ValueError, match="at least 16x16"):
        sliced_wasserstein(blob_tensor(4, size=8), blob_tensor(4, size=8))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        sliced_wasserstein(blob_tensor(4)[0], blob_tensor(4)[0])


# -- Frechet distance -----------------------------------------------------------------------------


def random_spd(d: int, rng: np.random.Generator, rank: int | None = None) -> np.ndarray:
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / d + (0 if rank else 0.1 * np.eye(d))


def test_frechet_distance_of_known_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    sigma = random_spd(6, rng)
    assert abs(frechet_distance(mu1, sigma, mu1, sigma)) < 1e-9
    # Diagonal covariances: ||mu1 - mu2||^2 + sum (sqrt(a) - sqrt(b))^2.
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    # One dimension: (m1 - m2)^2 + (s1 - s2)^2.
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    # sigma2 = k sigma1: tr(sigma1) (1 + k - 2 sqrt(k)).
    assert frechet_distance(mu1, sigma, mu1, 4 * sigma) == pytest.approx(np.trace(sigma) * (1 + 4 - 4), rel=1e-10)


def test_frechet_distance_matches_sqrtm_and_survives_singular_covariances():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    s1, s2 = random_spd(8, rng), random_spd(8, rng)
    reference = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                 - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-8)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(reference, rel=1e-8)
    # Covariances of fewer samples than dimensions are singular: still finite and >= 0.
    low1, low2 = random_spd(50, rng, rank=5), random_spd(50, rng, rank=5)
    value = frechet_distance(np.zeros(50), low1, np.zeros(50), low2)
    assert np.isfinite(value) and value >= 0
    # The square root of rounding-level eigenvalues bounds the accuracy: ~sqrt(eps) of the trace.
    assert abs(frechet_distance(np.zeros(50), low1, np.zeros(50), low1)) < 1e-5 * np.trace(low1)


def test_frechet_distance_bad_input():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance(np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2))


# -- KID ------------------------------------------------------------------------------------------


def mmd2_by_definition(x: np.ndarray, y: np.ndarray, biased: bool = False) -> float:
    """Squared MMD with KID's kernel, pair by pair."""
    def k(a, b):
        return (a @ b / len(a) + 1) ** 3
    m = len(x)
    same = [(i, j) for i in range(m) for j in range(m) if biased or i != j]
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i, j in same) / len(same)
    return within - 2 * sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2


def test_kid_is_the_unbiased_mmd_estimate():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((7, 3)) + 0.5
    mean, std = kernel_inception_distance(x, y, subsets=3, subset_size=7)
    assert mean == pytest.approx(mmd2_by_definition(x, y), rel=1e-10) and std == pytest.approx(0, abs=1e-12)
    # Same distribution: the unbiased estimate averages to ~0; the biased one stays clearly above.
    unbiased, biased = [], []
    for _ in range(300):
        a, b = rng.standard_normal((10, 4)), rng.standard_normal((10, 4))
        unbiased.append(kernel_inception_distance(a, b, subsets=1, subset_size=10)[0])
        biased.append(mmd2_by_definition(a, b, biased=True))
    standard_error = np.std(unbiased) / np.sqrt(len(unbiased))
    assert abs(np.mean(unbiased)) < 3 * standard_error < np.mean(biased)


def test_kid_grows_with_the_shift_and_uses_subsets():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 16))
    kids = [kernel_inception_distance(x, rng.standard_normal((300, 16)) + shift, subset_size=100)[0]
            for shift in (0.0, 0.3, 0.6, 1.2)]
    assert kids == sorted(kids) and abs(kids[0]) < 0.1 * kids[1]
    mean, std = kernel_inception_distance(x, x + 0.3, subsets=20, subset_size=50, seed=1)
    assert std > 0 and (mean, std) == kernel_inception_distance(x, x + 0.3, subsets=20, subset_size=50, seed=1)
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(x[:1], x)
    with pytest.raises(ValueError, match="one width"):
        kernel_inception_distance(x, x[:, :3])
