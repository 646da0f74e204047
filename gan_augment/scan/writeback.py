"""Decode failures found after the scan go back into the dataset's manifest.

A scan judges most objects by their header; damage past it shows only when every pixel is
decoded, by the training cache or a features export. Those stages record what failed here,
with the reason and where it was found, so that a manifest's `ok` never claims more than the
pipeline knows, and the next scan keeps the verdict while the object is unchanged
(`manifest.keep_decode_verdicts`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from gan_augment.io.fsio import redact_url
from gan_augment.io.parquet import read_gan_augment_metadata, table_rows
from gan_augment.io.tables import read_manifest, write_manifest
from gan_augment.scan.listing import ImageObject
from gan_augment.scan.manifest import DECODE_VERDICTS, DecodeFailure, apply_decode_failures

log = logging.getLogger(__name__)


def decode_failures(
    objects: Sequence[ImageObject], skipped: Mapping[str, str], hashes: Mapping[str, str | None] | None = None
) -> dict[str, DecodeFailure]:
    """The decode failures among `skipped` (uri -> "<status>: <why>", as `ImageCache.skipped`
    holds them) of `objects`; limits, duplicates and read errors are left out."""
    failures = {}
    for obj in objects:
        status, _, reason = skipped.get(obj.uri, "").partition(": ")
        if status in DECODE_VERDICTS:
            failures[obj.uri] = DecodeFailure(status, reason, obj.size, obj.version, (hashes or {}).get(obj.uri))
    return failures


def record_decode_failures(
    manifest_url: str,
    failures: Mapping[str, DecodeFailure],
    found_in: str,
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """Mark the manifest rows of objects that failed to decode, atomically; returns their uris.

    The manifest is read again just before it is rewritten, its scan limits kept, and it is
    written only when a row changes (a second stage finding the same failure writes nothing).
    A missing or unreadable manifest is left alone: there is nothing to correct.

    Args:
        manifest_url: the dataset's `manifest.parquet`.
        failures: {uri: the failure} (see `decode_failures`).
        found_in: the stage that found them ("training", "features", ...), recorded per row.
        storage_options: fsspec options for `manifest_url`.
    """
    if not failures:
        return []
    try:
        table = read_manifest(manifest_url, storage_options)
    except (FileNotFoundError, ValueError) as exc:
        log.debug("no manifest to record decode failures in (%s)", exc)
        return []
    rows = table_rows(table)
    changed = apply_decode_failures(rows, failures, found_in, datetime.now(timezone.utc))
    if not changed:
        return []
    metadata = read_gan_augment_metadata(table.schema)
    try:
        write_manifest(manifest_url, rows, metadata.get("dataset") or rows[0]["dataset"], storage_options,
                       config=metadata.get("config"))
    except Exception as exc:  # noqa: BLE001 - the stage goes on; the next one that decodes tries again
        log.error("could not record %d decode failures in %s (%s: %s); the manifest still calls them ok",
                  len(changed), redact_url(manifest_url), type(exc).__name__, redact_url(str(exc)))
        return []
    log.warning("%d objects that the manifest called ok do not decode; recorded in %s (found in %s)",
                    len(changed), redact_url(manifest_url), found_in)
    return changed
