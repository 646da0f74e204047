"""The demo's data loaders: IDX files (Fashion-MNIST's format) and Wesnoth's faction folders of sprites,
read from tiny files written here."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from gan_augment.demo import load_fashion_mnist, load_wesnoth_sprites, read_idx


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_split(root, split: str, images: np.ndarray, labels: np.ndarray, compress: bool = True) -> None:
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        name = root / f"{split}-{kind}-ubyte{'.gz' if compress else ''}"
        name.write_bytes(gzip.compress(idx_bytes(array)) if compress else idx_bytes(array))


def test_read_idx_plain_and_gzipped(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(idx_bytes(array))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(idx_bytes(array)))
    assert np.array_equal(read_idx(str(tmp_path / "a.idx")), array)
    assert np.array_equal(read_idx(str(tmp_path / "a.idx.gz")), array)


def test_load_fashion_mnist_from_a_folder(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([9, 0, 0, 3, 1], dtype=np.uint8)
    write_split(tmp_path, "train", images, labels)
    write_split(tmp_path, "t10k", images[:2], labels[:2], compress=False)
    x, y = load_fashion_mnist(str(tmp_path))
    assert np.array_equal(x, images) and y.tolist() == [9, 0, 0, 3, 1] and y.dtype == np.int64
    assert load_fashion_mnist(str(tmp_path), split="t10k")[0].shape == (2, 28, 28)


def test_bad_idx_files_teach(tmp_path):
    (tmp_path / "bad.idx").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        read_idx(str(tmp_path / "bad.idx"))
    (tmp_path / "short.idx").write_bytes(idx_bytes(np.zeros((4, 2), dtype=np.uint8))[:-3])
    with pytest.raises(ValueError, match="cut short or padded: .* 2 dimension"):
        read_idx(str(tmp_path / "short.idx"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(str(tmp_path))
    write_split(tmp_path, "train", np.zeros((3, 28, 28), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="do not fit"):
        load_fashion_mnist(str(tmp_path))


def test_load_wesnoth_sprites_labels_by_faction_folder(tmp_path):
    from PIL import Image

    layout = {"drakes": ["burner.png", "fire/glider.png", "fire/sky.PNG"], "elves-wood": ["archer.png"],
              "woses": ["wose.png", "notes.txt"]}
    for faction, names in layout.items():
        for name in names:
            path = tmp_path / faction / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith("txt"):
                path.write_text("not a sprite")
            else:  # an RGBA sprite with a transparent field, as the game ships them
                Image.new("RGBA", (72, 72), (0, 0, 0, 0)).save(path)
    Image.new("RGBA", (8, 8)).save(tmp_path / "unknown-unit.png")  # in no faction folder
    paths, labels, factions = load_wesnoth_sprites(str(tmp_path))
    assert factions == ["drakes", "elves-wood", "woses"]
    assert [p.removeprefix(str(tmp_path) + "/") for p in paths] == [
        "drakes/burner.png", "drakes/fire/glider.png", "drakes/fire/sky.PNG", "elves-wood/archer.png", "woses/wose.png"]
    assert labels.tolist() == [0, 0, 0, 1, 2] and labels.dtype == np.int64
    paths, labels, factions = load_wesnoth_sprites(str(tmp_path), min_images=2)
    assert factions == ["drakes"] and labels.tolist() == [0, 0, 0]
    with pytest.raises(FileNotFoundError, match="apt-get install wesnoth-1.16-data"):
        load_wesnoth_sprites(str(tmp_path / "missing"))
