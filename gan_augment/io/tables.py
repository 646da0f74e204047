"""The tables gan-augment writes, their Arrow schemas, builders, writers and readers: synthetic
samples, discriminator features and the scan's manifest.

Every file carries the schema metadata key `gan_augment` = JSON {version, dataset, model_id,
config} (`parquet.gan_augment_metadata`). Writes are atomic.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from gan_augment.io.fsio import redact_url
from gan_augment.io.parquet import (
    PART_BYTES,
    gan_augment_metadata,
    parquet_files,
    parquet_footer,
    read_parts,
    read_table,
    require_columns,
    with_parquet_file,
    write_parts,
    write_table,
)

if TYPE_CHECKING:
    import pyarrow.parquet as pq

log = logging.getLogger(__name__)

# -- synthetic samples -------------------------------------------------------------------------

# The Hugging Face `datasets` Image convention: PNG bytes plus an optional file name. The
# `huggingface` schema metadata tells `datasets.load_dataset("parquet", ...)` to decode it.
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SYNTHETIC_SCHEMA = pa.schema([
    ("image", IMAGE_TYPE),
    ("dataset", pa.string()),
    ("model_id", pa.string()),
    ("seed", pa.int64()),
    ("index", pa.int64()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("label", pa.string()),  # the class asked of a class-conditional model; null otherwise
])
# Columns added later: a table written before them reads without them.
_SYNTHETIC_ADDED = ("label",)
_HF_FEATURES = {
    "image": {"_type": "Image"},
    **{name: {"dtype": dtype, "_type": "Value"} for name, dtype in
       [("dataset", "string"), ("model_id", "string"), ("seed", "int64"), ("index", "int64"),
        ("width", "int32"), ("height", "int32"), ("label", "string")]},
}


def synthetic_schema(metadata: dict[bytes, bytes] | None = None) -> pa.Schema:
    """The synthetic table's schema with the `gan_augment` and `huggingface` metadata."""
    hf = {b"huggingface": json.dumps({"info": {"features": _HF_FEATURES}}).encode()}
    return SYNTHETIC_SCHEMA.with_metadata({**(metadata or {}), **hf})


def synthetic_table(
    png: Sequence[bytes], *, dataset: str, model_id: str, seeds: Sequence[int], indices: Sequence[int],
    width: int, height: int, label: str | None = None,
) -> pa.Table:
    """One batch of synthetic rows; `png[k]` is the sample with `seeds[k]` and `indices[k]`, of
    class `label` (a class-conditional model's samples; None for an unconditional one)."""
    n = len(png)
    images = pa.StructArray.from_arrays(
        [pa.array(png, pa.binary()), pa.array([f"{dataset}-{'' if label is None else label + '-'}{i:08d}.png"
                                               for i in indices], pa.string())],
        fields=list(IMAGE_TYPE),
    )
    return pa.Table.from_arrays(
        [images, pa.array([dataset] * n, pa.string()), pa.array([model_id] * n, pa.string()),
         pa.array(seeds, pa.int64()), pa.array(indices, pa.int64()),
         pa.array([width] * n, pa.int32()), pa.array([height] * n, pa.int32()), pa.array([label] * n, pa.string())],
        schema=SYNTHETIC_SCHEMA,
    )


def write_synthetic(
    out: str, tables: Iterable[pa.Table], metadata: dict[bytes, bytes],
    storage_options: dict[str, Any] | None = None, part_bytes: int = PART_BYTES,
) -> list[str]:
    """Write synthetic rows to `out` (a .parquet file or a folder of parts); PNG bytes are
    stored uncompressed (compressing them again only costs time)."""
    return write_parts(out, tables, synthetic_schema(metadata), uncompressed=("image.bytes",),
                       storage_options=storage_options, part_bytes=part_bytes)


def read_synthetic(url: str, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """The synthetic table(s) at `url` (a file or a folder of parts).

    Raises:
        FileNotFoundError: nothing at `url`.
        ValueError: a file that is not a synthetic-samples table.
    """
    required = pa.schema([f for f in SYNTHETIC_SCHEMA if f.name not in _SYNTHETIC_ADDED])
    return read_parts(url, lambda schema, file_url: require_columns(schema, required, "synthetic", file_url),
                      storage_options)


# -- discriminator features --------------------------------------------------------------------

FEATURES_BASE_SCHEMA = pa.schema([("uri", pa.string()), ("dataset", pa.string()), ("model_id", pa.string())])
# Columns after `feature`, added later; a features table written before them reads with nulls there.
FEATURES_ADDED = [
    pa.field("phash", pa.int64()),  # perceptual hash of the whole image (scan.phash), from the same decode
    pa.field("logit", pa.float32()),  # the discriminator's real/fake logit: low = unlike what it learnt as real
    pa.field("knn_distance", pa.float32()),  # mean distance to the nearest images in feature space (density)
    pa.field("outlier_score", pa.float32()),  # how unusual the image is; higher = more (export.scores)
]


def features_schema(dim: int, metadata: dict[bytes, bytes] | None = None) -> pa.Schema:
    """uri, dataset, model_id, feature fixed_size_list<float32>[dim], then FEATURES_ADDED."""
    fields = [*FEATURES_BASE_SCHEMA, pa.field("feature", pa.list_(pa.float32(), dim)), *FEATURES_ADDED]
    return pa.schema(fields).with_metadata(metadata)


def features_table(
    uris: Sequence[str], *, dataset: str, model_id: str, features: np.ndarray,
    columns: dict[str, Sequence[Any] | np.ndarray] | None = None,
) -> pa.Table:
    """One batch of feature rows from an (N, dim) array; `columns` holds values of
    FEATURES_ADDED columns by name (absent ones are null)."""
    n, dim = features.shape
    values = pa.array(np.ascontiguousarray(features, dtype=np.float32).reshape(-1), pa.float32())
    columns = columns or {}
    added = [pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(n, f.type) for f in FEATURES_ADDED]
    return pa.Table.from_arrays(
        [pa.array(uris, pa.string()), pa.array([dataset] * n, pa.string()), pa.array([model_id] * n, pa.string()),
         pa.FixedSizeListArray.from_arrays(values, dim), *added],
        schema=features_schema(dim),
    )


def write_features(
    out: str, tables: Iterable[pa.Table], dim: int, metadata: dict[bytes, bytes],
    storage_options: dict[str, Any] | None = None, part_bytes: int = PART_BYTES,
) -> list[str]:
    """Write feature rows to `out` (a .parquet file or a folder of parts), zstd-compressed."""
    return write_parts(out, tables, features_schema(dim, metadata), storage_options=storage_options,
                       part_bytes=part_bytes)


def _check_features_schema(schema: pa.Schema, url: str) -> None:
    require_columns(schema, FEATURES_BASE_SCHEMA, "features", url)
    index = schema.get_field_index("feature")
    kind = schema.field(index).type if index >= 0 else None
    if kind is None or not (pa.types.is_fixed_size_list(kind) and kind.value_type == pa.float32()):
        raise ValueError(f"{redact_url(url)} is not a features table: column 'feature' must be "
                         f"fixed_size_list<float32>[d], found {kind}")


def read_features(url: str, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """The features table(s) at `url` (a file or a folder of parts); columns added since it
    was written (FEATURES_ADDED) come back null.

    Raises:
        FileNotFoundError: nothing at `url`.
        ValueError: a file that is not a features table.
    """
    return with_added_columns(read_parts(url, _check_features_schema, storage_options), FEATURES_ADDED)


def with_added_columns(table: pa.Table, added: Sequence[pa.Field]) -> pa.Table:
    """`table` with a null column for each field of `added` it lacks (a table written before it)."""
    for field in added:
        if table.schema.get_field_index(field.name) < 0:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table


def features_matrix(table: pa.Table) -> tuple[list[str], np.ndarray]:
    """(uris, (N, d) float32 array) of a features table, row k of the array belonging to uris[k]."""
    dim = table.schema.field("feature").type.list_size
    matrix = table.column("feature").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return table.column("uri").to_pylist(), matrix.reshape(table.num_rows, dim)


# Row groups (32 MiB each as the exports write them) that `read_features_matrix` decodes together: two keep
# both cores of a small worker busy; each more adds about 100 MiB to its peak (measured at 896 features).
ROW_GROUPS_AT_ONCE = 2


def read_features_matrix(url: str, storage_options: dict[str, Any] | None = None) -> tuple[list[str], np.ndarray]:
    """`features_matrix(read_features(url))` without holding the table: the array is allocated
    once from the parts' footers and filled `ROW_GROUPS_AT_ONCE` row groups at a time, so memory
    peaks near the array itself instead of twice it (BENCHMARKS.md, "Selection at scale").

    Raises:
        FileNotFoundError: nothing at `url`.
        ValueError: a file that is not a features table, or parts of different widths.
    """
    parts = [(file_url, *parquet_footer(file_url, storage_options)) for file_url in parquet_files(url, storage_options)]
    dims = set()
    for file_url, schema, _ in parts:
        _check_features_schema(schema, file_url)
        dims.add(schema.field("feature").type.list_size)
    if len(dims) > 1:
        raise ValueError(f"the Parquet files in {redact_url(url)} hold features of widths {sorted(dims)} "
                         "(mixed exports?)")
    dim = dims.pop()
    matrix = np.empty((sum(sum(groups) for _, _, groups in parts), dim), dtype=np.float32)
    uris: list[str] = []
    for file_url, _, groups in parts:
        copy = functools.partial(_copy_row_groups, groups=groups, matrix=matrix, start=len(uris))
        uris += with_parquet_file(file_url, storage_options, copy, "read")
    return uris, matrix


def _copy_row_groups(parquet_file: pq.ParquetFile, groups: list[int], matrix: np.ndarray, start: int) -> list[str]:
    """Copy a part's features into `matrix` from row `start`, `ROW_GROUPS_AT_ONCE` row groups at a
    time (decoded in parallel, and never the whole part); its uris. Safe to repeat on a retry."""
    uris: list[str] = []
    for first in range(0, len(groups), ROW_GROUPS_AT_ONCE):
        batch = list(range(first, min(first + ROW_GROUPS_AT_ONCE, len(groups))))
        table = parquet_file.read_row_groups(batch, columns=["uri", "feature"])
        rows = sum(groups[group] for group in batch)
        if table.num_rows != rows:
            raise ValueError(f"row groups {batch} hold {table.num_rows} rows; the footer said {rows}")
        batch_uris, features = features_matrix(table)
        matrix[start + len(uris):start + len(uris) + rows] = features
        uris += batch_uris
    return uris


# -- manifest: one row per scanned object (store.scan_store) ---------------------------------

MANIFEST_STATUSES = ("ok", "corrupt", "unsupported", "too_large", "empty", "duplicate", "unreadable", "too_slow")
# How far a row's verdict looked: the header only, or every pixel decoded.
MANIFEST_CHECKS = ("header", "decode")
_MANIFEST_BASE = pa.schema([
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
# Columns added later; a manifest written before them reads with nulls there.
_MANIFEST_ADDED = [
    pa.field("checked", pa.string()),  # one of MANIFEST_CHECKS; null in older manifests (header)
    pa.field("found_in", pa.string()),  # the stage that gave the verdict: scan, training, features
    pa.field("phash", pa.int64()),  # 64-bit perceptual hash when the scan decoded the pixels (verify)
    pa.field("phash_canonical", pa.int64()),  # with it, the hash of the canonical window (scan.phash)
]
MANIFEST_SCHEMA = pa.schema([*_MANIFEST_BASE, *_MANIFEST_ADDED])


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
    """Read and check one manifest; columns added since it was written come back null.

    Raises:
        FileNotFoundError: nothing at `url`; run `gan-augment scan` first.
        ValueError: the file is not a manifest.
    """
    table = read_table(url, storage_options)
    require_columns(table.schema, _MANIFEST_BASE, "manifest", url)
    table = with_added_columns(table, _MANIFEST_ADDED)
    require_columns(table.schema, MANIFEST_SCHEMA, "manifest", url)
    return table


# -- near duplicates (written by `gan-augment report`) ----------------------------------------

def read_near_copies(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, str]:
    """{uri: the uri it is a near-copy of} from a dataset's `near_duplicates.parquet` at `url`
    (`layout.near_duplicates_url`, written by `gan-augment report`); {} where there is none yet,
    with a warning, since `skip_near_duplicates` then leaves nothing out."""
    try:
        table = read_table(url, storage_options, columns=["uri", "near_duplicate_of"])
    except FileNotFoundError:
        log.warning("skip_near_duplicates: no near-duplicate table at %s yet (gan-augment report writes it); "
                    "training on every image", redact_url(url))
        return {}
    return dict(zip(table.column("uri").to_pylist(), table.column("near_duplicate_of").to_pylist()))
