"""Shared fixtures: tiny seeded configs, small image folders, images good and bad, and stores
(a local folder, memory:// and a real S3 endpoint on loopback)."""

from __future__ import annotations

import io
import os
import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import numpy as np
import pytest
import torch
from fsspec.implementations.local import LocalFileSystem
from PIL import ExifTags, Image

from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.scan import decoding
from gan_augment.testing.servers import s3_client, s3_storage_options, start_moto_server

# Tiny models gain nothing from intra-op threads, and OpenMP threads that spin-wait against
# other processes (a Prefect server, a moto server) make every step much slower.
torch.set_num_threads(1)


TINY_MODEL = dict(image_size=16, channels=1, latent_dim=16, ngf=8, ndf=8)
# No finish: these trainings test storage, flows and resuming, and step counts read plainly; the
# automatic finish has its own tests (tests/training/test_finish.py, tests/test_cli_scripting.py).
TINY_TRAIN = dict(steps=6, batch_size=8, log_every=2, checkpoint_every=3, sample_every=3, seed=0, finish_steps=0)


@pytest.fixture
def tiny_model_config() -> ModelConfig:
    return ModelConfig(**TINY_MODEL)


@pytest.fixture
def tiny_train_config() -> TrainConfig:
    return TrainConfig(**TINY_TRAIN)


@pytest.fixture
def nan_loss_at(monkeypatch):
    """`nan_loss_at(module, n)`: `module.discriminator_loss` returns NaN at its `n`th call (1-based)
    and the true loss otherwise: one non-finite step, as a flaky device or a bad batch would give."""

    def patch(module, n: int) -> None:
        real_loss, calls = module.discriminator_loss, {"n": 0}

        def nan_once(kind, real, fake):
            calls["n"] += 1
            loss = real_loss(kind, real, fake)
            return loss * float("nan") if calls["n"] == n else loss

        monkeypatch.setattr(module, "discriminator_loss", nan_once)

    return patch


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory) -> str:
    """OUT/blobs/model of a tiny DCGAN trained for 6 steps on 24 grayscale blobs; shared by the
    session, so treat it as read-only."""
    from gan_augment.training.trainer import train

    root = tmp_path_factory.mktemp("trained")
    source = str(root / "store" / "blobs")
    write_png_folder(source, 24)
    result = train(source, str(root / "out"), ModelConfig(**TINY_MODEL), TrainConfig(**TINY_TRAIN, device="cpu"),
                   resume=False)
    return result.model_dir


# Labels of the first 8 of the 24 blobs of `conditional_model_dir`, keyed by file name.
CONDITIONAL_LABELS = {f"img-{i:03d}.png": "round" if i % 2 else "flat" for i in range(8)}


@pytest.fixture(scope="session")
def conditional_model_dir(tmp_path_factory) -> str:
    """OUT/blobs/model of a tiny class-conditional DCGAN: 24 blobs, 8 of them labelled (two
    classes), pseudo-labels after 3 of its 6 steps; shared by the session, read-only."""
    from gan_augment.training.trainer import train

    root = tmp_path_factory.mktemp("conditional")
    source = str(root / "store" / "blobs")
    write_png_folder(source, 24)
    result = train(source, str(root / "out"), ModelConfig(**TINY_MODEL), TrainConfig(**TINY_TRAIN, device="cpu"),
                   resume=False, labels=CONDITIONAL_LABELS)
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


@pytest.fixture
def png_writer():
    """`write_png_folder`, for tests in sub-folders, which cannot import this conftest by name."""
    return write_png_folder


def write_random_model(model_dir: str, config: ModelConfig, dataset: str = "random", seed: int = 0,
                       weight_std: float = 0.1) -> str:
    """Save untrained networks of `config` as a model directory. Weights are drawn N(0, weight_std)
    instead of the DCGAN init's N(0, 0.02), so that samples vary visibly from pixel to pixel and
    from sample to sample (a near-constant image would make equality checks vacuous)."""
    from gan_augment.gan.checkpoint import save_model
    from gan_augment.gan.models import build_models

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


# -- encoded images, good and bad ---------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def noise_image(size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> Image.Image:
    """Deterministic noise; incompressible, so encoded files are about width*height*bands bytes."""
    bands = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], bands), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if bands == 1 else pixels, mode=mode)


def png_with_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (a decompression bomb when huge)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def exif_rotated_jpeg() -> bytes:
    """A 24x16 JPEG stored sideways: its EXIF orientation 6 says "rotate 90 degrees clockwise to
    view". Stored, its left half is white; viewed upright, the top half is."""
    stored = Image.new("L", (24, 16), 0)
    stored.paste(255, (0, 0, 12, 16))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def bad_inputs() -> dict[str, tuple[bytes, str]]:
    """Every kind of object a real store holds: name -> (bytes, expected manifest status)."""
    gray = encode(noise_image((16, 16), "L", seed=1), "PNG")
    jpeg = encode(noise_image((32, 24), seed=2), "JPEG", quality=90)
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(0, (0, 0, 8, 16))
    palette.info["transparency"] = 0  # palette index 0 (the left half) is transparent
    frames = [Image.new("RGB", (16, 16), color) for color in ((255, 0, 0), (0, 0, 255))]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    gray16 = Image.fromarray(np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16))
    return {
        "ok-gray.png": (gray, "ok"),
        "ok-rgb.jpg": (jpeg, "ok"),
        "z-duplicate.png": (gray, "duplicate"),
        "empty.png": (b"", "empty"),
        "truncated.png": (encode(noise_image((64, 64), seed=3), "PNG")[:6000], "corrupt"),
        "truncated.jpg": (encode(noise_image((64, 64), seed=4), "JPEG")[:3000], "corrupt"),
        "random-bytes.jpg": (np.random.default_rng(5).integers(0, 256, 5000, dtype=np.uint8).tobytes(), "corrupt"),
        "text.png": (b"this is a text file, not an image\n" * 20, "corrupt"),
        "bomb.png": (png_with_header(100_000, 100_000), "too_large"),
        "gray16.png": (encode(gray16, "PNG"), "ok"),
        "palette-transparent.png": (encode(palette, "PNG"), "ok"),
        "la.png": (encode(noise_image((16, 16), "LA", seed=6), "PNG"), "ok"),
        "cmyk.jpg": (encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95), "ok"),
        "rgba.png": (encode(noise_image((16, 16), "RGBA", seed=7), "PNG"), "ok"),
        "exif-rotated.jpg": (exif_rotated_jpeg(), "ok"),
        "image.webp": (encode(noise_image((20, 20), seed=8), "WEBP", lossless=True), "ok"),
        "image.bmp": (encode(noise_image((20, 20), seed=9), "BMP"), "ok"),
        "image.tiff": (encode(noise_image((20, 20), seed=10), "TIFF"), "ok"),
        "animated.gif": (gif.getvalue(), "ok"),
        "ünïcödé name with spaces.png": (encode(noise_image((16, 16), seed=11), "PNG"), "ok"),
        "icon.png": (encode(noise_image((16, 16), seed=12), "ICO"), "unsupported"),
    }


# -- stores: a local folder, memory:// and a real S3 endpoint on loopback ------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 and a free port, shared by the whole session."""
    server, endpoint = start_moto_server()
    yield endpoint
    server.stop()


@pytest.fixture
def s3_options(s3_endpoint) -> dict:
    """fsspec storage options reaching the loopback S3 endpoint through s3fs."""
    return s3_storage_options(s3_endpoint)


@pytest.fixture
def s3_bucket(s3_endpoint) -> str:
    """A fresh empty bucket on the loopback endpoint; its URL, s3://<name>."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    return f"s3://{name}"


@dataclass
class Store:
    """A store root on some filesystem, with a way to write objects into it."""

    url: str
    storage_options: dict | None

    def url_of(self, relative: str) -> str:
        return f"{self.url.rstrip('/')}/{relative}"

    def put(self, relative: str, data: bytes) -> str:
        fs, path = fsspec.core.url_to_fs(self.url_of(relative), **(self.storage_options or {}))
        if isinstance(fs, LocalFileSystem):
            fs.makedirs(fs._parent(path), exist_ok=True)
        fs.pipe_file(path, data)
        return self.url_of(relative)

    def remove(self, relative: str) -> None:
        fs, path = fsspec.core.url_to_fs(self.url_of(relative), **(self.storage_options or {}))
        fs.rm_file(path)


@pytest.fixture(params=["local", "memory", "s3"])
def store(request, tmp_path) -> Iterator[Store]:
    """An empty store root: a local folder, a memory:// prefix or an S3 bucket on loopback."""
    if request.param == "local":
        yield Store(f"file://{tmp_path}/store", None)
    elif request.param == "memory":
        root = f"/store-{uuid.uuid4().hex[:12]}"
        yield Store(f"memory://{root}", None)
        fsspec.filesystem("memory").rm(root, recursive=True)
    else:
        yield Store(request.getfixturevalue("s3_bucket"), request.getfixturevalue("s3_options"))


@pytest.fixture
def read_log(monkeypatch) -> list[str]:
    """Paths of the local files opened for reading from now on (every store read goes through
    LocalFileSystem._open: cat_file, cat_ranges and open alike). Decoding workers read local
    files themselves, in another process; here they are read in this one, as any other store's."""
    monkeypatch.setattr(decoding, "LOCAL_READS_IN_WORKERS", False)
    opened: list[str] = []
    original = LocalFileSystem._open

    def recording_open(self, path, mode="rb", *args, **kwargs):
        if "r" in mode:
            opened.append(self._strip_protocol(path))
        return original(self, path, mode, *args, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "_open", recording_open)
    return opened
