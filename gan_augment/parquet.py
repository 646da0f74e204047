"""Arrow schemas and Parquet writers/readers for every table gan-augment writes.

Every file carries the schema metadata key `gan_augment` = JSON {version, dataset, model_id,
config}. Writes are atomic (see `fsio.atomic_write_bytes`).
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from gan_augment import __version__
from gan_augment.fsio import atomic_write_bytes, get_fs, redact_url, retry

METADATA_KEY = b"gan_augment"


def gan_augment_metadata(
    dataset: str, model_id: str | None = None, config: dict[str, Any] | None = None, **extra: Any
) -> dict[bytes, bytes]:
    """The `gan_augment` schema metadata entry for one table."""
    value = {"version": __version__, "dataset": dataset, "model_id": model_id, "config": config or {}, **extra}
    return {METADATA_KEY: json.dumps(value, sort_keys=True).encode()}


def read_gan_augment_metadata(schema: pa.Schema) -> dict[str, Any]:
    """The decoded `gan_augment` metadata of a schema, or {} when absent."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def write_table(
    url: str,
    table: pa.Table,
    storage_options: dict[str, Any] | None = None,
    *,
    compression: str | dict[str, str] = "zstd",
    row_group_size: int | None = None,
) -> None:
    """Serialise `table` to Parquet in memory, then write it to `url` atomically."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=compression, row_group_size=row_group_size)
    atomic_write_bytes(url, sink.getvalue().to_pybytes(), storage_options)


def read_table(url: str, storage_options: dict[str, Any] | None = None, columns: list[str] | None = None) -> pa.Table:
    """Read one Parquet file.

    Raises:
        FileNotFoundError: nothing at `url`.
        ValueError: the object is not a readable Parquet file.
    """
    fs, path = get_fs(url, storage_options)
    try:
        return retry(lambda: pq.read_table(path, filesystem=fs, columns=columns), what=f"read {redact_url(url)}")
    except FileNotFoundError:
        raise
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{redact_url(url)} is not a readable Parquet file: {exc}") from exc


def require_columns(schema: pa.Schema, expected: pa.Schema, what: str, url: str) -> None:
    """Raise a ValueError naming the first column of `expected` that `schema` lacks or types differently."""
    for field in expected:
        index = schema.get_field_index(field.name)
        if index < 0:
            raise ValueError(f"{redact_url(url)} is not a {what} table: it has no column {field.name!r}")
        if not schema.field(index).type.equals(field.type):
            raise ValueError(
                f"{redact_url(url)} is not a {what} table: column {field.name!r} is "
                f"{schema.field(index).type}, expected {field.type}"
            )


# -- manifest: one row per scanned object (store.scan_store) ---------------------------------

MANIFEST_STATUSES = ("ok", "corrupt", "unsupported", "too_large", "empty", "duplicate", "unreadable")
MANIFEST_SCHEMA = pa.schema([
    pa.field("uri", pa.string(), nullable=False),
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("size_bytes", pa.int64(), nullable=False),
    pa.field("etag_or_hash", pa.string(), nullable=False),  # change token: etag:..., mtime:... or md5:...
    pa.field("format", pa.string()),
    pa.field("mode", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("status", pa.string(), nullable=False),  # one of MANIFEST_STATUSES
    pa.field("error", pa.string()),  # why the status is not ok; null when ok
    pa.field("scanned_at", pa.timestamp("us", tz="UTC"), nullable=False),  # when the object was last read
    pa.field("content_hash", pa.string()),  # md5:<hex> when known (object read whole, or hashing asked)
    pa.field("duplicate_of", pa.string()),  # for status duplicate: the uri of the copy that stays ok
])


def manifest_table(rows: list[dict[str, Any]], dataset: str, config: dict[str, Any] | None = None) -> pa.Table:
    """A dataset's manifest from rows (dicts keyed by MANIFEST_SCHEMA's columns), sorted by
    uri; `config` records the scan limits that the verdicts depend on."""
    schema = MANIFEST_SCHEMA.with_metadata(gan_augment_metadata(dataset, config=config))
    return pa.Table.from_pylist(sorted(rows, key=lambda row: row["uri"]), schema=schema)


def write_manifest(
    url: str,
    rows: list[dict[str, Any]],
    dataset: str,
    storage_options: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
) -> pa.Table:
    """Write a dataset's manifest atomically (see `manifest_table`); returns the table."""
    table = manifest_table(rows, dataset, config)
    write_table(url, table, storage_options)
    return table


def read_manifest(url: str, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """Read and check one manifest.

    Raises:
        FileNotFoundError: nothing at `url`; run `gan-augment scan` first.
        ValueError: the file is not a manifest.
    """
    table = read_table(url, storage_options)
    require_columns(table.schema, MANIFEST_SCHEMA, "manifest", url)
    return table
