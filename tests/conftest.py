"""Shared fixtures: tiny seeded configs and small image folders."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from gan_augment.config import ModelConfig, TrainConfig

# Tiny models gain nothing from intra-op threads, and OpenMP threads that spin-wait against
# other processes (a Prefect server, a moto server) make every step much slower.
torch.set_num_threads(1)


TINY_MODEL = dict(image_size=16, channels=1, latent_dim=16, ngf=8, ndf=8)
TINY_TRAIN = dict(steps=6, batch_size=8, log_every=2, checkpoint_every=3, sample_every=3, seed=0)


@pytest.fixture
def tiny_model_config() -> ModelConfig:
    return ModelConfig(**TINY_MODEL)


@pytest.fixture
def tiny_train_config() -> TrainConfig:
    return TrainConfig(**TINY_TRAIN)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory) -> str:
    """OUT/blobs/model of a tiny DCGAN trained for 6 steps on 24 grayscale blobs; shared by the
    session, so treat it as read-only."""
    from gan_augment.train import train

    root = tmp_path_factory.mktemp("trained")
    source = str(root / "store" / "blobs")
    write_png_folder(source, 24)
    result = train(source, str(root / "out"), ModelConfig(**TINY_MODEL), TrainConfig(**TINY_TRAIN, device="cpu"),
                   resume=False)
    return result.model_dir


def write_png_folder(folder: str, count: int, size: int = 16, channels: int = 1, seed: int = 0) -> list[str]:
    """`count` PNGs of blurred random blobs, deterministic in `seed`."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        shape = (size, size) if channels == 1 else (size, size, 3)
        yy, xx = np.mgrid[:size, :size]
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 5) ** 2))
        pixels = (blob[..., None] if channels == 3 else blob) * 200 + rng.uniform(0, 55, shape)
        path = os.path.join(folder, f"img-{i:03d}.png")
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def blob_tensor(count: int, size: int = 32, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """(count, channels, size, size) uint8 images of one random Gaussian blob each, plus noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centres = torch.rand(count, 2, generator=g) * size * 0.4 + size * 0.3
    d2 = (yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2
    blob = torch.exp(-d2 / (2 * (size / 6) ** 2))[:, None].expand(-1, channels, -1, -1)
    noise = torch.rand(count, channels, size, size, generator=g) * 40
    return (blob * 200 + noise).round().clamp(0, 255).to(torch.uint8)


@pytest.fixture
def image_folder(tmp_path) -> str:
    """A dataset folder named "blobs" holding 24 grayscale 16x16 PNGs."""
    folder = str(tmp_path / "store" / "blobs")
    write_png_folder(folder, 24)
    return folder


def write_random_model(model_dir: str, config: ModelConfig, dataset: str = "random", seed: int = 0,
                       weight_std: float = 0.1) -> str:
    """Save untrained networks of `config` as a model directory. Weights are drawn N(0, weight_std)
    instead of the DCGAN init's N(0, 0.02), so that samples vary visibly from pixel to pixel and
    from sample to sample (a near-constant image would make equality checks vacuous)."""
    from gan_augment.checkpoint import save_model
    from gan_augment.models import build_models

    torch.manual_seed(seed)
    generator, discriminator = build_models(config)
    with torch.no_grad():
        for module in [*generator.modules(), *discriminator.modules()]:
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                module.weight.normal_(0.0, weight_std)
    save_model(model_dir, generator.eval(), discriminator.eval(), model_id=f"{dataset}-{seed}", dataset=dataset)
    return model_dir


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory) -> str:
    """OUT/random/model: an untrained tiny DCGAN with visibly varied samples (read-only)."""
    return write_random_model(str(tmp_path_factory.mktemp("random") / "random" / "model"), ModelConfig(**TINY_MODEL))
