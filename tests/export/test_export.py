"""Parquet exports: every synthetic row is its dataset item, the seed column regenerates it,
features rows cover the decodable images, and both work on a real S3 endpoint."""

from __future__ import annotations

import io
import os

import numpy as np
import pyarrow.parquet as pq
import torch
from conftest import write_png_folder
from PIL import Image

from gan_augment.export.features import extract_features
from gan_augment.export.synthetic import SyntheticDataset
from gan_augment.export.tables import export_features, export_samples
from gan_augment.gan.checkpoint import load_model
from gan_augment.gan.sampling import generate_block, sample_seed
from gan_augment.gan.visualize import encode_png
from gan_augment.io.fsio import get_fs
from gan_augment.io.parquet import read_gan_augment_metadata
from gan_augment.io.tables import read_features, read_synthetic


def png_to_tensor(data: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as img:
        return torch.from_numpy(np.array(img)).unsqueeze(0)  # (1, H, W)


def test_every_row_is_the_dataset_item_byte_for_byte(random_model_dir, tmp_path):
    out = str(tmp_path / "synthetic")
    steps = []
    result = export_samples(random_model_dir, out, 300, seed=3, progress=lambda d, t: steps.append((d, t)))
    assert result.rows == 300 and steps == [(256, 300), (300, 300)]
    table = read_synthetic(out)
    ds = SyntheticDataset(random_model_dir, num_samples=300, seed=3, output="uint8")
    png = table.column("image").combine_chunks().field("bytes").to_pylist()
    assert table.column("index").to_pylist() == list(range(300))
    assert table.column("seed").to_pylist() == [sample_seed(3, i) for i in range(300)]
    assert set(table.column("width").to_pylist()) == set(table.column("height").to_pylist()) == {16}
    assert set(table.column("model_id").to_pylist()) == {"random-0"}
    for i in range(300):
        assert png[i] == encode_png(ds[i])
    assert torch.equal(png_to_tensor(png[299]), ds[299])
    meta = read_gan_augment_metadata(table.schema)
    assert meta["table"] == "synthetic" and meta["seed"] == 3 and meta["block_size"] == 256
    assert meta["config"]["image_size"] == 16
    back = SyntheticDataset.from_parquet(out, output="uint8")
    assert len(back) == 300 and all(torch.equal(back[i], ds[i]) for i in (0, 255, 256, 299))
    assert back.sample_seed(7) == sample_seed(3, 7)


def test_the_seed_column_alone_regenerates_its_row(random_model_dir, tmp_path):
    url = str(tmp_path / "one.parquet")
    export_samples(random_model_dir, url, 40, seed=9, block_size=16)
    row = read_synthetic(url).slice(37, 1).to_pylist()[0]
    seed, index = divmod(row["seed"], 2**32)
    generator = load_model(random_model_dir).generator
    block_size = read_gan_augment_metadata(pq.read_schema(url))["block_size"]
    image = generate_block(generator, seed, index // block_size, block_size)[index % block_size]
    assert (seed, index) == (9, 37) and encode_png(image) == row["image"]["bytes"]


def test_large_exports_are_split_into_parts(random_model_dir, tmp_path):
    out = str(tmp_path / "parts")
    result = export_samples(random_model_dir, out, 600, seed=0, block_size=64, part_bytes=40_000)
    assert len(result.files) > 2 and sorted(os.listdir(out)) == [os.path.basename(f) for f in result.files]
    assert read_synthetic(out).column("index").to_pylist() == list(range(600))


def test_features_export_has_one_row_per_decodable_image(random_model_dir, tmp_path):
    folder = str(tmp_path / "store" / "scans")
    write_png_folder(folder, 9)
    (tmp_path / "store" / "scans" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    features = extract_features(random_model_dir, folder, batch_size=4)
    result = export_features(features, str(tmp_path / "features"))
    assert result.rows == 9 and [os.path.basename(u) for u in result.skipped] == ["broken.png"]
    table = read_features(str(tmp_path / "features"))
    assert table.column("uri").to_pylist() == features.uris
    assert set(table.column("dataset").to_pylist()) == {"scans"}
    np.testing.assert_array_equal(np.stack(table.column("feature").to_numpy(zero_copy_only=False)),
                                  features.features)
    meta = read_gan_augment_metadata(table.schema)
    assert meta["protocol"] == {"blocks": [], "grid": 2, "pooling": "max"} and meta["feature_dim"] == 96
    assert meta["skipped"] == 1 and meta["source"] == folder


def test_exports_read_models_and_images_from_s3_and_write_there(random_model_dir, s3_bucket, s3_options, tmp_path):
    s3, lake = s3_options, s3_bucket.removeprefix("s3://")
    fs, _ = get_fs(s3_bucket, s3)
    fs.put_file(os.path.join(random_model_dir, "model.pt"), f"{lake}/out/random/model/model.pt")
    folder = str(tmp_path / "scans")
    write_png_folder(folder, 5)
    fs.put(folder + "/", f"{lake}/store/scans/", recursive=True)
    (tmp_path / "bad.png").write_bytes(b"")
    fs.put_file(str(tmp_path / "bad.png"), f"{lake}/store/scans/bad.png")

    model_url = f"s3://{lake}/out/random/model"
    export_samples(model_url, f"s3://{lake}/out/random/synthetic", 20, seed=1, storage_options=s3)
    back = SyntheticDataset.from_parquet(f"s3://{lake}/out/random/synthetic", output="uint8", storage_options=s3)
    direct = SyntheticDataset(model_url, num_samples=20, seed=1, output="uint8", storage_options=s3)
    assert all(torch.equal(back[i], direct[i]) for i in range(20))

    features = extract_features(model_url, f"s3://{lake}/store/scans", storage_options=s3)
    result = export_features(features, f"s3://{lake}/out/scans/features", storage_options=s3)
    assert result.rows == 5 and list(result.skipped) == [f"s3://{lake}/store/scans/bad.png"]
    assert read_features(f"s3://{lake}/out/scans/features", s3).num_rows == 5
    assert fs.ls(f"{lake}/out/scans/features", detail=False) == [f"{lake}/out/scans/features/part-00000.parquet"]
