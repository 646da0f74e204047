"""Image stores on any fsspec filesystem: list datasets, probe every object, write manifests.

A store holds datasets; each first-level folder (prefix) under the store root is one dataset.
`scan_store` lists them, reads each image object's header (a range read, or the whole object
when it is small), records its verdict in `<out>/<dataset>/manifest.parquet` and, given the
previous manifest, reads only what changed since.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import fsspec
import pyarrow as pa

from gan_augment.io.fsio import concurrent_fs, parallel_map, redact_url
from gan_augment.io.tables import manifest_table, read_manifest, write_manifest
from gan_augment.layout import manifest_url
from gan_augment.scan.images import DEFAULT_MAX_PIXELS
from gan_augment.scan.isolation import DEFAULT_MAX_SECONDS
from gan_augment.scan.manifest import (
    DatasetScan,
    ScanResult,
    keep_decode_verdicts,
    mark_duplicates,
    new_row,
    plan_scan,
    rows_to_hash,
    same_limits,
)
from gan_augment.scan.objects import DEFAULT_HEAD_BYTES, DEFAULT_MAX_BYTES, ScanLimits, hash_object, probe_object

log = logging.getLogger(__name__)

from gan_augment.scan.listing import ImageObject, list_store

# -- the scan ---------------------------------------------------------------------------------


def _previous_manifests(
    previous: str | Mapping[str, pa.Table] | None, names: Sequence[str], storage_options: dict[str, Any] | None
) -> dict[str, pa.Table]:
    if previous is None:
        return {}
    if not isinstance(previous, str):
        return {name: table for name, table in previous.items() if name in names}
    found = {}
    for name in names:
        url = manifest_url(previous, name)
        try:
            found[name] = read_manifest(url, storage_options)
        except FileNotFoundError:
            continue
        except ValueError as exc:  # an unreadable old manifest costs a full re-read, nothing more
            log.warning("ignoring the previous manifest: %s", exc)
    return found


def _same_protocol(url: str, other: str) -> bool:
    return (fsspec.core.split_protocol(url)[0] or "file") == (fsspec.core.split_protocol(other)[0] or "file")


def _hash_candidates(fs: fsspec.AbstractFileSystem, objects: Mapping[str, Sequence[ImageObject]],
                     rows: dict[str, dict[str, dict[str, Any]]], reads: Counter[str], workers: int) -> None:
    """Fill in the content hash of the rows that could be copies (`rows_to_hash`), in parallel."""
    by_uri = {obj.uri: obj for objs in objects.values() for obj in objs}
    to_hash = [(name, row) for name in rows for row in rows_to_hash(rows[name].values())]
    for index, digest in parallel_map(lambda item: hash_object(fs, by_uri[item[1]["uri"]]), to_hash,
                                      max_workers=workers):
        name, row = to_hash[index]
        reads[name] += 1
        row["content_hash"] = digest


def _manifest(rows: list[dict[str, Any]], dataset: str, url: str | None, storage_options: dict[str, Any] | None,
              limits: ScanLimits) -> pa.Table:
    """The dataset's manifest table, written atomically to `url` when there is one."""
    if url is None:
        return manifest_table(rows, dataset, config=limits.manifest_config())
    return write_manifest(url, rows, dataset, storage_options, config=limits.manifest_config())


def scan_store(
    url: str,
    *,
    out: str | None = None,
    datasets: Sequence[str] | None = None,
    previous: str | Mapping[str, pa.Table] | None = None,
    rescan: bool = False,
    storage_options: dict[str, Any] | None = None,
    out_storage_options: dict[str, Any] | None = None,
    hash_contents: bool = False,
    head_bytes: int = DEFAULT_HEAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_workers: int | None = None,
    verify: bool = False,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> ScanResult:
    """Scan every dataset of an image store and write one manifest per dataset.

    Each image object gets a manifest row: size, change token, format, mode, size in pixels
    (from its header; a range read for objects over `head_bytes`) and a status with its
    reason. Bad objects are recorded, never raised; exact duplicates (by content hash) are
    marked. Objects whose size and change token match the previous manifest are not read, and
    a verdict that a decode found (`verify`, or written back by training and exports) is kept
    while the object is unchanged: a header probe never turns it back into `ok`.

    Args:
        url: the store root (any fsspec URL); each first-level folder is one dataset.
        out: output root; manifests go to `<out>/<dataset>/manifest.parquet`. None: only return.
        datasets: scan only these first-level folders.
        previous: an output root or {dataset: manifest table} to scan incrementally against;
            defaults to `out`.
        rescan: read every object again instead of reusing unchanged rows (changes are still
            reported against the previous manifests).
        storage_options: fsspec options for `url` (and for `out` on the same protocol).
        out_storage_options: fsspec options for `out` when they differ.
        hash_contents: read every object whole to record its MD5 (local files otherwise get
            their size and modification time as the change token, and a hash only when read whole).
        head_bytes: objects up to this size are read whole; larger ones by header and tail.
        max_pixels, max_bytes: larger images/objects are `too_large`.
        max_workers: objects in flight at once (default: 32 for object stores, a few per core
            for local disks).
        verify: read every object whole and decode all its pixels, so that `ok` means decodable
            (rows already decoded are reused; with `rescan`, every object is decoded again).
        max_seconds: the most one object's probe or decode may take; it is then `too_slow`.
            None judges objects in this process without a limit.

    Raises:
        FileNotFoundError: the store (or a dataset in `datasets`) does not exist or holds no dataset.
        ValueError: a name in `datasets` is invalid.

    Examples:
        >>> result = scan_store(store, out=out)  # each first-level folder of `store` is a dataset
        >>> scan = result.datasets["shapes"]
        >>> scan.manifest.num_rows, scan.manifest_url.endswith("shapes/manifest.parquet")
        (24, True)
        >>> scan_store(store, out=out).read_objects  # run again: nothing changed, nothing is read
        0
    """
    started = time.perf_counter()
    fs, workers = concurrent_fs(url, storage_options, max_workers)
    objects, skipped, ignored = list_store(url, storage_options, datasets)
    if not objects:
        raise FileNotFoundError(f"found no dataset folders under {redact_url(url)}: a store holds one folder of "
                                "images per dataset")
    if out is not None and out_storage_options is None and _same_protocol(url, out):
        out_storage_options = storage_options
    limits = ScanLimits(head_bytes, max_pixels, max_bytes, hash_contents, verify, max_seconds)
    previous_tables = _previous_manifests(previous if previous is not None else out, list(objects),
                                          out_storage_options)
    plans = {name: plan_scan(objs, previous_tables.get(name),
                             not rescan and same_limits(previous_tables.get(name), limits.manifest_config()), verify)
             for name, objs in objects.items()}
    rows = {name: {row["uri"]: row for row in plan.reused} for name, plan in plans.items()}
    reads: Counter[str] = Counter()
    vanished: dict[str, list[str]] = {name: [] for name in objects}
    slowest: dict[str, tuple[str, float]] = {}

    # (1) Probe new and changed objects, all datasets in one pool so that none waits on another.
    work = [(name, obj) for name, plan in plans.items() for obj in plan.to_probe]
    now = datetime.now(timezone.utc)
    for index, outcome in parallel_map(lambda item: probe_object(fs, item[1], limits), work, max_workers=workers,
                                       progress=f"scan {redact_url(url)}"):
        name, obj = work[index]
        reads[name] += obj.size > 0
        if outcome is None:
            log.warning("%s was deleted while the scan ran", redact_url(obj.uri))
            vanished[name].append(obj.uri)
        else:
            checked = "decode" if verify and outcome.probe.status != "unreadable" else "header"
            rows[name][obj.uri] = new_row(obj, name, outcome.probe, outcome.content_hash, now, checked)
            if outcome.seconds > slowest.get(name, ("", -1.0))[1]:
                slowest[name] = (obj.uri, outcome.seconds)
    for name, plan in plans.items():  # a header probe must not undo what a decode found
        keep_decode_verdicts(rows[name], plan.previous)

    # (2) Hash the same-size ok objects whose content hash is unknown: only they can be copies.
    _hash_candidates(fs, objects, rows, reads, workers)

    # (3) Mark duplicates, write the manifests, report.
    scans = {}
    for name, plan in plans.items():
        mark_duplicates(rows[name].values())
        plan.settle(rows[name])
        gone = set(vanished[name])
        manifest_at = manifest_url(out, name) if out is not None else None
        table = _manifest(list(rows[name].values()), name, manifest_at, out_storage_options, limits)
        new = [uri for uri in plan.new if uri not in gone]
        changed = [uri for uri in plan.changed if uri not in gone]
        deleted = sorted(plan.deleted + [uri for uri in gone if uri in plan.previous])
        scans[name] = DatasetScan(name, table, manifest_at, new, changed, deleted,
                                  unchanged=len(rows[name]) - len(new) - len(changed), skipped=dict(skipped[name]),
                                  read_objects=reads[name], slowest=slowest.get(name))
    return ScanResult(redact_url(url), redact_url(out) if out else None, scans, dict(ignored),
                      time.perf_counter() - started)
