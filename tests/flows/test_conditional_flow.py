"""The flows with a labels file: a class-conditional model and a labelled synthetic table."""

from __future__ import annotations

import csv
import os

import pyarrow.dataset as ds

from pipelines.export_dataset import export_dataset
from pipelines.train_dataset import train_dataset


def test_a_labels_file_gives_a_conditional_model_and_a_labelled_export(
        image_folder, tmp_path, tiny_model_config, tiny_train_config):
    store, out, labels = os.path.dirname(image_folder), str(tmp_path / "out"), str(tmp_path / "labels.csv")
    with open(labels, "w", newline="") as file:
        csv.writer(file).writerows([["uri", "label"], *([f"img-{i:03d}.png", "ab"[i % 2]] for i in range(6))])
    state = train_dataset("blobs", store, out, tiny_model_config, tiny_train_config, labels_url=labels,
                          return_state=True)
    assert state.name == "Completed", state.message
    again = train_dataset("blobs", store, out, tiny_model_config, tiny_train_config, labels_url=labels,
                          return_state=True)
    assert again.name == "Skipped"
    export_dataset("blobs", out, num_samples=3, features=False)
    table = ds.dataset(os.path.join(out, "blobs", "synthetic")).to_table()
    assert sorted(table.column("label").to_pylist()) == ["a"] * 3 + ["b"] * 3
