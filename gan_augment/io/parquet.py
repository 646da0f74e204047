"""Parquet plumbing for every table gan-augment writes: metadata, atomic single-file writes,
streamed part-split writes and their readers.

Every file carries the schema metadata key `gan_augment` = JSON {version, dataset, model_id,
config}. Writes are atomic (see `fsio.atomic_write_bytes`).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from gan_augment import __version__
from gan_augment.io.fsio import atomic_open, atomic_write_bytes, get_fs, join_url, redact_url, retry, to_url

T = TypeVar("T")

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


def table_rows(table: pa.Table) -> list[dict[str, Any]]:
    """`table.to_pylist()`, column by column and fast. pyarrow converts every timezone-aware
    timestamp on its own, about 0.2 ms a value (2 s for one 10,000-row manifest); a manifest holds
    few distinct times (one per scan), so each distinct value is converted once here."""
    columns = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type) and column.type.tz:
            ticks = column.cast(pa.int64()).to_pylist()
            distinct = [tick for tick in set(ticks) if tick is not None]
            as_time = dict(zip(distinct, pa.array(distinct, pa.int64()).cast(column.type).to_pylist()))
            columns.append([None if tick is None else as_time[tick] for tick in ticks])
        else:
            columns.append(column.to_pylist())
    return [dict(zip(table.column_names, values)) for values in zip(*columns)]


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
    return with_parquet_file(url, storage_options, lambda parquet_file: parquet_file.read(columns=columns), "read")


def parquet_footer(url: str, storage_options: dict[str, Any] | None = None) -> tuple[pa.Schema, list[int]]:
    """(schema, rows of each row group) of one Parquet file, from its footer alone; raises as
    `read_table`."""
    def footer(parquet_file: pq.ParquetFile) -> tuple[pa.Schema, list[int]]:
        meta = parquet_file.metadata
        return parquet_file.schema_arrow, [meta.row_group(group).num_rows for group in range(meta.num_row_groups)]

    return with_parquet_file(url, storage_options, footer, "read the footer of")


def with_parquet_file(url: str, storage_options: dict[str, Any] | None, use: Callable[[pq.ParquetFile], T],
                       what: str) -> T:
    """`use(ParquetFile)` of one file, retried whole on transient errors (so `use` must be safe to
    repeat); an unreadable file is a ValueError."""
    fs, path = get_fs(url, storage_options)

    def read() -> T:
        # One file through ParquetFile, not pq.read_table: the latter goes through
        # pyarrow.dataset, which loads pandas (~55 MB), for what is only ever one file here.
        with pq.ParquetFile(path, filesystem=fs) as parquet_file:
            return use(parquet_file)

    try:
        return retry(read, fs=fs, what=f"{what} {redact_url(url)}")
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


# -- streamed, part-split writers and readers (synthetic and features tables) -------------------

# Part files stay small enough to list, retry and load one at a time; row groups are the unit
# that readers (DuckDB, polars, datasets) parallelise over and that a reader holds in memory.
PART_BYTES = 256 * 2**20
ROW_GROUP_BYTES = 32 * 2**20
PART_GLOB = "part-*.parquet"


def _rebatch(tables: Iterable[pa.Table], target_bytes: int) -> Iterator[pa.Table]:
    """Regroup a stream of tables into tables of about `target_bytes` (in-memory size) each."""
    pending: list[pa.Table] = []
    size = 0
    for table in tables:
        row_bytes = max(1, table.nbytes // max(1, table.num_rows))
        offset = 0
        while offset < table.num_rows:
            take = min(table.num_rows - offset, max(1, (target_bytes - size) // row_bytes))
            pending.append(table.slice(offset, take))
            offset, size = offset + take, size + take * row_bytes
            if size >= target_bytes:
                yield pa.concat_tables(pending)
                pending, size = [], 0
    if pending:
        yield pa.concat_tables(pending)


def _column_compression(schema: pa.Schema, codec: str, uncompressed: Sequence[str]) -> dict[str, str]:
    """Per Parquet leaf column: `codec`, except the `uncompressed` paths (already-compressed
    bytes). A per-column dict must name every leaf: pyarrow leaves unnamed ones uncompressed."""
    paths: list[str] = []

    def visit(prefix: str, field: pa.Field) -> None:
        if pa.types.is_struct(field.type):
            for child in field.type:
                visit(f"{prefix}{field.name}.", child)
        elif pa.types.is_list(field.type) or pa.types.is_fixed_size_list(field.type):
            # Parquet's compliant three-level list layout, pyarrow's default: <name>.list.element
            visit(f"{prefix}{field.name}.list.", pa.field("element", field.type.value_type))
        else:
            paths.append(prefix + field.name)

    for field in schema:
        visit("", field)
    return {path: "none" if path in uncompressed else codec for path in paths}


def write_parts(
    out: str,
    tables: Iterable[pa.Table],
    schema: pa.Schema,
    *,
    uncompressed: Sequence[str] = (),
    storage_options: dict[str, Any] | None = None,
    part_bytes: int = PART_BYTES,
    row_group_bytes: int = ROW_GROUP_BYTES,
) -> list[str]:
    """Stream `tables` (each of `schema`) into Parquet, zstd-compressed except `uncompressed` columns.

    `out` ending in ".parquet" is one file; anything else is a folder that receives
    `part-00000.parquet`, `part-00001.parquet`, ... of about `part_bytes` each, and loses any
    older `part-*.parquet` this export did not write. Every file is written atomically; memory
    holds one row group at a time.

    Returns:
        The URLs written, in order.
    """
    single = out.rstrip("/").endswith(".parquet")
    compression = _column_compression(schema, "zstd", uncompressed)
    groups = _rebatch(tables, min(row_group_bytes, part_bytes))  # a part holds whole row groups
    group, urls = next(groups, None), []
    while group is not None or not urls:  # no rows still writes one file, so readers find the schema
        url = out if single else join_url(out, f"part-{len(urls):05d}.parquet")
        # An exception anywhere in here discards this file (atomic_open) and propagates.
        with atomic_open(url, storage_options) as sink, \
                pq.ParquetWriter(sink, schema, compression=compression) as writer:
            written = 0
            while group is not None and (single or written < part_bytes):
                writer.write_table(group, row_group_size=group.num_rows)
                written += group.nbytes
                group = next(groups, None)
        urls.append(url)
    if not single:
        _remove_stale_parts(out, urls, storage_options)
    return urls


def _remove_stale_parts(out: str, keep: Sequence[str], storage_options: dict[str, Any] | None) -> None:
    fs, path = get_fs(out, storage_options)
    kept = {posixpath.basename(url) for url in keep}
    for old in retry(lambda: fs.glob(posixpath.join(path, PART_GLOB)), fs=fs, what=f"list {redact_url(out)}"):
        if posixpath.basename(old) not in kept:
            retry(lambda: fs.rm_file(old), fs=fs, what=f"delete {redact_url(to_url(fs, old))}")


def parquet_files(url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """`url` itself when it is a file, else the `*.parquet` files directly in that folder, sorted.

    Raises:
        FileNotFoundError: nothing at `url`, or a folder without Parquet files.
    """
    fs, path = get_fs(url, storage_options)
    if not retry(lambda: fs.isdir(path), fs=fs, what=f"stat {redact_url(url)}"):
        return [url]
    found = sorted(retry(lambda: fs.glob(posixpath.join(path, "*.parquet")), fs=fs, what=f"list {redact_url(url)}"))
    if not found:
        raise FileNotFoundError(f"no .parquet files in {redact_url(url)}; pass a Parquet file or an export folder")
    return [to_url(fs, name) for name in found]


def read_parts(
    url: str,
    check: Callable[[pa.Schema, str], None],
    storage_options: dict[str, Any] | None = None,
) -> pa.Table:
    """Read a Parquet file or every Parquet file of a folder into one table, after
    `check(schema, file_url)` accepts each file's schema."""
    tables = []
    for file_url in parquet_files(url, storage_options):
        table = read_table(file_url, storage_options)
        check(table.schema, file_url)
        tables.append(table)
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid as exc:
        raise ValueError(f"the Parquet files in {redact_url(url)} do not share one schema (mixed exports?): "
                         f"{str(exc).splitlines()[0]}") from exc
