"""Hostile image files for tests and benchmarks: valid images of every supported format and
many modes, mutated the way broken stores break them (bits flipped in the header or the body,
truncation, junk inserted, declared sizes overwritten), and a crafted JPEG that keeps a
decoder busy for as long as one likes.

Everything is a pure function of its seed; nothing is read from or written to disk here.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from gan_augment.scan.images import ImageRejected, decode_image

MUTATIONS = ("header_bits", "body_bits", "truncate", "junk", "declared_size", "none")


@dataclass(frozen=True)
class FuzzCase:
    """One generated object: its file name, bytes, and how it was made."""

    name: str
    data: bytes
    format: str
    mode: str
    mutation: str


def _pixels(mode: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A smooth gradient with noise in `mode` (compressible like a photo, unlike pure noise)."""
    width, height = size
    ramp = np.linspace(0, 255, width)[None, :] * np.linspace(0.4, 1.0, height)[:, None]
    gray = (ramp + rng.normal(0, 12, (height, width))).clip(0, 255).astype(np.uint8)
    if mode == "I;16":
        return Image.fromarray(gray.astype(np.uint16) * 257)
    rgb = Image.fromarray(np.stack([gray, np.flipud(gray), gray[:, ::-1]], axis=-1))
    if mode == "P":
        return rgb.quantize(16)
    if mode in ("RGBA", "LA"):
        base = rgb.convert("RGB" if mode == "RGBA" else "L")
        base.putalpha(Image.fromarray(np.flipud(gray)))
        return base
    return rgb.convert(mode)


# (format, mode, save options) for every base image: each supported format in its usual modes.
BASES: tuple[tuple[str, str, dict], ...] = (
    ("PNG", "L", {}), ("PNG", "RGB", {}), ("PNG", "RGBA", {}), ("PNG", "P", {}), ("PNG", "1", {}),
    ("PNG", "I;16", {}), ("PNG", "LA", {}), ("PNG", "RGB", {"interlace": 1}),
    ("JPEG", "L", {"quality": 85}), ("JPEG", "RGB", {"quality": 85}), ("JPEG", "CMYK", {"quality": 85}),
    ("JPEG", "RGB", {"quality": 85, "progressive": True}),
    ("GIF", "P", {}), ("GIF", "L", {}), ("GIF", "P", {"save_all": True}),
    ("BMP", "RGB", {}), ("BMP", "L", {}), ("BMP", "P", {}), ("BMP", "1", {}),
    ("TIFF", "RGB", {}), ("TIFF", "L", {"compression": "tiff_lzw"}), ("TIFF", "1", {"compression": "packbits"}),
    ("TIFF", "I;16", {}), ("TIFF", "CMYK", {"compression": "tiff_adobe_deflate"}), ("TIFF", "RGBA", {}),
    ("WEBP", "RGB", {"quality": 80}), ("WEBP", "RGBA", {"lossless": True}),
    ("PPM", "RGB", {}), ("PPM", "L", {}),
)
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff", "WEBP": "webp", "PPM": "ppm"}


def encode_base(fmt: str, mode: str, options: dict, size: tuple[int, int], rng: np.random.Generator) -> bytes:
    """A valid file of `fmt` in `mode` (animated GIFs get a second frame)."""
    image = _pixels(mode, size, rng)
    buffer = io.BytesIO()
    if options.get("save_all"):
        second = _pixels(mode, size, rng)
        image.save(buffer, format=fmt, save_all=True, append_images=[second], duration=50)
    else:
        image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


# -- mutations ----------------------------------------------------------------------------------


def _flip_bits(data: bytes, rng: random.Random, end: int) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(max(1, min(end, len(out))))
        out[position] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(1, max(2, len(data)))]


def _insert_junk(data: bytes, rng: random.Random) -> bytes:
    position = rng.randrange(len(data) + 1)
    junk = bytes(rng.randrange(256) for _ in range(rng.choice((1, 4, 16, 256))))
    return data[:position] + junk + data[position:]


def _size_value(rng: random.Random, bits: int) -> int:
    choices = [0, 1, rng.randrange(2, 64), rng.randrange(64, 4096), rng.randrange(4096, 1 << min(bits, 20)),
               (1 << bits) - 1, 1 << (bits - 1)]
    return rng.choice(choices) & ((1 << bits) - 1)


def _png_size(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    out[16:24] = struct.pack(">II", _size_value(rng, 32), _size_value(rng, 32))
    if rng.random() < 0.8:  # with a valid CRC, only the declared size is wrong
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    return bytes(out)


def _jpeg_size(data: bytes, rng: random.Random) -> bytes:
    out, position = bytearray(data), 2
    while position + 9 < len(out):
        marker, length = out[position + 1], struct.unpack(">H", out[position + 2:position + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            out[position + 5:position + 9] = struct.pack(">HH", _size_value(rng, 16), _size_value(rng, 16))
            break
        position += 2 + length
    return bytes(out)


def _gif_size(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    out[6:10] = struct.pack("<HH", _size_value(rng, 16), _size_value(rng, 16))
    descriptor = out.find(b"\x2c", 13)
    if descriptor > 0 and rng.random() < 0.5:
        out[descriptor + 5:descriptor + 9] = struct.pack("<HH", _size_value(rng, 16), _size_value(rng, 16))
    return bytes(out)


def _bmp_size(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    height = _size_value(rng, 31) * rng.choice((1, -1))  # negative: stored top-down
    out[18:26] = struct.pack("<Ii", _size_value(rng, 31), height)
    return bytes(out)


def _tiff_size(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", out[4:8])[0]
    count = struct.unpack(order + "H", out[ifd:ifd + 2])[0]
    for k in range(count):
        entry = ifd + 2 + 12 * k
        tag, kind = struct.unpack(order + "HH", out[entry:entry + 4])
        if tag in (256, 257):
            if kind == 3:
                out[entry + 8:entry + 10] = struct.pack(order + "H", _size_value(rng, 16))
            else:
                out[entry + 8:entry + 12] = struct.pack(order + "I", _size_value(rng, 32))
    return bytes(out)


def _webp_size(data: bytes, rng: random.Random) -> bytes:
    out, kind = bytearray(data), bytes(data[12:16])
    if kind == b"VP8 ":
        out[26:30] = struct.pack("<HH", _size_value(rng, 14), _size_value(rng, 14))
    elif kind == b"VP8L":
        bits = _size_value(rng, 14) | (_size_value(rng, 14) << 14) | (struct.unpack("<I", out[21:25])[0] & ~0xFFFFFFF)
        out[21:25] = struct.pack("<I", bits & 0xFFFFFFFF)
    elif kind == b"VP8X":
        out[24:30] = _size_value(rng, 24).to_bytes(3, "little") + _size_value(rng, 24).to_bytes(3, "little")
    return bytes(out)


def _ppm_size(data: bytes, rng: random.Random) -> bytes:
    magic, width, height, maxval, pixels = data.split(maxsplit=4)
    header = b"%s\n%d %d\n%s\n" % (magic, _size_value(rng, 31), _size_value(rng, 31), maxval)
    return header + pixels


_SIZE_WRITERS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "PNG": _png_size, "JPEG": _jpeg_size, "GIF": _gif_size, "BMP": _bmp_size, "TIFF": _tiff_size,
    "WEBP": _webp_size, "PPM": _ppm_size,
}


def mutate(data: bytes, fmt: str, mutation: str, rng: random.Random) -> bytes:
    """`data` (a valid `fmt` file) broken by one of MUTATIONS."""
    if mutation == "header_bits":
        return _flip_bits(data, rng, 64)
    if mutation == "body_bits":
        return _flip_bits(data, rng, len(data))
    if mutation == "truncate":
        return _truncate(data, rng)
    if mutation == "junk":
        return _insert_junk(data, rng)
    if mutation == "declared_size":
        return _SIZE_WRITERS[fmt](data, rng)
    return data


def fuzz_corpus(count: int, seed: int = 0, size: tuple[int, int] = (24, 20)) -> Iterator[FuzzCase]:
    """`count` objects, cycling through every base (format, mode) and mutation, seeded."""
    rng, pixels_rng = random.Random(seed), np.random.default_rng(seed)
    bases = [(fmt, mode, options, encode_base(fmt, mode, options, size, pixels_rng)) for fmt, mode, options in BASES]
    for index in range(count):
        fmt, mode, options, data = bases[index % len(bases)]
        mutation = MUTATIONS[(index // len(bases)) % len(MUTATIONS)] if index >= len(bases) else "none"
        mutated = mutate(data, fmt, mutation, rng)
        name = f"{index:05d}-{fmt.lower()}-{mode.replace(';', '')}-{mutation}.{EXTENSIONS[fmt]}"
        yield FuzzCase(name, mutated, fmt, mode, mutation)


def spinning_jpeg(side: int = 2048, scans: int = 2000) -> bytes:
    """A valid-looking progressive JPEG whose last scan repeats `scans` times: libjpeg walks
    every block of the image once per scan, so its decode time grows with side**2 * scans
    (4096 x 4096 with 200 scans, 72 KB: about 4 s on one core) while its header stays sound."""
    buffer = io.BytesIO()
    Image.new("L", (side, side), 128).save(buffer, "JPEG", progressive=True, quality=90)
    data = buffer.getvalue()
    last_scan = data[data.rindex(b"\xff\xda"):-2]
    return data[:-2] + last_scan * scans + b"\xff\xd9"


def decodes(data: bytes) -> bool:
    """Whether training's decode (`scan.images.decode_image`) takes the object, grayscale and colour."""
    try:
        decode_image(data, 16, 1)
        decode_image(data, 16, 3)
    except ImageRejected:
        return False
    return True
