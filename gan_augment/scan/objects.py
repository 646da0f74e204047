"""Reading one object of a store: probing it for the scan (a whole read for small objects,
header and tail range reads for big ones), hashing it, decoding it for the training cache.

Errors that outlast the retries (`fsio.retry`) are recorded in the result, never raised.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import fsspec
import numpy as np

from gan_augment.config import DEFAULT_BACKGROUND, DEFAULT_FIT
from gan_augment.io.fsio import redact_url, retry
from gan_augment.scan.images import (
    DEFAULT_MAX_PIXELS,
    TAIL_BYTES,
    ImageRejected,
    Probe,
    decode_hashed,
    probe_image,
    verify_image,
)
from gan_augment.scan.isolation import (
    DEFAULT_MAX_SECONDS,
    CallTimedOut,
    Timed,
    WorkerDied,
    run_limited,
    run_many_limited,
)
from gan_augment.scan.listing import ImageObject

log = logging.getLogger(__name__)

# Small objects are read whole in one request, big ones by header and tail; objects over
# DEFAULT_MAX_BYTES are never downloaded whole.
DEFAULT_HEAD_BYTES = 1 << 16
DEFAULT_MAX_BYTES = 256 << 20
# Objects read whole for a decode are handed to one worker a batch of about this many bytes at
# a time (`probe_objects`, `decode_objects`): it bounds what a reading thread holds.
READ_BATCH_BYTES = 8 << 20
# And at most this many objects per chunk of work (`chunk_size`).
CHUNK_OBJECTS = 32


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
        return _lost_verdict(exc, max_seconds)
    return timed.value, timed.seconds


def _lost_verdict(exc: CallTimedOut | WorkerDied, max_seconds: float | None) -> tuple[Probe, float]:
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


def _whole(fn: Callable[..., Probe], data: bytes, rules: dict[str, Any]) -> ProbeOutcome:
    """Judge an object read whole: `probe_image` (header and structure) or `verify_image` (every pixel)."""
    if fn is verify_image:
        probe, seconds = judge_limited(verify_image, data, max_pixels=rules["max_pixels"],
                                       phash=rules["phash"], max_seconds=rules["max_seconds"])
        if probe.status == "ok" and len(data) > rules["max_bytes"]:
            probe = Probe("too_large", f"{len(data)} bytes exceed the limit of {rules['max_bytes']}",
                          probe.format, probe.mode, probe.width, probe.height)
    else:
        probe, seconds = _probe_header(data, len(data), None, rules)
    return ProbeOutcome(probe, md5_hash(data), seconds)


def probe_objects(fs: fsspec.AbstractFileSystem, objs: Sequence[ImageObject],
                  limits: ScanLimits) -> list[ProbeOutcome | None]:
    """`probe_object` for each of `objs`. Those that a verifying scan reads whole are read here
    and verified a batch at a time in one worker (`isolation.run_many_limited`): one call per
    object had cost more in messages than the decode of a small image."""
    outcomes: list[ProbeOutcome | None] = [None] * len(objs)
    whole = []
    for index, obj in enumerate(objs):
        if limits.verify and 0 < obj.size <= max(limits.head_bytes, limits.max_bytes):
            whole.append((index, obj))
        else:
            outcomes[index] = probe_object(fs, obj, limits)
    for batch in _read_batches(fs, whole):
        read = []
        for index, data in batch:
            if isinstance(data, bytes):
                read.append((index, data))
            elif not isinstance(data, FileNotFoundError):  # vanished since it was listed: None
                outcomes[index] = ProbeOutcome(Probe("unreadable", f"read failed: {type(data).__name__}: "
                                                     f"{redact_url(str(data))}"), None, 0.0)
        verdicts = run_many_limited(verify_image, [(data,) for _, data in read], max_seconds=limits.max_seconds,
                                    max_pixels=limits.max_pixels, phash=limits.phash)
        for (index, data), verdict in zip(read, verdicts, strict=True):
            outcomes[index] = _verified(data, verdict, limits)
    return outcomes


def _verified(data: bytes, verdict: Timed | Exception, limits: ScanLimits) -> ProbeOutcome:
    """The outcome of one object's `verify_image` call, as `probe_object` records it."""
    if isinstance(verdict, (CallTimedOut, WorkerDied)):
        probe, seconds = _lost_verdict(verdict, limits.max_seconds)
    elif isinstance(verdict, Exception):
        probe, seconds = Probe("unreadable", f"read failed: {type(verdict).__name__}: {verdict}"), 0.0
    else:
        probe, seconds = verdict.value, verdict.seconds
    if probe.status == "ok" and len(data) > limits.max_bytes:
        probe = Probe("too_large", f"{len(data)} bytes exceed the limit of {limits.max_bytes}",
                      probe.format, probe.mode, probe.width, probe.height)
    return ProbeOutcome(probe, md5_hash(data), seconds)


def _read_batches(fs: fsspec.AbstractFileSystem,
                  objs: Sequence[tuple[int, ImageObject]]) -> Iterator[list[tuple[int, bytes | Exception]]]:
    """Each (index, object) read whole, in batches of about `READ_BATCH_BYTES` (a larger object
    alone): (index, its bytes or the error that outlasted the retries)."""
    batch: list[tuple[int, bytes | Exception]] = []
    size = 0
    for index, obj in objs:
        try:
            data: bytes | Exception = read_object(fs, obj)
        except Exception as exc:  # noqa: BLE001 - the caller records it
            data = exc
        batch.append((index, data))
        size += len(data) if isinstance(data, bytes) else 0
        if size >= READ_BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def chunk_size(count: int, workers: int) -> int:
    """Objects per chunk when `count` objects are shared among `workers` reading threads, each
    chunk read and decoded by `probe_objects` or `decode_objects`: at most CHUNK_OBJECTS, and
    few enough that every thread gets a few chunks (on S3, a thread reads its chunk's objects
    one after another)."""
    return max(1, min(CHUNK_OBJECTS, -(-count // (4 * workers))))


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
    """One object after decoding: pixels (S, S, C) uint8, or None and the reason it was left
    out ("<manifest status>: <why>"), the seconds its decode computed for, and the perceptual
    hash of the decoded image (`phash.perceptual_hash`)."""

    uri: str
    pixels: np.ndarray | None
    reason: str | None = None
    content_hash: str | None = None
    seconds: float = 0.0
    phash: int | None = None


def decode_object(fs: fsspec.AbstractFileSystem, obj: ImageObject, image_size: int, channels: int,
                  max_pixels: int, max_bytes: int, max_seconds: float | None = DEFAULT_MAX_SECONDS, *,
                  background: str = DEFAULT_BACKGROUND, fit: str = DEFAULT_FIT, phash: bool = True) -> DecodedImage:
    """Read one object whole and decode it (`images.decode_hashed`: pixels with `background` and
    `fit`, and, with `phash`, the perceptual hash) within `max_seconds`; never raises."""
    (decoded,) = decode_objects(fs, [obj], image_size, channels, max_pixels, max_bytes, max_seconds,
                                background=background, fit=fit, phash=phash)
    return decoded


def decode_objects(fs: fsspec.AbstractFileSystem, objs: Sequence[ImageObject], image_size: int, channels: int,
                   max_pixels: int, max_bytes: int, max_seconds: float | None = DEFAULT_MAX_SECONDS, *,
                   background: str = DEFAULT_BACKGROUND, fit: str = DEFAULT_FIT,
                   phash: bool = True) -> list[DecodedImage]:
    """`decode_object` for each of `objs`, read here one after another and decoded together in
    one worker (`isolation.run_many_limited`), each within `max_seconds`."""
    decoded: list[DecodedImage | None] = [None] * len(objs)
    wanted = []
    for index, obj in enumerate(objs):
        if obj.size == 0:  # judged from the listing alone, as the scan does
            decoded[index] = DecodedImage(obj.uri, None, "empty: the object is empty (0 bytes)")
        elif obj.size > max_bytes:
            decoded[index] = DecodedImage(obj.uri, None, f"too_large: {obj.size} bytes exceed the limit of {max_bytes}")
        else:
            wanted.append((index, obj))
    for batch in _read_batches(fs, wanted):
        read = []
        for index, data in batch:
            if isinstance(data, bytes):
                read.append((index, data))
            else:  # a missing or unreadable object is recorded, never fatal
                decoded[index] = DecodedImage(objs[index].uri, None, f"unreadable: {type(data).__name__}: "
                                              f"{redact_url(str(data))}")
        outcomes = run_many_limited(decode_hashed, [(data, image_size, channels) for _, data in read],
                                    max_seconds=max_seconds, max_pixels=max_pixels, background=background, fit=fit,
                                    phash=phash)
        for (index, data), outcome in zip(read, outcomes, strict=True):
            decoded[index] = _decoded(objs[index].uri, md5_hash(data), outcome, max_seconds)
    return decoded  # type: ignore[return-value] - every index was filled


def _decoded(uri: str, content_hash: str, outcome: Timed | Exception, max_seconds: float | None) -> DecodedImage:
    """One object's `DecodedImage` from its decode's outcome; an error that is no verdict on the
    image (a bug, not bad data) is raised."""
    if isinstance(outcome, ImageRejected):
        return DecodedImage(uri, None, str(outcome), content_hash)
    if isinstance(outcome, CallTimedOut):
        return DecodedImage(uri, None, f"too_slow: decoding took longer than the per-object limit of "
                            f"{max_seconds:g} s (a decoder spinning on crafted data)", content_hash, float(max_seconds))
    if isinstance(outcome, WorkerDied):
        return DecodedImage(uri, None, f"corrupt: the decoder crashed on it ({outcome})", content_hash)
    if isinstance(outcome, Exception):
        raise outcome
    pixels, phash = outcome.value
    return DecodedImage(uri, pixels, None, content_hash, outcome.seconds, phash)
