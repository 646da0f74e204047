"""Candidate images read again for the pixel comparison of `curate.copies`: grey thumbnails of
their centre squares, decoded by the scan's rules and time limit (`scan.decoding.decode_objects`).
An image that cannot be read or decoded is reported with its reason, never raised: it is no copy
of anything, and the search goes on without it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gan_augment.curate.copies import THUMBNAIL_SIDE
from gan_augment.io.fsio import concurrent_fs, get_fs, parallel_map, redact_url
from gan_augment.scan.decoding import chunk_size, decode_objects
from gan_augment.scan.images import DEFAULT_MAX_PIXELS
from gan_augment.scan.isolation import DEFAULT_MAX_SECONDS
from gan_augment.scan.listing import ImageObject
from gan_augment.scan.objects import DEFAULT_MAX_BYTES


def read_thumbnails(
    uris: Sequence[str], sizes: dict[str, int], storage_options: dict[str, Any] | None = None, *,
    max_seconds: float | None = DEFAULT_MAX_SECONDS, max_workers: int | None = None,
) -> tuple[np.ndarray, dict[str, str]]:
    """Grey thumbnails of `uris` (the centre square, `THUMBNAIL_SIDE` pixels) and why some could not be made.

    Args:
        uris: the images.
        sizes: {uri: bytes} from the manifest; an image without one is asked for its size.
        storage_options: fsspec options.
        max_seconds: the most one decode may take (`isolation.run_limited`); None decodes in
            the reading threads without a limit.
        max_workers: concurrent reads (default `fsio.default_workers`).

    Returns:
        (len(uris), THUMBNAIL_SIDE, THUMBNAIL_SIDE) uint8 thumbnails (zeros where none could be made) and
        {uri: "<status>: <why>"} for those.
    """
    thumbnails = np.zeros((len(uris), THUMBNAIL_SIDE, THUMBNAIL_SIDE), np.uint8)
    failed: dict[str, str] = {}
    if not uris:
        return thumbnails, failed
    _, workers = concurrent_fs(uris[0], storage_options, max_workers)

    def decode_batch(rows: range) -> list[tuple[int, np.ndarray | None, str | None]]:
        done, listed = [], {}
        for row in rows:
            try:
                fs, path = get_fs(uris[row], storage_options)
                size = sizes[uris[row]] if sizes.get(uris[row]) is not None else fs.size(path)
            except Exception as exc:  # noqa: BLE001 - an image that cannot be read is no copy, never an error
                done.append((row, None, f"unreadable: {type(exc).__name__}: {redact_url(str(exc))}"))
                continue
            listed.setdefault(fs, []).append((row, ImageObject(uris[row], size, "", path)))
        for fs, objs in listed.items():  # one filesystem in practice: a dataset's images
            decoded = decode_objects(fs, [obj for _, obj in objs], THUMBNAIL_SIDE, 1, DEFAULT_MAX_PIXELS,
                                     DEFAULT_MAX_BYTES, max_seconds, fit="crop", phash=False)  # hashed in the scan
            done += [(row, image.pixels, image.reason) for (row, _), image in zip(objs, decoded, strict=True)]
        return done

    # A few batches of images per reading thread, each decoded in one worker process: a task per
    # small image had cost the pool's bookkeeping about 25 us beside a decode of 150 us (local
    # 64 x 64 images), and a worker call per image more than the decode.
    size = chunk_size(len(uris), workers)
    batches = [range(start, min(start + size, len(uris))) for start in range(0, len(uris), size)]
    for _, decoded in parallel_map(decode_batch, batches, max_workers=workers):
        for row, pixels, reason in decoded:
            if pixels is None:
                failed[uris[row]] = reason or "unreadable"
            else:
                thumbnails[row] = pixels[..., 0]
    return thumbnails, failed
