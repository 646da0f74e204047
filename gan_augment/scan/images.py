"""Encoded image bytes -> a verdict and pixels: header probing, validation and decoding.

Pure functions on bytes, no storage access. The scan (`store.scan_store`) and the training cache
(`cache.build_cache`) apply the same rules, so an object the scan calls `ok` decodes, and an
object that only the cache sees is judged as the scan would judge it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
from PIL import ExifTags, Image, ImageOps

from gan_augment.config import DEFAULT_BACKGROUND, DEFAULT_FIT, FITS
from gan_augment.config_base import background_rgb
from gan_augment.scan.phash import perceptual_hash, perceptual_hashes

# Formats the whole pipeline reads; Pillow knows more (PSD, ICO, JPEG 2000, ...), which the
# scan marks `unsupported` rather than guessing how to turn them into training images.
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM"})
# Modes `to_channels` turns into L or RGB; anything else is `unsupported`.
CONVERTIBLE_MODES = frozenset({
    "1", "L", "P", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "LA", "La", "PA",
    "I", "I;16", "I;16L", "I;16B", "I;16N", "F",
})
# A scan refuses images above Pillow's own decompression-bomb limit unless told otherwise.
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# How much of an object's end a scan reads to see whether the file is complete.
TAIL_BYTES = 1024

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"),
)
# What a complete file ends with; a little trailing junk after it is tolerated. JPEG's EOI
# cannot occur inside entropy-coded data, where every 0xFF byte is stuffed (ITU T.81, B.1.1.5).
_END_MARKERS = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9", "MPO": b"\xff\xd9"}
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


@dataclass(frozen=True)
class Probe:
    """What a scan learns about one object from its header.

    Attributes:
        status: ok, corrupt, unsupported, too_large or empty.
        error: why it is not ok ("" when it is).
        format, mode, width, height: as far as the header told (width/height upright, after
            the EXIF orientation).
        incomplete: the header did not fit in the bytes given; read more and probe again.
        phash: the perceptual hash (`phash.perceptual_hash`) when the pixels were decoded.
        phash_canonical: with it, the hash of the image's canonical window (`phash.canonical_hash`).
    """

    status: str
    error: str = ""
    format: str | None = None
    mode: str | None = None
    width: int | None = None
    height: int | None = None
    incomplete: bool = False
    phash: int | None = None
    phash_canonical: int | None = None


class ImageRejected(ValueError):
    """An image that the scan rules refuse; `status` is the manifest status it would get."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status, self.reason = status, reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # crosses from a decoding worker process
        return ImageRejected, (self.status, self.reason)


def sniff_format(head: bytes) -> str | None:
    """The format named by a file's magic number, for the formats in SUPPORTED_FORMATS."""
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if len(head) >= 3 and head[:1] == b"P" and head[1:2] in b"1234567" and head[2:3].isspace():
        return "PPM"
    return None


def _pillow_format(head: bytes) -> str | None:
    """The format whose Pillow plugin claims this magic number, for formats `sniff_format` does
    not know (plugins that claim anything, lacking a check, are not asked)."""
    Image.init()
    for name, (_, accept) in Image.OPEN.items():
        try:
            if accept is not None and accept(head[:16]):
                return name
        except Exception:  # noqa: BLE001 - some checks assume a longer prefix
            continue
    return None


def _upright_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) after the EXIF orientation, read from the header only."""
    if img.format == "PNG" and "exif" not in img.info:
        return img.size  # Pillow would decode the pixels to look for a trailing eXIf chunk
    try:
        orientation = int(img.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block only loses the rotation hint
        orientation = 1
    width, height = img.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _unsupported(name: str | None) -> str:
    return f"format {name} is not one of {', '.join(sorted(SUPPORTED_FORMATS))}"


def _describe(exc: BaseException) -> str:
    text = str(exc).split(" <_io.", 1)[0].strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def probe_image(
    data: bytes,
    size: int,
    *,
    tail: bytes | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = None,
) -> Probe:
    """Judge one object from its first bytes (and last ones) without decoding its pixels.

    Args:
        data: the object's first bytes, or all of it when `len(data) >= size`.
        size: the object's size in bytes.
        tail: its last bytes when `data` is only a prefix, to spot a truncated file.
        max_pixels: larger images are `too_large` (decompression bombs).
        max_bytes: larger objects are `too_large` (not worth downloading); None for no limit.
    """
    if size == 0:
        return Probe("empty", "the object is empty (0 bytes)")
    complete = len(data) >= size
    sniffed = sniff_format(data)
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        return Probe("too_large", f"decompression bomb refused: {exc}", format=sniffed)
    except Exception as exc:  # noqa: BLE001 - whatever Pillow raises, the object is judged
        known = sniffed or (None if complete else _pillow_format(data))
        if known in SUPPORTED_FORMATS and not complete:
            return Probe("corrupt", "header larger than the bytes read", format=known, incomplete=True)
        if known in SUPPORTED_FORMATS:
            return Probe("corrupt", f"unreadable {known} data ({_describe(exc)})", format=known)
        if known:  # another format, which Pillow could not open from the bytes read
            return Probe("unsupported", _unsupported(known), format=known)
        return Probe("corrupt", f"not an image: no known format starts with {data[:8]!r}")
    with img:
        width, height = _upright_size(img)
        found = Probe("ok", "", img.format, img.mode, width, height)
        if img.format not in SUPPORTED_FORMATS:
            return replace(found, status="unsupported", error=_unsupported(img.format))
        if img.mode not in CONVERTIBLE_MODES:
            return replace(found, status="unsupported",
                           error=f"pixel mode {img.mode} cannot be converted to L or RGB")
        if width * height > max_pixels:
            return replace(found, status="too_large",
                           error=f"{width}x{height} pixels exceed the limit of {max_pixels}")
        if max_bytes is not None and size > max_bytes:
            return replace(found, status="too_large", error=f"{size} bytes exceed the limit of {max_bytes}")
        if complete and img.format == "PNG":
            try:
                img.verify()  # walks every chunk to IEND and checks its CRC, without inflating
            except Exception as exc:  # noqa: BLE001
                return replace(found, status="corrupt", error=f"damaged PNG ({_describe(exc)})")
    end = data[-TAIL_BYTES:] if complete else tail
    marker = _END_MARKERS.get(found.format or "")
    if marker and end is not None and marker not in end:
        return replace(found, status="corrupt",
                       error=f"truncated {found.format}: the file does not end with its end marker")
    return found


def verify_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, phash: bool = True) -> Probe:
    """Judge a whole object by decoding every pixel: `probe_image`'s verdict, or `corrupt`
    when the pixels do not decode (damage past the header shows only then).

    The full-resolution decode, EXIF orientation and mode conversion are the strictest form of
    what training does (`decode_image` may decode a JPEG at a reduced DCT scale), so an object
    that passes decodes in every later stage. The decoded pixels also give the perceptual hash
    and the canonical window's (unless not `phash`).
    """
    probe = probe_image(data, len(data), max_pixels=max_pixels)
    if probe.status != "ok":
        return probe
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            pixels = to_channels(ImageOps.exif_transpose(img), 3)
            hashed = perceptual_hashes(pixels) if phash else (None, None)
    except Exception as exc:  # noqa: BLE001 - whatever the decoder raises, the object is judged
        return replace(probe, status="corrupt", error=f"cannot decode ({_describe(exc)})")
    return replace(probe, phash=hashed[0], phash_canonical=hashed[1])


def to_channels(img: Image.Image, channels: int, background: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """Convert any CONVERTIBLE_MODES image to L (channels=1) or RGB (channels=3).

    16-bit grayscale is scaled to 8 bits (Pillow's convert would clip it at 255), and
    transparent pixels are composited onto `background` (RGB; black by default, so that they
    read as "nothing here").
    """
    target = "L" if channels == 1 else "RGB"
    if img.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(img, dtype=np.int64).clip(0, 65535)
        img = Image.fromarray(((values + 128) // 257).astype(np.uint8), mode="L")
    elif img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        scale = 255.0 if np.nanmax(values, initial=0.0) <= 1.0 else 1.0
        img = Image.fromarray(np.nan_to_num(values * scale).clip(0, 255).round().astype(np.uint8), mode="L")
    elif img.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (*background, 255)), rgba)
    return img if img.mode == target else img.convert(target)


def check_decode_options(background: str, fit: str) -> tuple[int, int, int]:
    """The RGB colour of `background`, after checking both options.

    Raises:
        ValueError: a background or a fit that `config.ModelConfig` would not take.
    """
    if fit not in FITS:
        raise ValueError(f"fit={fit!r} is invalid: expected one of {', '.join(FITS)}")
    return background_rgb(background)


def _square(img: Image.Image, fit: str, background: tuple[int, int, int]) -> Image.Image:
    """The centre square of `img` ("crop"), or `img` centred on a square of `background` ("pad")."""
    width, height = img.size
    if width == height:
        return img
    if fit == "crop":  # crop before the resize: a resize box would blend in pixels beyond it
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return img.crop((left, top, left + side, top + side))
    side = max(width, height)
    # the colour as the image's mode has it (for L, what Pillow's convert makes of it)
    square = Image.new("RGB", (side, side), background).convert(img.mode)
    square.paste(img, ((side - width) // 2, (side - height) // 2))
    return square


def decode_image(data: bytes, image_size: int, channels: int, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 background: str = DEFAULT_BACKGROUND, fit: str = DEFAULT_FIT) -> np.ndarray:
    """Decode a whole encoded image to an (image_size, image_size, channels) uint8 array.

    The scan's rules come first (`probe_image`); then EXIF orientation is applied, the mode
    converted (`to_channels`, transparency onto `background`), the image made square (`fit`:
    "crop" keeps the centre square, "pad" pads the short side with `background`, centred) and
    resized. JPEGs are decoded at a reduced DCT scale (`draft`) when the image is at least twice
    the target size. `background` and `fit` are `config.ModelConfig`'s.

    Raises:
        ImageRejected: the image breaks a scan rule or fails to decode; `status` says which.
    """
    return decode_hashed(data, image_size, channels, max_pixels=max_pixels, background=background, fit=fit,
                         phash=False)[0]


def decode_hashed(
    data: bytes, image_size: int, channels: int, *, max_pixels: int = DEFAULT_MAX_PIXELS,
    background: str = DEFAULT_BACKGROUND, fit: str = DEFAULT_FIT, phash: bool = True,
) -> tuple[np.ndarray, int | None]:
    """`decode_image`'s pixels and, with `phash`, the perceptual hash of the whole upright image
    (before it is made square, so a copy cropped otherwise still hashes near it).

    Raises:
        ImageRejected: as `decode_image`.
    """
    colour = check_decode_options(background, fit)
    probe = probe_image(data, len(data), max_pixels=max_pixels)
    if probe.status != "ok":
        raise ImageRejected(probe.status, probe.error)
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format in ("JPEG", "MPO"):
                img.draft("L" if channels == 1 else "RGB", (image_size, image_size))
            upright = ImageOps.exif_transpose(img)
            pixels = to_channels(upright, channels, colour)
            hashed = perceptual_hash(pixels) if phash else None
            pixels = _square(pixels, fit, colour)
            # reducing_gap: integer-factor reduction first, then a fair resample; ~identical
            # output for a fraction of the cost on large sources (Pillow's Image.resize docs).
            pixels = pixels.resize((image_size, image_size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            array = np.asarray(pixels, dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - damage past the header shows only when decoding
        raise ImageRejected("corrupt", f"cannot decode ({_describe(exc)})") from exc
    return array.reshape(image_size, image_size, channels), hashed
