"""Reading one object of a store: probing it for the scan (a whole read for small objects,
header and tail range reads for big ones), hashing it. Objects decoded a chunk at a time (the
verifying scan, the training cache) are `scan.decoding`'s.

Errors that outlast the retries (`fsio.retry`) are recorded in the result, never raised.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import fsspec

from gan_augment.io.fsio import redact_url, retry
from gan_augment.scan.images import DEFAULT_MAX_PIXELS, TAIL_BYTES, Probe, probe_image, verify_image
from gan_augment.scan.isolation import DEFAULT_MAX_SECONDS, CallTimedOut, WorkerDied, run_limited
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
        verify: read every object up to max_bytes whole and decode all its pixels
            (`images.verify_image`), so that `ok` is known to decode, not only to have a sound header.
        max_seconds: the most one object's probe or decode may take (it then is `too_slow`);
            None runs them in the calling thread without a limit.
        phash: with `verify`, also the perceptual hashes of each decoded image, of the whole
            and of its canonical window (near-duplicates); False verifies only (both cost a
            verifying scan of 48x48 images 68% more CPU, BENCHMARKS.md, "What the perceptual
            hash costs a scan"; 51% on 64x64 images, "Near-duplicates").
    """

    head_bytes: int = DEFAULT_HEAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    hash_contents: bool = False
    verify: bool = False
    max_seconds: float | None = DEFAULT_MAX_SECONDS
    phash: bool = True

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


class ProbeOutcome(NamedTuple):
    """The verdict on one object, its content hash when it was read whole, and the seconds
    its judging computed for (the reads not included)."""

    probe: Probe
    content_hash: str | None
    seconds: float


def judge_limited(fn: Callable[..., Probe], *args: Any, max_seconds: float | None, **kwargs: Any) -> tuple[Probe, float]:
    """`fn(*args, **kwargs)` (a probe or a verification of bytes) under the per-object time
    limit (`isolation.run_limited`); a decoder that spins or dies gives a verdict, not an error."""
    try:
        timed = run_limited(fn, *args, max_seconds=max_seconds, **kwargs)
    except (CallTimedOut, WorkerDied) as exc:
        return lost_verdict(exc, max_seconds)
    return timed.value, timed.seconds


def lost_verdict(exc: CallTimedOut | WorkerDied, max_seconds: float | None) -> tuple[Probe, float]:
    """The verdict on an object whose judging spun past the limit or killed its worker."""
    if isinstance(exc, CallTimedOut):
        return Probe("too_slow", f"judging it took longer than the per-object limit of {max_seconds:g} s "
                     "(a decoder spinning on crafted data)"), float(max_seconds or 0)
    return Probe("corrupt", f"the decoder crashed on it ({exc})"), 0.0


def _probe_header(data: bytes, size: int, tail: bytes | None, rules: dict[str, Any]) -> tuple[Probe, float]:
    """`probe_image` in this thread: it parses headers and walks PNG chunks without inflating
    pixels, so its work is bounded by the bytes read, and no decoder can spin in it. Worker
    processes would make a header scan about twice as slow (BENCHMARKS.md, "A hostile store");
    the time limit is kept for what decodes pixels (`verify_image`, `decode_image`)."""
    return judge_limited(probe_image, data, size, tail=tail, max_pixels=rules["max_pixels"],
                         max_bytes=rules["max_bytes"], max_seconds=None)


def probe_object(fs: fsspec.AbstractFileSystem, obj: ImageObject, limits: ScanLimits) -> ProbeOutcome | None:
    """The verdict on one object; None when the object vanished since it was listed. Read
    errors that outlast the retries are recorded."""
    rules = dict(max_pixels=limits.max_pixels, max_bytes=limits.max_bytes, max_seconds=limits.max_seconds,
                 phash=limits.phash)
    try:
        if obj.size == 0:
            return ProbeOutcome(probe_image(b"", 0), None, 0.0)
        reads_whole = limits.hash_contents or limits.verify
        if obj.size <= limits.head_bytes or (reads_whole and obj.size <= limits.max_bytes):
            data = read_object(fs, obj)
            return _whole(verify_image if limits.verify else probe_image, data, rules)
        tail = read_object(fs, obj, max(0, obj.size - TAIL_BYTES))
        limit, spent = limits.head_bytes, 0.0
        while True:
            data = read_object(fs, obj, 0, min(limit, obj.size))
            probe, seconds = _probe_header(data, obj.size, tail, rules)
            spent += seconds
            if not probe.incomplete:
                return ProbeOutcome(probe, md5_hash(data) if len(data) >= obj.size else None, spent)
            # A header past the first bytes (a big EXIF/ICC block, a TIFF directory at the end):
            # read 64 times more, then the whole object if that is allowed.
            limit *= 64
            if limit >= obj.size and obj.size > limits.max_bytes:
                return ProbeOutcome(Probe("too_large", f"no complete header in the first {limit // 64} bytes, and "
                                          f"the object exceeds the {limits.max_bytes}-byte limit",
                                          format=probe.format), None, spent)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - a permanent error on one object is recorded, not raised
        return ProbeOutcome(Probe("unreadable", f"read failed: {type(exc).__name__}: {redact_url(str(exc))}"),
                            None, 0.0)


def within_bytes(probe: Probe, size: int, max_bytes: int) -> Probe:
    """A verified object's verdict: `too_large` when it decoded but has more than `max_bytes` bytes."""
    if probe.status == "ok" and size > max_bytes:
        return Probe("too_large", f"{size} bytes exceed the limit of {max_bytes}",
                     probe.format, probe.mode, probe.width, probe.height)
    return probe


def _whole(fn: Callable[..., Probe], data: bytes, rules: dict[str, Any]) -> ProbeOutcome:
    """Judge an object read whole: `probe_image` (header and structure) or `verify_image` (every pixel)."""
    if fn is verify_image:
        probe, seconds = judge_limited(verify_image, data, max_pixels=rules["max_pixels"],
                                       phash=rules["phash"], max_seconds=rules["max_seconds"])
        probe = within_bytes(probe, len(data), rules["max_bytes"])
    else:
        probe, seconds = _probe_header(data, len(data), None, rules)
    return ProbeOutcome(probe, md5_hash(data), seconds)


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
