"""SyntheticDataset and the synthetic table of a class-conditional model."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import torch

from gan_augment.export.synthetic import SyntheticDataset
from gan_augment.export.tables import export_samples
from gan_augment.gan.checkpoint import load_model


def test_conditional_dataset_yields_image_label_pairs_by_class(conditional_model_dir):
    ds = SyntheticDataset(conditional_model_dir, num_samples_per_class=5, seed=2)
    assert len(ds) == 10 and ds.classes == ["flat", "round"] and ds.targets == ["flat"] * 5 + ["round"] * 5
    image, label = ds[7]
    assert image.shape == (1, 16, 16) and label == "round"
    # A row is a function of (model, seed, index, label): the same sample whatever else is asked for.
    only_round = SyntheticDataset(conditional_model_dir, labels=["round"], num_samples_per_class=3, seed=2)
    assert torch.equal(only_round[2][0], ds[7][0])
    assert not torch.equal(ds[2][0], ds[7][0])  # same noise, other class
    uneven = SyntheticDataset(conditional_model_dir, num_samples_per_class={"flat": 1, "round": 2}, seed=2,
                              target_transform=ds.class_to_idx.__getitem__)
    assert [label for _, label in (uneven[i] for i in range(3))] == [0, 1, 1]


def test_conditional_dataset_rejects_bad_requests(conditional_model_dir, trained_model_dir):
    with pytest.raises(ValueError, match="num_samples_per_class"):
        SyntheticDataset(conditional_model_dir, num_samples=4)
    with pytest.raises(ValueError, match="not distinct classes"):
        SyntheticDataset(conditional_model_dir, labels=["square"], num_samples_per_class=4)
    with pytest.raises(ValueError, match="not class-conditional"):
        SyntheticDataset(trained_model_dir, num_samples_per_class=4)


def test_export_writes_a_label_column_and_reads_back_as_pairs(conditional_model_dir, tmp_path):
    result = export_samples(conditional_model_dir, str(tmp_path / "syn"), 3, seed=1)
    table = pq.read_table(result.files[0])
    assert result.rows == 6 and table.column("label").to_pylist() == ["flat"] * 3 + ["round"] * 3
    assert table.column("index").to_pylist() == [0, 1, 2] * 2
    back = SyntheticDataset.from_parquet(str(tmp_path / "syn"))
    made = SyntheticDataset(load_model(conditional_model_dir), num_samples_per_class=3, seed=1)
    assert back.classes == ["flat", "round"]
    for i in range(6):
        assert back[i][1] == made[i][1] and torch.equal(back[i][0], made[i][0])


def test_unconditional_export_has_a_null_label_and_tables_without_it_still_read(trained_model_dir, tmp_path):
    result = export_samples(trained_model_dir, str(tmp_path / "syn.parquet"), 4)
    table = pq.read_table(result.files[0])
    assert table.column("label").null_count == 4
    pq.write_table(table.drop_columns(["label"]), str(tmp_path / "old.parquet"))  # a table from before labels
    old = SyntheticDataset.from_parquet(str(tmp_path / "old.parquet"))
    assert len(old) == 4 and torch.equal(old[0], SyntheticDataset.from_parquet(str(tmp_path / "syn.parquet"))[0])
