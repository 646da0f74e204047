"""The pixel convention: stores hold uint8 [0, 255]; the networks see float [-1, 1] (tanh)."""

from __future__ import annotations

import torch
from torch import Tensor


def to_model_range(images: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1], the generator's tanh range."""
    return images.to(dtype).mul_(2.0 / 255.0).sub_(1.0)


def images_to_uint8(images: Tensor) -> Tensor:
    """Generator output in [-1, 1] -> uint8 [0, 255], rounding like PNG quantisation does."""
    return images.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
