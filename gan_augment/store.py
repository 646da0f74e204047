"""Image stores on any fsspec filesystem: list datasets and images, decode one image.

A store holds datasets; each first-level folder (prefix) under the store root is one dataset.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from gan_augment.fsio import get_fs, redact_url, retry, to_url

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


def validate_dataset_name(name: str) -> str:
    """Return `name` if it is safe as one path component, else raise ValueError."""
    if not name or name in (".", "..") or ".." in name or _BAD_NAME.search(name):
        raise ValueError(
            f"invalid dataset name {name!r}: use one folder name without '..', path separators "
            "or control characters"
        )
    return name


@dataclass(frozen=True)
class ImageObject:
    """One listed image: its URL, size in bytes and a change token (ETag or mtime)."""

    uri: str
    size: int
    version: str


def _is_image(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def list_images(url: str, storage_options: dict[str, Any] | None = None) -> list[ImageObject]:
    """Every image object below `url`, recursively, sorted by URI.

    Raises:
        FileNotFoundError: `url` does not exist or holds no image.
    """
    fs, root = get_fs(url, storage_options)
    if not retry(lambda: fs.isdir(root), what=f"stat {redact_url(url)}"):
        raise FileNotFoundError(f"no folder or prefix at {redact_url(url)}")
    listing = retry(lambda: fs.find(root, detail=True), what=f"list {redact_url(url)}")
    objects = [
        ImageObject(
            uri=to_url(fs, path),
            size=int(info.get("size") or 0),
            version=str(info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("created") or ""),
        )
        for path, info in sorted(listing.items())
        if info.get("type") != "directory" and _is_image(path)
    ]
    if not objects:
        raise FileNotFoundError(
            f"found no images under {redact_url(url)}; supported extensions: {', '.join(IMG_EXTENSIONS)}"
        )
    return objects


def decode_image(data: bytes, image_size: int, channels: int) -> np.ndarray:
    """Decode encoded image bytes to a (image_size, image_size, channels) uint8 array:
    EXIF orientation applied, converted to L or RGB, resized and centre-cropped."""
    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img)
        img = img.convert("L" if channels == 1 else "RGB")
        img = ImageOps.fit(img, (image_size, image_size), Image.Resampling.BILINEAR)
        array = np.asarray(img, dtype=np.uint8)
    return array.reshape(image_size, image_size, channels)
