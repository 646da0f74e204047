"""Reading one object of a store: probing it for the scan (a whole read for small objects,
header and tail range reads for big ones), hashing it, decoding it for the training cache.

Errors that outlast the retries (`fsio.retry`) are recorded in the result, never raised.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np

from gan_augment.io.fsio import redact_url, retry
from gan_augment.scan.images import DEFAULT_MAX_PIXELS, TAIL_BYTES, ImageRejected, Probe, decode_image, probe_image
from gan_augment.scan.listing import ImageObject

log = logging.getLogger(__name__)

# Small objects are read whole in one request, big ones by header and tail; objects over
# DEFAULT_MAX_BYTES are never downloaded whole.
DEFAULT_HEAD_BYTES = 1 << 16
DEFAULT_MAX_BYTES = 256 << 20


@dataclass(frozen=True)
class ScanLimits:
    """How a scan reads objects.

    Attributes:
        head_bytes: objects up to this size are read whole in one request (so fully checked
            and hashed); larger ones get a range read of their header and one of their tail.
        max_pixels: larger images are `too_large` (decompression bombs).
        max_bytes: larger objects are `too_large`; their header is probed, nothing downloads them.
        hash_contents: read every object up to max_bytes whole, to record its content hash.
    """

    head_bytes: int = DEFAULT_HEAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    hash_contents: bool = False

    def manifest_config(self) -> dict[str, Any]:
        """What a reused manifest row depends on: another limit means another verdict."""
        return {"max_pixels": self.max_pixels, "max_bytes": self.max_bytes}


def md5_hash(data: bytes) -> str:
    """The content hash used for duplicates: MD5, the same digest as a single-part S3 ETag."""
    return "md5:" + hashlib.md5(data, usedforsecurity=False).hexdigest()


def read_object(fs: fsspec.AbstractFileSystem, obj: ImageObject, start: int = 0, end: int | None = None) -> bytes:
    """Bytes [start, end) of an object (default: all of it), retried on transient errors.

    Always a range read: for a whole object s3fs would first send a HEAD request to learn its
    size, a second round trip per object, while the listing already gave the size.
    """
    end = obj.size if end is None else end
    return retry(lambda: fs.cat_file(obj.path, start=start, end=end), fs=fs, what=f"read {redact_url(obj.uri)}")


def probe_object(
    fs: fsspec.AbstractFileSystem, obj: ImageObject, limits: ScanLimits
) -> tuple[Probe, str | None] | None:
    """The verdict on one object and its content hash when it was read whole; None when the
    object vanished since it was listed. Read errors that outlast the retries are recorded."""
    rules = dict(max_pixels=limits.max_pixels, max_bytes=limits.max_bytes)
    try:
        if obj.size == 0:
            return probe_image(b"", 0), None
        if obj.size <= limits.head_bytes or (limits.hash_contents and obj.size <= limits.max_bytes):
            data = read_object(fs, obj)
            return probe_image(data, len(data), **rules), md5_hash(data)
        tail = read_object(fs, obj, max(0, obj.size - TAIL_BYTES))
        limit = limits.head_bytes
        while True:
            data = read_object(fs, obj, 0, min(limit, obj.size))
            probe = probe_image(data, obj.size, tail=tail, **rules)
            if not probe.incomplete:
                return probe, md5_hash(data) if len(data) >= obj.size else None
            # A header past the first bytes (a big EXIF/ICC block, a TIFF directory at the end):
            # read 64 times more, then the whole object if that is allowed.
            limit *= 64
            if limit >= obj.size and obj.size > limits.max_bytes:
                return Probe("too_large", f"no complete header in the first {limit // 64} bytes, and the "
                             f"object exceeds the {limits.max_bytes}-byte limit", format=probe.format), None
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - a permanent error on one object is recorded, not raised
        return Probe("unreadable", f"read failed: {type(exc).__name__}: {redact_url(str(exc))}"), None


def hash_object(fs: fsspec.AbstractFileSystem, obj: ImageObject) -> str | None:
    """The MD5 content hash of a whole object, streamed; None when it cannot be read."""
    def stream() -> str:
        digest = hashlib.md5(usedforsecurity=False)
        with fs.open(obj.path, "rb") as f:
            while chunk := f.read(8 << 20):
                digest.update(chunk)
        return "md5:" + digest.hexdigest()

    try:
        return retry(stream, fs=fs, what=f"hash {redact_url(obj.uri)}")
    except Exception as exc:  # noqa: BLE001 - it then only misses duplicate detection
        log.warning("could not hash %s: %s: %s", redact_url(obj.uri), type(exc).__name__, redact_url(str(exc)))
        return None


@dataclass(frozen=True)
class DecodedImage:
    """One object after decoding: pixels (S, S, C) uint8, or None and the reason it was left out."""

    uri: str
    pixels: np.ndarray | None
    reason: str | None = None
    content_hash: str | None = None


def decode_object(fs: fsspec.AbstractFileSystem, obj: ImageObject, image_size: int, channels: int,
                  max_pixels: int, max_bytes: int) -> DecodedImage:
    """Read one object whole and decode it (`images.decode_image`); never raises."""
    if obj.size == 0:  # judged from the listing alone, as the scan does
        return DecodedImage(obj.uri, None, "empty: the object is empty (0 bytes)")
    if obj.size > max_bytes:
        return DecodedImage(obj.uri, None, f"too_large: {obj.size} bytes exceed the limit of {max_bytes}")
    try:
        data = read_object(fs, obj)
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable object is recorded, never fatal
        return DecodedImage(obj.uri, None, f"unreadable: {type(exc).__name__}: {redact_url(str(exc))}")
    try:
        pixels = decode_image(data, image_size, channels, max_pixels=max_pixels)
    except ImageRejected as exc:
        return DecodedImage(obj.uri, None, str(exc), md5_hash(data))
    return DecodedImage(obj.uri, pixels, None, md5_hash(data))
