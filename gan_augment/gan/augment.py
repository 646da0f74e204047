"""Differentiable augmentation (DiffAugment, Zhao et al. 2020, "Differentiable Augmentation for
Data-Efficient GAN Training").

The same random transform family is applied to real and generated images before D sees them,
and every op is differentiable in the image, so G's gradient passes through. Images are in
[-1, 1]; every draw comes from the explicit `generator`, so a seeded run is reproducible.
The magnitudes are the paper's: brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5],
translation up to 1/8 of the side, a cutout square of half the side.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _uniform(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """One U(0, 1) draw per sample, shaped (B, 1, 1, 1) to broadcast over an image."""
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype, generator=generator)


def color(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    x = x + (_uniform(x, generator) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x, generator) * 2) + mean  # saturation (a no-op in grayscale)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator) + 0.5) + mean  # contrast


def translation(x: Tensor, generator: torch.Generator | None = None, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to `ratio` of its side, filling with zeros."""
    batch, _, height, width = x.shape
    pad_h, pad_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    shift_y = torch.randint(-pad_h, pad_h + 1, (batch, 1), device=x.device, generator=generator)
    shift_x = torch.randint(-pad_w, pad_w + 1, (batch, 1), device=x.device, generator=generator)
    rows = torch.arange(height, device=x.device) + pad_h - shift_y  # (B, H) into the padded image
    cols = torch.arange(width, device=x.device) + pad_w - shift_x  # (B, W)
    padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h))  # (B, C, H + 2 pad_h, W + 2 pad_w)
    index = torch.arange(batch, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


def cutout(x: Tensor, generator: torch.Generator | None = None, ratio: float = 0.5) -> Tensor:
    """Zero one square of `ratio` times the side per image, at a random centre."""
    batch, _, height, width = x.shape
    cut_h, cut_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = torch.randint(0, height + (1 - cut_h % 2), (batch, 1), device=x.device,
                        generator=generator) - cut_h // 2
    left = torch.randint(0, width + (1 - cut_w % 2), (batch, 1), device=x.device,
                         generator=generator) - cut_w // 2
    rows = torch.arange(height, device=x.device)
    cols = torch.arange(width, device=x.device)
    in_rows = (rows >= top) & (rows < top + cut_h)  # (B, H)
    in_cols = (cols >= left) & (cols < left + cut_w)  # (B, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # (B, H, W)
    return x * keep[:, None].to(x.dtype)


POLICIES = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: Tensor, policies: tuple[str, ...], generator: torch.Generator | None = None) -> Tensor:
    """Apply the named policies in order; an empty tuple returns `x` unchanged."""
    for name in policies:
        x = POLICIES[name](x, generator)
    return x


# -- views for the contrastive loss --------------------------------------------------------------

VIEW_SCALE = (0.5, 1.0)  # area of the random crop, as a fraction of the image
VIEW_RATIO = (3 / 4, 4 / 3)  # aspect ratio of the crop
VIEW_ROTATION = 15.0  # degrees, either way
VIEW_TRANSLATION = 0.1  # shift of the crop centre, as a fraction of the side
VIEW_CONTRAST = 0.3  # contrast x[0.7, 1.3]
VIEW_BRIGHTNESS = 0.2  # brightness +-0.2 of the full range


def random_view(x: Tensor, generator: torch.Generator | None = None, flip: bool = False) -> Tensor:
    """One random view per image for the contrastive loss: a random resized crop, rotated and
    shifted (one batched affine warp, so it is differentiable and cheap), then contrast and
    brightness jitter. Outside the image is the darkest value (-1). These are the magnitudes
    that worked best on digits (see BENCHMARKS.md, few-label features); SimCLR's colour
    distortion and blur are left out because they destroy small grayscale images. With `flip`,
    half the views are mirrored left to right too (SimCLR's flip, in the same warp); its draw
    comes after the others, so the views without it are the same for a given generator."""
    batch = x.shape[0]
    u = torch.rand(batch, 7, device=x.device, generator=generator)  # (B, 7): every draw at once
    jitter = torch.rand(batch, 2, 1, 1, 1, device=x.device, dtype=x.dtype, generator=generator)
    mirror = torch.ones(batch, device=x.device)
    if flip:
        mirror = torch.where(torch.rand(batch, device=x.device, generator=generator) < 0.5, -mirror, mirror)
    area = VIEW_SCALE[0] + (VIEW_SCALE[1] - VIEW_SCALE[0]) * u[:, 0]
    log_ratio = math.log(VIEW_RATIO[0]) + (math.log(VIEW_RATIO[1]) - math.log(VIEW_RATIO[0])) * u[:, 1]
    ratio = torch.exp(log_ratio)
    width, height = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)
    angle = (2 * u[:, 2] - 1) * math.radians(VIEW_ROTATION)
    # the crop centre: anywhere the crop fits, plus a shift (affine_grid's coordinates span [-1, 1])
    centre_x = (2 * u[:, 3] - 1) * (1 - width) + (2 * u[:, 4] - 1) * 2 * VIEW_TRANSLATION
    centre_y = (2 * u[:, 5] - 1) * (1 - height) + (2 * u[:, 6] - 1) * 2 * VIEW_TRANSLATION
    cos, sin = torch.cos(angle), torch.sin(angle)
    # a mirror negates the output's x before the warp: the first column of the affine map
    theta = torch.stack([torch.stack([mirror * cos * width, -sin * height, centre_x], 1),
                         torch.stack([mirror * sin * width, cos * height, centre_y], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    # Sampling x + 1 with zero padding fills the outside with -1 after the shift back.
    warped = F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    contrast = 1 + (2 * jitter[:, 0] - 1) * VIEW_CONTRAST
    brightness = (2 * jitter[:, 1] - 1) * VIEW_BRIGHTNESS * 2
    return (warped * contrast + brightness - 1).clamp(-1, 1)
