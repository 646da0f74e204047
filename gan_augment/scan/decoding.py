"""Objects read whole and decoded a chunk at a time: the verifying scan (`probe_objects`), the
training cache and the near-duplicate search's thumbnails (`decode_objects`).

Each chunk goes to one decoding worker in one message (`isolation.run_many_limited`), every
object under its own time limit: a worker call per small image had cost more in messages than
its decode (BENCHMARKS.md, "Near-duplicates"). A local file is read by the worker itself, so
its bytes never cross the pipe and the scanning process only sends its path: on 1,300 small
images that halved the search's decoding time, 0.12 to 0.06 s. Objects on other filesystems
are read here, by the calling thread (retried, and overlapping other threads' requests), and
their bytes are sent.

Errors that outlast the retries are recorded in the result, never raised.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
from fsspec.implementations.local import LocalFileSystem

from gan_augment.config import DEFAULT_BACKGROUND, DEFAULT_FIT
from gan_augment.io.fsio import redact_url
from gan_augment.scan.images import ImageRejected, Probe, decode_hashed, verify_image
from gan_augment.scan.isolation import DEFAULT_MAX_SECONDS, CallTimedOut, Timed, WorkerDied, run_many_limited
from gan_augment.scan.listing import ImageObject
from gan_augment.scan.objects import (
    ProbeOutcome,
    ScanLimits,
    lost_verdict,
    md5_hash,
    probe_object,
    read_object,
    within_bytes,
)

# A chunk holds at most this many objects (`chunk_size`) and about this many bytes. The message
# per object that chunks save matters for small images only (a large one's decode dwarfs it), and
# the bytes bound what a reading thread holds while it waits for a worker: on S3, 32 threads
# hold about 64 MiB at most (an object larger than a chunk goes alone, as it went before chunks).
CHUNK_OBJECTS = 32
CHUNK_BYTES = 2 << 20
# Local files are read by the decoding worker. Tests that watch reads through fsspec in this
# process turn it off.
LOCAL_READS_IN_WORKERS = True

# What a worker is sent for one object: its bytes, or a local file's (path, listed size).
Source = bytes | tuple[str, int]


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


def chunk_size(count: int, workers: int) -> int:
    """Objects per chunk when `count` objects are shared among `workers` reading threads: at most
    CHUNK_OBJECTS, and few enough that every thread gets a few chunks (on S3, a thread reads its
    chunk's objects one after another)."""
    return max(1, min(CHUNK_OBJECTS, -(-count // (4 * workers))))


def probe_objects(fs: fsspec.AbstractFileSystem, objs: Sequence[ImageObject],
                  limits: ScanLimits) -> list[ProbeOutcome | None]:
    """`objects.probe_object` for each of `objs` (None: it vanished since it was listed). Those
    that a verifying scan reads whole are verified in a decoding worker, a chunk at a time."""
    outcomes: list[ProbeOutcome | None] = [None] * len(objs)
    whole = []
    for index, obj in enumerate(objs):
        if limits.verify and 0 < obj.size <= max(limits.head_bytes, limits.max_bytes):
            whole.append((index, obj))
        else:
            outcomes[index] = probe_object(fs, obj, limits)
    for sources, results in _run_chunks(fs, whole, verify_source, limits.max_seconds, max_pixels=limits.max_pixels,
                                        phash=limits.phash):
        for index, result in results.items():
            if isinstance(result, FileNotFoundError):  # vanished since it was listed: None
                continue
            if isinstance(result, (CallTimedOut, WorkerDied)):
                probe, seconds = lost_verdict(result, limits.max_seconds)
                outcomes[index] = ProbeOutcome(probe, _content_hash(fs, objs[index], sources[index]), seconds)
            elif isinstance(result, Exception):  # a read that failed, here or in the worker
                outcomes[index] = ProbeOutcome(Probe("unreadable", f"read failed: {type(result).__name__}: "
                                                     f"{redact_url(str(result))}"), None, 0.0)
            else:
                outcomes[index] = _verified(result, limits)
    return outcomes


def decode_objects(fs: fsspec.AbstractFileSystem, objs: Sequence[ImageObject], image_size: int, channels: int,
                   max_pixels: int, max_bytes: int, max_seconds: float | None = DEFAULT_MAX_SECONDS, *,
                   background: str = DEFAULT_BACKGROUND, fit: str = DEFAULT_FIT,
                   phash: bool = True) -> list[DecodedImage]:
    """Each of `objs` read whole and decoded (`images.decode_hashed`: pixels with `background`
    and `fit`, and, with `phash`, the perceptual hash), each within `max_seconds`, in a decoding
    worker a chunk at a time; never raises for an object's sake."""
    decoded: list[DecodedImage | None] = [None] * len(objs)
    wanted = []
    for index, obj in enumerate(objs):
        if obj.size == 0:  # judged from the listing alone, as the scan does
            decoded[index] = DecodedImage(obj.uri, None, "empty: the object is empty (0 bytes)")
        elif obj.size > max_bytes:
            decoded[index] = DecodedImage(obj.uri, None, f"too_large: {obj.size} bytes exceed the limit of {max_bytes}")
        else:
            wanted.append((index, obj))
    for sources, results in _run_chunks(fs, wanted, decode_source, max_seconds, image_size=image_size,
                                        channels=channels, max_pixels=max_pixels, background=background, fit=fit,
                                        phash=phash):
        for index, result in results.items():
            decoded[index] = _decoded(fs, objs[index], sources[index], result, max_seconds)
    return decoded  # type: ignore[return-value] - every index was filled


def decode_object(fs: fsspec.AbstractFileSystem, obj: ImageObject, image_size: int, channels: int,
                  max_pixels: int, max_bytes: int, max_seconds: float | None = DEFAULT_MAX_SECONDS, *,
                  background: str = DEFAULT_BACKGROUND, fit: str = DEFAULT_FIT, phash: bool = True) -> DecodedImage:
    """`decode_objects` for one object."""
    (decoded,) = decode_objects(fs, [obj], image_size, channels, max_pixels, max_bytes, max_seconds,
                                background=background, fit=fit, phash=phash)
    return decoded


# -- in the decoding worker -----------------------------------------------------------------


def _load(source: Source) -> bytes:
    """The object's bytes: sent, or read here from a local file (at most its listed size)."""
    if isinstance(source, bytes):
        return source
    path, size = source
    with open(path, "rb") as file:
        return file.read(size)


def verify_source(source: Source, *, max_pixels: int, phash: bool) -> tuple[Probe, str, int]:
    """`images.verify_image` of an object, with its content hash and its size in bytes."""
    data = _load(source)
    return verify_image(data, max_pixels=max_pixels, phash=phash), md5_hash(data), len(data)


def decode_source(source: Source, image_size: int, channels: int,
                  **options: Any) -> tuple[str, np.ndarray | None, int | None, str | None]:
    """(content hash, pixels, perceptual hash, None) of an object (`images.decode_hashed`), or
    (content hash, None, None, "<status>: <why>") when it is rejected."""
    data = _load(source)
    content_hash = md5_hash(data)
    try:
        pixels, hashed = decode_hashed(data, image_size, channels, **options)
    except ImageRejected as exc:
        return content_hash, None, None, str(exc)
    return content_hash, pixels, hashed, None


# -- back in the calling thread -------------------------------------------------------------


def _sources(fs: fsspec.AbstractFileSystem,
             objs: Sequence[tuple[int, ImageObject]]) -> Iterator[list[tuple[int, Source | Exception]]]:
    """(index, what a worker is sent) of each (index, object), in chunks of about CHUNK_BYTES (a
    larger object alone): a local file's path, or the bytes read here, or the error that
    outlasted the retries."""
    local = LOCAL_READS_IN_WORKERS and isinstance(fs, LocalFileSystem)
    chunk: list[tuple[int, Source | Exception]] = []
    size = 0
    for index, obj in objs:
        if local:
            source: Source | Exception = (obj.path, obj.size)
        else:
            try:
                source = read_object(fs, obj)
            except Exception as exc:  # noqa: BLE001 - the caller records it
                source = exc
        chunk.append((index, source))
        size += obj.size
        if size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _run_chunks(fs: fsspec.AbstractFileSystem, objs: Sequence[tuple[int, ImageObject]], fn: Any,
                max_seconds: float | None, **kwargs: Any,
                ) -> Iterator[tuple[dict[int, Source | Exception], dict[int, Timed | Exception]]]:
    """For each chunk of `_sources`: what was sent by index, and by index the outcome of
    `fn(source, **kwargs)` in a worker, or the error of a read that failed here."""
    for chunk in _sources(fs, objs):
        sources = dict(chunk)
        sent = [index for index, source in chunk if not isinstance(source, Exception)]
        results: dict[int, Timed | Exception] = {index: source for index, source in chunk
                                                 if isinstance(source, Exception)}
        results.update(zip(sent, run_many_limited(fn, [(sources[index],) for index in sent],
                                                  max_seconds=max_seconds, **kwargs), strict=True))
        yield sources, results


def _content_hash(fs: fsspec.AbstractFileSystem, obj: ImageObject, source: Source | Exception) -> str | None:
    """The content hash of an object whose decode was lost (it spun or killed its worker): from
    the bytes sent, or read here again (a rare case: reading and hashing bytes is safe)."""
    if isinstance(source, bytes):
        return md5_hash(source)
    try:
        return md5_hash(read_object(fs, obj))
    except Exception:  # noqa: BLE001 - the verdict stands without it
        return None


def _verified(verdict: Timed, limits: ScanLimits) -> ProbeOutcome:
    """The outcome of one object's `verify_source` call, as `probe_object` records it."""
    (probe, content_hash, size), seconds = verdict.value, verdict.seconds
    return ProbeOutcome(within_bytes(probe, size, limits.max_bytes), content_hash, seconds)


def _decoded(fs: fsspec.AbstractFileSystem, obj: ImageObject, source: Source | Exception, result: Timed | Exception,
             max_seconds: float | None) -> DecodedImage:
    """One object's `DecodedImage` from its `decode_source` call or its read's error."""
    if isinstance(result, CallTimedOut):
        return DecodedImage(obj.uri, None, f"too_slow: decoding took longer than the per-object limit of "
                            f"{max_seconds:g} s (a decoder spinning on crafted data)",
                            _content_hash(fs, obj, source), float(max_seconds or 0))
    if isinstance(result, WorkerDied):
        return DecodedImage(obj.uri, None, f"corrupt: the decoder crashed on it ({result})",
                            _content_hash(fs, obj, source))
    if isinstance(result, Exception) and (isinstance(source, Exception) or isinstance(result, OSError)):
        # A missing or unreadable object (its read failed here, or in the worker) is recorded, never fatal.
        return DecodedImage(obj.uri, None, f"unreadable: {type(result).__name__}: {redact_url(str(result))}")
    if isinstance(result, Exception):  # a bug, not bad data
        raise result
    (content_hash, pixels, hashed, reason), seconds = result.value, result.seconds
    if pixels is None:
        return DecodedImage(obj.uri, None, reason, content_hash)
    return DecodedImage(obj.uri, pixels, None, content_hash, seconds, hashed)
