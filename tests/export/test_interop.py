"""The exported tables as the data ecosystem reads them, with the real libraries: pyarrow, pandas,
polars, DuckDB and Hugging Face `datasets`; and the augmentation recipe in a torchvision loop."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # `datasets` must never reach for the network here

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import write_png_folder
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from gan_augment import SyntheticDataset, export_features, export_samples, extract_features


@pytest.fixture(scope="module")
def exports(random_model_dir, tmp_path_factory) -> dict[str, str]:
    """A synthetic folder of two parts, a synthetic single file and a features folder."""
    root = tmp_path_factory.mktemp("exports")
    store = str(root / "store" / "scans")
    write_png_folder(store, 12)
    export_samples(random_model_dir, str(root / "synthetic"), 40, seed=2, block_size=16, part_bytes=5_000)
    export_samples(random_model_dir, str(root / "one.parquet"), 10, seed=2)
    export_features(extract_features(random_model_dir, store), str(root / "features"))
    return {"synthetic": str(root / "synthetic"), "single": str(root / "one.parquet"),
            "features": str(root / "features"), "glob_synthetic": str(root / "synthetic" / "*.parquet"),
            "glob_features": str(root / "features" / "*.parquet")}


def test_pyarrow_and_pandas(exports):
    assert len(os.listdir(exports["synthetic"])) >= 2
    synthetic = pq.read_table(exports["synthetic"]).to_pandas()
    assert list(synthetic["index"]) == list(range(40)) and synthetic["image"][0]["bytes"][:4] == b"\x89PNG"
    features = pq.read_table(exports["features"]).to_pandas()
    assert len(features) == 12 and len(features["feature"][0]) == 96
    assert features["feature"][0].dtype == np.float32
    import pandas as pd

    assert len(pd.read_parquet(exports["single"])) == 10


def test_polars(exports):
    pl = pytest.importorskip("polars")
    synthetic = pl.read_parquet(exports["glob_synthetic"])
    assert synthetic.height == 40 and synthetic.schema["image"] == pl.Struct({"bytes": pl.Binary, "path": pl.String})
    features = pl.read_parquet(exports["glob_features"])
    assert features.schema["feature"] == pl.Array(pl.Float32, 96)
    assert features["feature"].to_numpy().shape == (12, 96)


def test_duckdb(exports):
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(f"SELECT count(*), min(index), max(index), min(width) "
                      f"FROM read_parquet('{exports['glob_synthetic']}')").fetchall()
    assert rows == [(40, 0, 39, 16)]
    png = duckdb.sql(f"SELECT image.bytes FROM read_parquet('{exports['single']}') WHERE index = 3").fetchall()[0][0]
    assert bytes(png)[:4] == b"\x89PNG"
    # Parquet has no fixed-size list type (the size lives in pyarrow's schema metadata), so DuckDB
    # reads a variable list; the cast to its array type always succeeds.
    dims = duckdb.sql(f"SELECT DISTINCT len(feature), typeof(feature::FLOAT[96]) "
                      f"FROM read_parquet('{exports['glob_features']}')").fetchall()
    assert dims == [(96, "FLOAT[96]")]


def test_hugging_face_datasets_decodes_images(exports, tmp_path):
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("parquet", data_files=exports["glob_synthetic"], split="train",
                                   cache_dir=str(tmp_path / "hf"))
    assert isinstance(loaded.features["image"], datasets.Image)
    image = loaded[5]["image"]
    assert image.size == (16, 16) and image.mode == "L"
    expected = SyntheticDataset.from_parquet(exports["synthetic"], output="pil")[5]
    assert np.array_equal(np.asarray(image), np.asarray(expected))
    features = datasets.load_dataset("parquet", data_files=exports["glob_features"], split="train",
                                     cache_dir=str(tmp_path / "hf"))
    assert len(features) == 12 and len(features[0]["feature"]) == 96


def test_torchvision_loop_on_real_plus_synthetic(random_model_dir, tmp_path):
    root = tmp_path / "real"
    write_png_folder(str(root / "blobs"), 16)  # ImageFolder: one class folder, label 0
    to_tensor = v2.Compose([v2.ToImage(), v2.Grayscale(), v2.ToDtype(torch.float32, scale=True)])
    real = ImageFolder(str(root), transform=to_tensor)
    synthetic = SyntheticDataset(random_model_dir, num_samples=24, seed=0, label=1, output="pil", transform=to_tensor)
    loader = DataLoader(ConcatDataset([real, synthetic]), batch_size=8, shuffle=True, num_workers=2,
                        persistent_workers=True, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 2))
    optimizer = torch.optim.SGD(classifier.parameters(), lr=0.1)
    seen = {0: 0, 1: 0}
    for _ in range(2):
        for images, labels in loader:
            assert images.shape[1:] == (1, 16, 16) and images.dtype == torch.float32
            loss = nn.functional.cross_entropy(classifier(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for label in labels.tolist():
                seen[label] += 1
    assert seen == {0: 32, 1: 48} and torch.isfinite(loss)
