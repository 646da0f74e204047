"""The synthetic and features tables: schemas, metadata, streamed part files, atomic writes and
schema checks on read."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gan_augment.io.fsio import atomic_open, get_fs
from gan_augment.io.parquet import gan_augment_metadata, read_gan_augment_metadata, write_parts
from gan_augment.io.tables import (
    features_matrix,
    features_table,
    read_features,
    read_features_matrix,
    read_synthetic,
    synthetic_table,
    write_features,
    write_synthetic,
)


def synthetic_rows(start: int, count: int, png_size: int = 100) -> pa.Table:
    indices = range(start, start + count)
    return synthetic_table([bytes([i % 256]) * png_size for i in indices], dataset="d", model_id="m",
                           seeds=[2**32 + i for i in indices], indices=indices, width=16, height=16)


def feature_rows(start: int, count: int, dim: int = 8) -> pa.Table:
    values = np.arange(start * dim, (start + count) * dim, dtype=np.float32).reshape(count, dim)
    return features_table([f"s3://b/d/{i}.png" for i in range(start, start + count)], dataset="d", model_id="m",
                          features=values)


META = gan_augment_metadata("d", "m", {"image_size": 16}, table="test")


def test_synthetic_schema_and_metadata(tmp_path):
    url = str(tmp_path / "s.parquet")
    assert write_synthetic(url, [synthetic_rows(0, 5)], META) == [url]
    schema = pq.read_schema(url)
    assert schema.field("image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert [schema.field(n).type for n in ("seed", "index", "width", "height")] == [pa.int64()] * 2 + [pa.int32()] * 2
    hf = json.loads(schema.metadata[b"huggingface"])
    assert hf["info"]["features"]["image"] == {"_type": "Image"}
    assert read_gan_augment_metadata(schema)["model_id"] == "m"
    table = read_synthetic(url)
    assert table.column("index").to_pylist() == list(range(5))
    assert table.column("image").combine_chunks().field("path")[2].as_py() == "d-00000002.png"


def test_png_bytes_are_stored_uncompressed_and_features_zstd(tmp_path):
    synthetic, features = str(tmp_path / "s.parquet"), str(tmp_path / "f.parquet")
    write_synthetic(synthetic, [synthetic_rows(0, 5)], META)
    write_features(features, [feature_rows(0, 5)], 8, META)
    group = pq.ParquetFile(synthetic).metadata.row_group(0)
    codecs = {group.column(i).path_in_schema: group.column(i).compression for i in range(group.num_columns)}
    assert codecs["image.bytes"] == "UNCOMPRESSED" and codecs["seed"] == "ZSTD"
    group = pq.ParquetFile(features).metadata.row_group(0)
    assert {group.column(i).compression for i in range(group.num_columns)} == {"ZSTD"}
    assert read_features(features).schema.field("feature").type.list_size == 8


def test_folder_output_is_split_into_bounded_parts_and_stale_parts_go(tmp_path):
    out = str(tmp_path / "synthetic")
    tables = [synthetic_rows(start, 50, png_size=1000) for start in range(0, 400, 50)]  # ~400 kB
    files = write_parts(out, tables, synthetic_rows(0, 1).schema, part_bytes=100_000, row_group_bytes=30_000)
    assert [os.path.basename(f) for f in files] == [f"part-{k:05d}.parquet" for k in range(len(files))]
    assert len(files) >= 3
    for file in files:
        meta = pq.ParquetFile(file).metadata
        assert meta.num_row_groups >= 2  # row groups of ~30 kB inside parts of ~100 kB
        assert os.path.getsize(file) < 200_000
    assert read_synthetic(out).column("index").to_pylist() == list(range(400))
    files = write_synthetic(out, [synthetic_rows(0, 10)], META)  # a smaller re-export replaces all parts
    assert sorted(os.listdir(out)) == ["part-00000.parquet"]
    assert read_synthetic(out).num_rows == 10


def test_the_features_matrix_reads_part_by_part_as_the_whole_table_does(tmp_path, monkeypatch):
    from gan_augment.io import tables

    monkeypatch.setattr(tables, "ROW_GROUPS_AT_ONCE", 3)  # parts of 4 row groups: a batch of 3, then of 1
    out = str(tmp_path / "features")
    rows = [feature_rows(start, 50, dim=64) for start in range(0, 400, 50)]
    files = write_parts(out, rows, rows[0].schema, part_bytes=40_000, row_group_bytes=10_000)
    assert len(files) >= 3 and pq.ParquetFile(files[0]).metadata.num_row_groups >= 2
    uris, matrix = read_features_matrix(out)
    expected_uris, expected = features_matrix(read_features(out))
    assert uris == expected_uris == [f"s3://b/d/{i}.png" for i in range(400)]
    assert matrix.dtype == np.float32 and np.array_equal(matrix, expected)
    assert np.array_equal(matrix[-1], np.arange(399 * 64, 400 * 64))
    assert read_features_matrix(write_features(str(tmp_path / "none"), [], 8, META)[0])[1].shape == (0, 8)


def test_the_features_matrix_reads_from_every_store(store):
    url = store.url_of("out/ds/features")
    rows = [feature_rows(start, 40, dim=16) for start in range(0, 120, 40)]
    write_parts(url, rows, rows[0].schema, storage_options=store.storage_options, part_bytes=4_000,
                row_group_bytes=1_500)
    uris, matrix = read_features_matrix(url, store.storage_options)
    expected_uris, expected = features_matrix(read_features(url, store.storage_options))
    assert uris == expected_uris and len(uris) == 120 and np.array_equal(matrix, expected)


def test_no_rows_still_writes_the_schema(tmp_path):
    out = str(tmp_path / "features")
    files = write_features(out, [], 8, META)
    assert read_features(files[0]).num_rows == 0
    assert read_features(out).schema.field("feature").type.list_size == 8


def test_a_failed_export_leaves_the_previous_file_and_no_temporary(tmp_path):
    url = str(tmp_path / "f.parquet")
    write_features(url, [feature_rows(0, 3)], 8, META)

    def broken():
        yield feature_rows(0, 3)
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError, match="generator failed"):
        write_features(url, broken(), 8, META)
    assert read_features(url).num_rows == 3
    assert os.listdir(tmp_path) == ["f.parquet"]


def test_atomic_open_on_memory_and_local(tmp_path):
    with atomic_open("memory://exports/x.bin") as f:
        f.write(b"abc")
    fs, path = get_fs("memory://exports/x.bin")
    assert fs.cat_file(path) == b"abc"
    with pytest.raises(KeyError):
        with atomic_open(str(tmp_path / "y.bin")) as f:
            f.write(b"partial")
            raise KeyError("stop")
    assert os.listdir(tmp_path) == []


def test_memory_url_round_trip():
    files = write_synthetic("memory://lake-out/d/synthetic", [synthetic_rows(0, 7)], META)
    assert files == ["memory://lake-out/d/synthetic/part-00000.parquet"]
    assert read_synthetic("memory://lake-out/d/synthetic").num_rows == 7


def test_wrong_schema_is_one_clear_error(tmp_path):
    synthetic, features = str(tmp_path / "s.parquet"), str(tmp_path / "f.parquet")
    write_synthetic(synthetic, [synthetic_rows(0, 2)], META)
    write_features(features, [feature_rows(0, 2)], 8, META)
    with pytest.raises(ValueError, match="not a synthetic table: it has no column 'image'"):
        read_synthetic(features)
    with pytest.raises(ValueError, match="not a features table: it has no column 'uri'"):
        read_features(synthetic)
    odd = str(tmp_path / "odd.parquet")
    pq.write_table(pa.table({"uri": ["a"], "dataset": ["d"], "model_id": ["m"], "feature": [[1.0, 2.0]]}), odd)
    with pytest.raises(ValueError, match="fixed_size_list<float32>"):
        read_features(odd)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        read_synthetic(str(tmp_path / "junk.parquet"))
    with pytest.raises(FileNotFoundError):
        read_synthetic(str(tmp_path / "missing.parquet"))
    os.makedirs(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="no .parquet files"):
        read_features(str(tmp_path / "nothing"))
    mixed = tmp_path / "mixed"
    write_features(str(mixed / "a.parquet"), [feature_rows(0, 2, dim=8)], 8, META)
    write_features(str(mixed / "b.parquet"), [feature_rows(0, 2, dim=4)], 4, META)
    with pytest.raises(ValueError, match="do not share one schema"):
        read_features(str(mixed))
    with pytest.raises(ValueError, match=r"hold features of widths \[4, 8\]"):
        read_features_matrix(str(mixed))
    with pytest.raises(ValueError, match="not a features table: it has no column 'uri'"):
        read_features_matrix(synthetic)
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        read_features_matrix(str(tmp_path / "junk.parquet"))
    with pytest.raises(FileNotFoundError):
        read_features_matrix(str(tmp_path / "missing.parquet"))


def test_atomic_open_gives_a_local_file_the_mode_open_would(tmp_path):
    mask = os.umask(0o022)
    try:
        with atomic_open(str(tmp_path / "manifest.parquet")) as f:
            f.write(b"x")
    finally:
        os.umask(mask)
    assert (tmp_path / "manifest.parquet").stat().st_mode & 0o777 == 0o644
