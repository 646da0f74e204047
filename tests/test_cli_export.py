"""`gan-augment sample` and `gan-augment features`: outputs, and one clear error line for bad input."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_png_folder

from gan_augment.cli import main
from gan_augment.export.synthetic import SyntheticDataset
from gan_augment.gan.visualize import encode_png
from gan_augment.io.tables import read_features, read_synthetic


def test_sample_writes_the_synthetic_table_of_the_dataset(trained_model_dir, tmp_path, capsys):
    out = str(tmp_path / "synthetic")
    assert main(["sample", trained_model_dir, "--n", "20", "--seed", "4", "--out", out]) == 0
    assert "part-00000.parquet" in capsys.readouterr().out
    table = read_synthetic(out)
    ds = SyntheticDataset(trained_model_dir, num_samples=20, seed=4, output="uint8")
    png = table.column("image").combine_chunks().field("bytes").to_pylist()
    assert table.column("index").to_pylist() == list(range(20))
    assert all(png[i] == encode_png(ds[i]) for i in range(20))
    single = str(tmp_path / "one.parquet")
    assert main(["sample", trained_model_dir, "--n", "3", "--seed", "4", "--out", single]) == 0
    assert read_synthetic(single).column("image").combine_chunks().field("bytes").to_pylist() == png[:3]


def test_sample_png_grid_still_works(trained_model_dir, tmp_path):
    out = str(tmp_path / "grid.png")
    assert main(["sample", trained_model_dir, "--n", "9", "--out", out]) == 0
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_features_writes_one_row_per_ok_image(trained_model_dir, tmp_path, capsys):
    source = str(tmp_path / "store" / "cams")
    write_png_folder(source, 7)
    (tmp_path / "store" / "cams" / "zero.jpg").write_bytes(b"")
    out = str(tmp_path / "features.parquet")
    assert main(["features", trained_model_dir, source, "--out", out, "--blocks", "2", "--batch-size", "3"]) == 0
    assert "rows: 7  skipped objects: 1  feature dim: 64" in capsys.readouterr().out
    table = read_features(out)
    assert table.num_rows == 7 and table.schema.field("feature").type.list_size == 64
    assert table.column_names == ["uri", "dataset", "model_id", "feature", "phash", "logit", "knn_distance",
                                  "outlier_score"]


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bad_input_exits_1_with_one_line(trained_model_dir, tmp_path, capsys):
    missing = str(tmp_path / "none" / "model")
    assert main(["sample", missing, "--out", str(tmp_path / "s.parquet")]) == 1
    assert "no trained model" in error_line(capsys)

    corrupt = tmp_path / "corrupt" / "model"
    corrupt.mkdir(parents=True)
    (corrupt / "model.pt").write_bytes(b"PK\x03\x04 truncated zip")
    assert main(["sample", str(corrupt), "--out", str(tmp_path / "s.parquet")]) == 1
    assert "refusing to load" in error_line(capsys)

    assert main(["sample", trained_model_dir, "--image-size", "64", "--out", str(tmp_path / "s.parquet")]) == 1
    assert "16x16 images with 1 channel(s), not the 64x64" in error_line(capsys)

    os.makedirs(tmp_path / "empty")
    assert main(["features", trained_model_dir, str(tmp_path / "empty"), "--out", str(tmp_path / "f")]) == 1
    assert "found no images" in error_line(capsys)

    assert main(["features", trained_model_dir, str(tmp_path / "empty"), "--blocks", "5",
                 "--out", str(tmp_path / "f")]) == 1
    assert "block 5 does not exist" in error_line(capsys)
    assert not os.path.exists(tmp_path / "s.parquet") and not os.path.exists(tmp_path / "f")


def test_reading_a_table_of_the_wrong_schema_is_one_error(tmp_path):
    url = str(tmp_path / "other.parquet")
    pq.write_table(pa.table({"uri": ["a"], "value": [1.0]}), url)
    with pytest.raises(ValueError, match="not a synthetic table: it has no column 'image'"):
        SyntheticDataset.from_parquet(url)
