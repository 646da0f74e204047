"""The decoded training cache.

A dataset is decoded once into a uint8 tensor (N, C, S, S); training then only indexes it. The
cache is held in memory when it fits in `max_memory_bytes`; otherwise it is a local
memory-mapped file keyed by the data fingerprint, image size and channels, which later runs
reuse without reading a single store object.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from gan_augment.config import DEFAULT_BACKGROUND, DEFAULT_FIT
from gan_augment.io.fsio import atomic_write_bytes, concurrent_fs, parallel_map, redact_url
from gan_augment.io.parquet import table_rows
from gan_augment.io.tables import read_manifest
from gan_augment.scan.decoding import DecodedImage, chunk_size, decode_objects
from gan_augment.scan.images import DEFAULT_MAX_PIXELS, check_decode_options
from gan_augment.scan.isolation import DEFAULT_MAX_SECONDS
from gan_augment.scan.listing import ImageObject, list_images
from gan_augment.scan.manifest import apply_verdicts
from gan_augment.scan.objects import DEFAULT_MAX_BYTES
from gan_augment.scan.writeback import decode_failures, record_decode_failures

if TYPE_CHECKING:
    from torch import Tensor

log = logging.getLogger(__name__)

# Above this many bytes of decoded pixels, the cache is a memory-mapped file instead.
DEFAULT_MAX_MEMORY_BYTES = 2 << 30
# Bump when decoding changes what a cache file holds, so that old files are not reused
# (2: the sidecar holds each row's perceptual hash).
CACHE_FORMAT = 2


def default_cache_dir() -> str:
    """$GAN_AUGMENT_CACHE_DIR, else $XDG_CACHE_HOME/gan-augment (~/.cache/gan-augment)."""
    if os.environ.get("GAN_AUGMENT_CACHE_DIR"):
        return os.environ["GAN_AUGMENT_CACHE_DIR"]
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gan-augment")


@dataclass
class ImageCache:
    """Decoded images of one dataset.

    Attributes:
        images: (N, C, S, S) uint8 tensor (backed by a memory-mapped file when `path` is set).
        uris: the source object of each row.
        fingerprint: `data_fingerprint` of the objects used; equal fingerprints mean the same data.
        skipped: URIs left out, with the reason ("<manifest status>: <why>").
        path: the memory-mapped cache file, or None when the cache is in memory.
        phashes: the perceptual hash of each row's whole image (`phash.perceptual_hash`),
            computed by the same decode.
    """

    images: Tensor
    uris: list[str]
    fingerprint: str
    skipped: dict[str, str]
    path: str | None = None
    phashes: list[int | None] | None = None

    def __len__(self) -> int:
        return self.images.shape[0]


def data_fingerprint(objects: Iterable[ImageObject]) -> str:
    """SHA-256 of the (uri, size, change token) of `objects` in uri order: stable while the
    data is unchanged, different as soon as an object is added, removed or rewritten."""
    digest = hashlib.sha256()
    for obj in sorted(objects, key=lambda o: o.uri):
        digest.update(f"{obj.uri}\0{obj.size}\0{obj.version}\n".encode())
    return digest.hexdigest()


def iter_images(
    source: str,
    image_size: int,
    channels: int,
    storage_options: dict[str, Any] | None = None,
    *,
    objects: Sequence[ImageObject] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_workers: int | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    background: str = DEFAULT_BACKGROUND,
    fit: str = DEFAULT_FIT,
) -> Iterator[DecodedImage]:
    """Read and decode every image of a dataset in parallel, yielding them in listing order.

    The streaming counterpart of `build_cache` for stores too large to hold decoded: only a
    few batches of images are in memory at a time. Bad objects are yielded too, with
    `pixels=None` and the reason, judged by the scan's rules (`images.decode_image`).

    Args:
        source: the dataset's folder/prefix (any fsspec URL).
        image_size, channels: the output size and 1 (L) or 3 (RGB).
        storage_options: fsspec options for `source`.
        objects: the objects to decode (default: `listing.list_images(source)`).
        max_pixels: larger images are rejected as `too_large`.
        max_workers: objects in flight at once.
        max_seconds: the most one object's decode may take (it is then `too_slow`); None
            decodes in this process without a limit.
        background, fit: transparency's colour and how a non-square image becomes square
            (`ModelConfig.background`, `ModelConfig.fit`).
    """
    objects = list_images(source, storage_options) if objects is None else objects
    for _, decoded in _decode_objects(source, objects, image_size, channels, storage_options, max_pixels,
                                      max_workers, max_seconds, ordered=True, background=background, fit=fit):
        yield decoded


def _decode_objects(
    source: str, objects: Sequence[ImageObject], image_size: int, channels: int,
    storage_options: dict[str, Any] | None, max_pixels: int, max_workers: int | None, max_seconds: float | None,
    ordered: bool, background: str, fit: str,
) -> Iterator[tuple[int, DecodedImage]]:
    """(index, decoded) of each object, read by a pool of threads a chunk at a time, each chunk
    decoded in one worker process (`decoding.decode_objects`)."""
    fs, workers = concurrent_fs(source, storage_options, max_workers)
    size = chunk_size(len(objects), workers)
    starts = range(0, len(objects), size)
    chunks = parallel_map(
        lambda start: decode_objects(fs, objects[start:start + size], image_size, channels, max_pixels,
                                     DEFAULT_MAX_BYTES, max_seconds, background=background, fit=fit),
        starts, max_workers=workers, ordered=ordered, progress=f"decode {redact_url(source)}",
        counts=[min(size, len(objects) - start) for start in starts])
    for chunk, decoded in chunks:
        for offset, image in enumerate(decoded):
            yield starts[chunk] + offset, image


# -- the cache --------------------------------------------------------------------------------


def _manifest_rows(
    manifest: str | pa.Table | None, storage_options: dict[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Manifest rows by uri; a manifest URL with nothing behind it gives none."""
    if manifest is None:
        return {}
    if isinstance(manifest, str):
        try:
            manifest = read_manifest(manifest, storage_options)
        except FileNotFoundError:
            return {}
    return {row["uri"]: row for row in table_rows(manifest)}


def _as_tensor(array: np.ndarray) -> Tensor:
    # torch is imported here rather than at the top: the scan stage, and `gan-augment scan`,
    # never load it; only the tensor that training reads is made with it.
    import torch

    return torch.from_numpy(array)


def _cache_paths(cache_dir: str, key: str) -> tuple[str, str]:
    return os.path.join(cache_dir, f"{key}.u8"), os.path.join(cache_dir, f"{key}.json")


def _open_mapped(cache_dir: str, key: str) -> ImageCache | None:
    """The finished cache file for `key`, or None. The JSON sidecar is written last, so a
    cache whose build was interrupted is never mistaken for a finished one."""
    data_path, meta_path = _cache_paths(cache_dir, key)
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        shape = tuple(meta["shape"])
        if meta["format"] != CACHE_FORMAT or os.path.getsize(data_path) != int(np.prod(shape)):
            return None
    except (OSError, ValueError, KeyError):
        return None
    # Copy-on-write: writable as torch.from_numpy wants, while the file itself never changes.
    images = np.memmap(data_path, dtype=np.uint8, mode="c", shape=shape)  # (N, C, S, S)
    return ImageCache(_as_tensor(images), meta["uris"], meta["fingerprint"], meta["skipped"], data_path,
                      meta["phashes"])


def _commit_mapped(tmp_path: str, count: int, cache_dir: str, key: str, meta: dict[str, Any]) -> ImageCache:
    """Cut the file being built to its `count` kept rows, move it into place, then write its sidecar."""
    data_path, meta_path = _cache_paths(cache_dir, key)
    os.truncate(tmp_path, int(np.prod(meta["shape"])))
    os.replace(tmp_path, data_path)
    atomic_write_bytes(meta_path, json.dumps(meta).encode())
    cache = _open_mapped(cache_dir, key)
    assert cache is not None and len(cache) == count, "a cache file just written must open"
    return cache


def _without_near_duplicates(candidates: list[ImageObject], near_duplicates: Mapping[str, str],
                             skipped: dict[str, str]) -> list[ImageObject]:
    """`candidates` less the near-copies whose original is among them (recorded in `skipped`)."""
    listed = {obj.uri for obj in candidates}
    kept = []
    for obj in candidates:
        original = near_duplicates.get(obj.uri)
        if original is not None and original in listed and original != obj.uri:
            skipped[obj.uri] = f"near_duplicate: a near-copy of {original}"
        else:
            kept.append(obj)
    return kept


def build_cache(
    source: str,
    image_size: int,
    channels: int,
    storage_options: dict[str, Any] | None = None,
    *,
    manifest: str | pa.Table | None = None,
    cache_dir: str | None = None,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_workers: int | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    found_in: str = "training",
    background: str = DEFAULT_BACKGROUND,
    fit: str = DEFAULT_FIT,
    near_duplicates: Mapping[str, str] | None = None,
) -> ImageCache:
    """Read and decode every image under `source` once, in parallel, into an ImageCache.

    Objects are judged by the scan's rules: bad ones and later copies of an identical object
    are left out and recorded in `skipped`, never fatal. A manifest (from `scan_store`) saves
    reading objects it already rejected; objects it does not know are judged on the fly. An
    object the manifest calls `ok` that fails to decode is written back into it (given as a
    URL), with the reason and `found_in`, so that the manifest's `ok` means decodable.

    Args:
        source: the dataset's folder/prefix (any fsspec URL).
        image_size, channels: the training size and 1 (L) or 3 (RGB).
        storage_options: fsspec options for `source` (and `manifest`).
        manifest: a manifest table or URL; a URL with nothing behind it is ignored.
        cache_dir: local folder for memory-mapped caches (default: `default_cache_dir()`).
        max_memory_bytes: decoded data above this size goes to a memory-mapped file, which
            later runs on the same data, size, channels, background and fit reuse without reading
            the store.
        max_pixels: larger images are left out as `too_large`.
        max_workers: objects in flight at once.
        max_seconds: the most one object's decode may take (it is then `too_slow`).
        found_in: the stage recorded with decode failures written back ("training", "features").
        background, fit: transparency's colour and how a non-square image becomes square
            (`ModelConfig.background`, `ModelConfig.fit`; pass `**model_config.decode_options`).
        near_duplicates: {uri: the uri it is a near-copy of} (`near_duplicates.parquet`); such an
            image is left out, as "near_duplicate", while the one it copies is still in.

    Raises:
        FileNotFoundError: no images under `source`.
        ValueError: no image could be decoded.
    """
    objects = list_images(source, storage_options)
    candidates, skipped = apply_verdicts(objects, _manifest_rows(manifest, storage_options))
    if near_duplicates:
        candidates = _without_near_duplicates(candidates, near_duplicates, skipped)
    if not candidates:
        raise ValueError(f"none of the {len(objects)} images under {redact_url(source)} is usable: "
                         f"the manifest marks them all bad ({next(iter(skipped.values()))})")
    shape = (len(candidates), channels, image_size, image_size)
    check_decode_options(background, fit)  # before any read: a typo must not reject every image
    # The memory-mapped file's name: the same data and decode options find the same file.
    key = f"{data_fingerprint(candidates)}\0{image_size}\0{channels}\0{background}\0{fit}\0{CACHE_FORMAT}"
    key = hashlib.sha256(key.encode()).hexdigest()[:32]
    mapped = int(np.prod(shape)) > max_memory_bytes
    if mapped:
        cache_dir = cache_dir or default_cache_dir()
        cached = _open_mapped(cache_dir, key)
        if cached is not None:
            log.info("reusing the decoded cache %s", cached.path)
            if isinstance(manifest, str):  # a manifest written since this cache file still learns
                record_decode_failures(manifest, decode_failures(candidates, cached.skipped), found_in,
                                       storage_options)
            return dataclasses.replace(cached, skipped={**skipped, **cached.skipped})
        os.makedirs(cache_dir, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-", suffix=".u8")
        os.close(fd)
        array = np.memmap(tmp_path, dtype=np.uint8, mode="w+", shape=shape)  # (N, C, S, S)
    else:
        array = np.empty(shape, dtype=np.uint8)  # (N, C, S, S)
    try:
        hashes: dict[str, str | None] = {}
        phashes: dict[int, int | None] = {}
        kept = _decode_into(array, source, candidates, skipped, hashes, phashes, storage_options, max_pixels,
                            max_workers, max_seconds, background, fit)
        if isinstance(manifest, str):
            record_decode_failures(manifest, decode_failures(candidates, skipped, hashes), found_in, storage_options)
        if not kept:
            raise ValueError(f"none of the {len(objects)} images under {redact_url(source)} could be decoded "
                             f"({next(iter(skipped.values()))})")
        for row, index in enumerate(kept):  # compact in place: rows only move towards the front
            if row != index:
                array[row] = array[index]
        if skipped:
            log.warning("left out %d of %d objects under %s (bad or duplicate); see the cache's skipped",
                        len(skipped), len(objects), redact_url(source))
        used = [candidates[index] for index in kept]
        fingerprint = data_fingerprint(used)
        kept_phashes = [phashes.get(index) for index in kept]
        if not mapped:
            return ImageCache(_as_tensor(array[:len(kept)]), [obj.uri for obj in used], fingerprint, skipped,
                              phashes=kept_phashes)
        array.flush()
        del array
        meta = {"format": CACHE_FORMAT, "shape": [len(kept), *shape[1:]], "fingerprint": fingerprint,
                "uris": [obj.uri for obj in used], "skipped": skipped, "phashes": kept_phashes}
        return _commit_mapped(tmp_path, len(kept), cache_dir, key, meta)
    finally:
        if mapped and os.path.exists(tmp_path):
            os.unlink(tmp_path)


def _decode_into(
    array: np.ndarray, source: str, objects: Sequence[ImageObject], skipped: dict[str, str],
    failed_hashes: dict[str, str | None], phashes: dict[int, int | None], storage_options: dict[str, Any] | None,
    max_pixels: int, max_workers: int | None, max_seconds: float | None, background: str, fit: str,
) -> list[int]:
    """Decode `objects` into the rows of `array` (N, C, S, S) with the same index; return the
    indices kept, in order. Rejected objects (their content hashes to `failed_hashes`), and
    copies of an object with a lower index, go to `skipped` (the first copy by uri stays, as
    in the manifest); each decoded image's perceptual hash goes to `phashes` by index."""
    _, channels, image_size, _ = array.shape
    hashes: dict[int, str | None] = {}
    for index, decoded in _decode_objects(source, objects, image_size, channels, storage_options, max_pixels,
                                          max_workers, max_seconds, ordered=False, background=background, fit=fit):
        if decoded.pixels is None:
            skipped[decoded.uri] = decoded.reason or "rejected"
            failed_hashes[decoded.uri] = decoded.content_hash
        else:
            array[index] = decoded.pixels.transpose(2, 0, 1)  # (S, S, C) -> (C, S, S)
            hashes[index] = decoded.content_hash
            phashes[index] = decoded.phash
    kept, first_of = [], {}
    for index in sorted(hashes):
        first = first_of.setdefault(hashes[index], index)
        if first == index:
            kept.append(index)
        else:
            skipped[objects[index].uri] = f"duplicate: same content as {objects[first].uri}"
    return kept
