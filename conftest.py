"""Doctests: the `Examples:` of gan_augment's docstrings run with the test suite
(`--doctest-modules`). Examples that need data or a trained model find three names ready:
`store` (an image store with one dataset, `shapes`, of 24 small grayscale PNGs), `out` (its
output root) and `trained_model` (`out/shapes/model`, the directory of a tiny DCGAN trained on it)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def example_store(tmp_path_factory) -> dict[str, str]:
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    from gan_augment import ModelConfig, TrainConfig, train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("examples")
    store, out = str(root / "store"), str(root / "out")
    os.makedirs(os.path.join(store, "shapes"))
    rng = np.random.default_rng(0)
    for i in range(24):
        image = Image.new("L", (16, 16), 0)
        x, y, r = (int(v) for v in rng.integers((3, 3, 2), (13, 13, 5)))
        ImageDraw.Draw(image).ellipse((x - r, y - r, x + r, y + r), fill=int(rng.integers(128, 256)))
        image.save(os.path.join(store, "shapes", f"{i:02d}.png"))
    result = train(os.path.join(store, "shapes"), out, ModelConfig(image_size=16, channels=1, ngf=8, ndf=8),
                   TrainConfig(steps=4, batch_size=8, seed=0, device="cpu"), resume=False)
    return {"store": store, "out": out, "trained_model": result.model_dir}


@pytest.fixture(autouse=True)
def _examples_namespace(request, doctest_namespace) -> None:
    if type(request.node).__name__ == "DoctestItem":  # only doctests pay for the tiny training
        doctest_namespace.update(request.getfixturevalue("example_store"))
