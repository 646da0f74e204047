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
