"""Manifest rows: what a scan must read given the previous manifest, duplicate marking, and the
scan summary (`DatasetScan`, `ScanResult`).

A row is a dict keyed by `io.tables.MANIFEST_SCHEMA`'s columns. Pure logic, no storage access.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from gan_augment.io.fsio import redact_url
from gan_augment.io.parquet import read_gan_augment_metadata, table_rows
from gan_augment.scan.images import Probe
from gan_augment.scan.listing import ImageObject

_PLAIN_MD5_ETAG = re.compile(r"etag:[0-9a-f]{32}")


# Verdicts that only decoding every pixel finds, about the content itself (not about a limit
# of this scan): once found, they hold until the object changes.
DECODE_VERDICTS = frozenset({"corrupt", "unsupported", "too_slow"})


def new_row(
    obj: ImageObject, dataset: str, probe: Probe, content_hash: str | None, scanned_at: datetime,
    checked: str = "header",
) -> dict[str, Any]:
    """The manifest row of an object just probed (`checked="decode"` when every pixel was decoded)."""
    return {
        "uri": obj.uri, "dataset": dataset, "size_bytes": obj.size,
        "etag_or_hash": obj.version or content_hash or "",
        "format": probe.format, "mode": probe.mode, "width": probe.width, "height": probe.height,
        "status": probe.status, "error": probe.error or None, "scanned_at": scanned_at,
        "content_hash": content_hash, "duplicate_of": None, "checked": checked, "found_in": "scan",
        "phash": probe.phash, "phash_canonical": probe.phash_canonical,
    }


def unchanged(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether two rows of one uri describe the same content: same size, and the same change
    token or, without one, the same content hash."""
    if old["size_bytes"] != new["size_bytes"]:
        return False
    if old["etag_or_hash"] and not old["etag_or_hash"].startswith("md5:"):
        return old["etag_or_hash"] == new["etag_or_hash"]
    return bool(old["content_hash"]) and old["content_hash"] == new["content_hash"]


def keep_decode_verdicts(rows: dict[str, dict[str, Any]], previous: Mapping[str, dict[str, Any]]) -> list[str]:
    """Put back the decode failures of unchanged objects that a header probe just called ok
    (a header probe knows less than a decode: it must not undo what one found). Returns their uris."""
    kept = []
    for uri, row in rows.items():
        old = previous.get(uri)
        if (old is not None and old.get("checked") == "decode" and old["status"] in DECODE_VERDICTS
                and row.get("checked") != "decode" and row["status"] in ("ok", "duplicate") and unchanged(old, row)):
            rows[uri] = {**old, "duplicate_of": None}
            kept.append(uri)
    return kept


@dataclass(frozen=True)
class DecodeFailure:
    """An object that failed to decode after the scan: its manifest status and reason, and the
    object as it was decoded (size, change token, content hash when known)."""

    status: str
    reason: str
    size: int
    version: str = ""
    content_hash: str | None = None

    def describes(self, row: Mapping[str, Any]) -> bool:
        """Whether `row` is a row of the object as it was decoded (not of an older version)."""
        if row["size_bytes"] != self.size:
            return False
        if self.version and row["etag_or_hash"] and not row["etag_or_hash"].startswith("md5:"):
            return row["etag_or_hash"] == self.version
        return not (self.content_hash and row["content_hash"]) or row["content_hash"] == self.content_hash


def apply_decode_failures(
    rows: Sequence[dict[str, Any]], failures: Mapping[str, DecodeFailure], found_in: str, found_at: datetime,
) -> list[str]:
    """Write decode failures into manifest rows, in place; returns the uris whose rows changed.

    Only `ok` and `duplicate` rows of the same content change (a row of an object rewritten since
    the scan is left for the next scan to judge), and rows that duplicate a failed object fail
    with it: they hold the same bytes.
    """
    by_uri = {row["uri"]: row for row in rows}
    changed = []
    for uri, failure in failures.items():
        row = by_uri.get(uri)
        if (row is None or row["status"] not in ("ok", "duplicate") or failure.status not in DECODE_VERDICTS
                or not failure.describes(row)):
            continue
        for target in [row] + [other for other in rows if other["duplicate_of"] == uri]:
            target.update(status=failure.status, error=failure.reason, checked="decode", found_in=found_in,
                          scanned_at=found_at, duplicate_of=None,
                          content_hash=target["content_hash"] or failure.content_hash)
            changed.append(target["uri"])
    return changed


@dataclass
class ScanPlan:
    """What an incremental scan does with each listed object."""

    reused: list[dict[str, Any]] = field(default_factory=list)  # rows carried over, not read again
    to_probe: list[ImageObject] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)
    unversioned: list[str] = field(default_factory=list)  # listed without a change token: compare hashes

    def settle(self, rows: Mapping[str, dict[str, Any]]) -> None:
        """Count an object listed without a change token as changed when its content hash differs."""
        for uri in self.unversioned:
            if uri in rows and rows[uri]["content_hash"] != self.previous[uri]["content_hash"]:
                self.changed.append(uri)


def plan_scan(
    objects: Sequence[ImageObject], previous: pa.Table | None, reuse: bool = True, verify: bool = False
) -> ScanPlan:
    """Sort listed objects into reused rows (same size and change token as before; read
    again only when `reuse` is False or the last read failed, or with `verify` when the row
    says ok without every pixel decoded) and objects to probe, and report what is new,
    changed and deleted since the previous manifest."""
    plan = ScanPlan(previous={row["uri"]: row for row in table_rows(previous)} if previous is not None else {})
    listed = set()
    for obj in objects:
        listed.add(obj.uri)
        old = plan.previous.get(obj.uri)
        if old is None:
            plan.new.append(obj.uri)
        elif old["size_bytes"] != obj.size or (obj.version and old["etag_or_hash"] != obj.version):
            plan.changed.append(obj.uri)
        elif not obj.version:
            plan.unversioned.append(obj.uri)
        elif reuse and old["status"] != "unreadable" and not (verify and _needs_decode(old)):
            plan.reused.append(_undo_duplicate(old))
            continue
        plan.to_probe.append(obj)
    plan.deleted = sorted(set(plan.previous) - listed)
    return plan


def unchanged_manifest(
    objects: Sequence[ImageObject], previous: pa.Table | None, config: Mapping[str, Any], verify: bool = False
) -> bool:
    """Whether a scan of `objects` would reuse `previous` row for row: the same uris in the same
    order, sizes and change tokens (every one known), made under the limits in `config`, with no
    row to read again (`unreadable`, or with `verify` an ok row not yet decoded). Compared
    column by column, so that an unchanged dataset costs no Python row at all."""
    if previous is None or previous.num_rows != len(objects) or not same_limits(previous, config):
        return False
    if not all(obj.version for obj in objects):
        return False
    column = {name: previous.column(name).to_pylist() for name in ("uri", "size_bytes", "etag_or_hash", "status")}
    if (column["uri"] != [obj.uri for obj in objects] or column["size_bytes"] != [obj.size for obj in objects]
            or column["etag_or_hash"] != [obj.version for obj in objects] or "unreadable" in column["status"]):
        return False
    if verify:
        checked = previous.column("checked").to_pylist()
        return not any(_needs_decode({"status": status, "checked": how}) for status, how in zip(column["status"], checked))
    return True


def same_limits(previous: pa.Table | None, config: Mapping[str, Any]) -> bool:
    """Whether a previous manifest was made under the scan limits in `config`: old verdicts
    hold only under the same limits."""
    if previous is None:
        return False
    recorded = read_gan_augment_metadata(previous.schema).get("config", {})
    return all(recorded.get(key) == value for key, value in config.items())


def _needs_decode(row: Mapping[str, Any]) -> bool:
    return row["status"] in ("ok", "duplicate") and row.get("checked") != "decode"


def _undo_duplicate(row: dict[str, Any]) -> dict[str, Any]:
    """A duplicate is an ok object whose twin came first; mark_duplicates decides afresh."""
    if row["status"] != "duplicate":
        return dict(row)
    return {**row, "status": "ok", "error": None, "duplicate_of": None}


def content_key(row: Mapping[str, Any]) -> str | None:
    """The row's content hash, or its single-part S3 ETag, which is the MD5 of the content.
    (Multipart and SSE-KMS ETags are not; such copies are then only found once hashed.)"""
    if row["content_hash"]:
        return row["content_hash"]
    token = row["etag_or_hash"]
    return "md5:" + token[5:] if _PLAIN_MD5_ETAG.fullmatch(token) else None


def rows_to_hash(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """ok rows without a content key that share their size with another ok row: only they
    can be duplicates that their hashes would reveal."""
    by_size: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok":
            by_size[row["size_bytes"]].append(row)
    return [row for group in by_size.values() if len(group) > 1 for row in group if content_key(row) is None]


def mark_duplicates(rows: Iterable[dict[str, Any]]) -> None:
    """Mark every ok row whose content equals an earlier (by uri) ok row's as a duplicate of it."""
    first: dict[tuple[int, str], str] = {}
    for row in sorted(rows, key=lambda r: r["uri"]):
        key = content_key(row)
        if row["status"] != "ok" or key is None:
            continue
        original = first.setdefault((row["size_bytes"], key), row["uri"])
        if original != row["uri"]:
            row.update(status="duplicate", error=f"same content as {original}", duplicate_of=original)


def apply_verdicts(
    objects: list[ImageObject], rows: dict[str, dict[str, Any]]
) -> tuple[list[ImageObject], dict[str, str]]:
    """Objects still to decode, and those that a matching manifest row already rejected.
    A row matches when size and change token are unchanged; a duplicate is left out only
    while the copy it duplicates is still listed."""
    listed = {obj.uri for obj in objects}
    keep, skipped = [], {}
    for obj in objects:
        row = rows.get(obj.uri)
        if row and obj.version and (row["size_bytes"], row["etag_or_hash"]) == (obj.size, obj.version):
            status = row["status"]
            rejected = status not in ("ok", "duplicate", "unreadable")
            if rejected or (status == "duplicate" and row["duplicate_of"] in listed):
                skipped[obj.uri] = f"{status}: {row['error']}"
                continue
        keep.append(obj)
    return keep, skipped


# -- the summary --------------------------------------------------------------------------------


@dataclass
class DatasetScan:
    """The scan of one dataset.

    Attributes:
        dataset: its name.
        manifest: the manifest table (one row per image object).
        manifest_url: where it was written, or None.
        new, changed, deleted: URIs that differ from the previous manifest.
        unchanged: how many objects were as before.
        skipped: files that are not dataset images, by reason ("hidden", "not_image").
        read_objects: how many objects this scan read (unchanged ones are not read again).
        slowest: the object whose probe (or decode, with verify) computed longest, and its
            seconds; None when nothing was read.
    """

    dataset: str
    manifest: pa.Table
    manifest_url: str | None
    new: list[str]
    changed: list[str]
    deleted: list[str]
    unchanged: int
    skipped: dict[str, int]
    read_objects: int
    slowest: tuple[str, float] | None = None

    @property
    def status_counts(self) -> dict[str, int]:
        return dict(Counter(self.manifest.column("status").to_pylist()))

    @property
    def total_bytes(self) -> int:
        return int(sum(self.manifest.column("size_bytes").to_pylist()))

    @property
    def sizes(self) -> Counter[str]:
        """Image sizes seen among the ok objects, as "WxH" -> count."""
        columns = (self.manifest.column(name).to_pylist() for name in ("width", "height", "status"))
        return Counter(f"{w}x{h}" for w, h, status in zip(*columns) if status == "ok")


@dataclass
class ScanResult:
    """What `scan_store` found: one `DatasetScan` per dataset, and what lay outside them."""

    store: str
    out: str | None
    datasets: dict[str, DatasetScan]
    ignored: dict[str, int]
    seconds: float

    @property
    def objects(self) -> int:
        return sum(scan.manifest.num_rows for scan in self.datasets.values())

    @property
    def read_objects(self) -> int:
        return sum(scan.read_objects for scan in self.datasets.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values of `summary_table`, per dataset with its status counts in full."""
        datasets = {name: {
            "objects": scan.manifest.num_rows, "statuses": dict(sorted(scan.status_counts.items())),
            "bytes": scan.total_bytes, "sizes": dict(scan.sizes.most_common()), "new": len(scan.new),
            "changed": len(scan.changed), "deleted": len(scan.deleted), "unchanged": scan.unchanged,
            "read_objects": scan.read_objects, "skipped": dict(scan.skipped),
            "manifest": redact_url(scan.manifest_url) if scan.manifest_url else None,
        } for name, scan in sorted(self.datasets.items())}
        return {"store": redact_url(self.store), "out": redact_url(self.out) if self.out else None,
                "datasets": datasets, "objects": self.objects, "read_objects": self.read_objects,
                "ignored": dict(self.ignored), "seconds": round(self.seconds, 3)}

    def summary_table(self) -> str:
        """A plain-text table, one line per dataset: objects, ok, bad by reason, bytes, sizes
        seen and the changes since the previous scan."""
        header = ("dataset", "objects", "ok", "bad", "bytes", "sizes seen", "new", "changed", "deleted", "skipped")
        lines = [header]
        for name, scan in sorted(self.datasets.items()):
            counts = scan.status_counts
            bad = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()) if status != "ok") or "-"
            sizes = ", ".join(f"{size} ({n})" for size, n in scan.sizes.most_common(3))
            if len(scan.sizes) > 3:
                sizes += f", +{len(scan.sizes) - 3} more"
            skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(scan.skipped.items())) or "-"
            lines.append((name, str(scan.manifest.num_rows), str(counts.get("ok", 0)), bad,
                          human_bytes(scan.total_bytes), sizes or "-", str(len(scan.new)), str(len(scan.changed)),
                          str(len(scan.deleted)), skipped))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
        footer = (f"{len(self.datasets)} datasets, {self.objects} objects ({self.read_objects} read) "
                  f"in {self.seconds:.1f} s")
        slowest = max((scan.slowest for scan in self.datasets.values() if scan.slowest), key=lambda s: s[1],
                      default=None)
        if slowest is not None:
            footer += f"; slowest object {slowest[1]:.2f} s ({slowest[0]})"
        if self.ignored:
            footer += "; ignored: " + ", ".join(f"{reason} {n}" for reason, n in sorted(self.ignored.items()))
        return "\n".join([*text, footer])


def human_bytes(count: float) -> str:
    """1536 -> "1.5 KiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")
