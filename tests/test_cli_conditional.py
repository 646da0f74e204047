"""`gan-augment train --labels` and `sample` of a class-conditional model."""

from __future__ import annotations

import csv

from PIL import Image

from gan_augment.cli import main
from gan_augment.gan.checkpoint import load_model

TINY_FLAGS = ["--image-size", "16", "--channels", "1", "--ngf", "8", "--ndf", "8", "--latent-dim", "16",
              "--steps", "2", "--batch-size", "8"]


def test_train_with_a_labels_file_and_sample_one_grid_row_per_class(image_folder, tmp_path):
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["uri", "label", "note"])  # other columns, as select's picks have, are ignored
        writer.writerows([[f"img-{i:03d}.png", i % 3, ""] for i in range(9)])
        writer.writerow(["img-010.png", "", "not labelled yet"])
    out = str(tmp_path / "out")
    assert main(["train", image_folder, "--out", out, "--labels", str(labels), *TINY_FLAGS]) == 0
    model = load_model(f"{out}/blobs/model")
    assert model.classes == ["0", "1", "2"] and model.card["labels"]["labelled"] == 9
    grid = tmp_path / "grid.png"
    assert main(["sample", f"{out}/blobs/model", "--n", "4", "--out", str(grid)]) == 0
    with Image.open(grid) as image:  # 4 columns, 3 rows of 16-pixel samples with 2-pixel padding
        assert image.size == (2 + 4 * 18, 2 + 3 * 18)
    assert main(["sample", f"{out}/blobs/model", "--n", "2", "--out", str(tmp_path / "syn.parquet"),
                 "--json"]) == 0


def test_num_classes_without_labels_fails_clearly(image_folder, tmp_path, capsys):
    assert main(["train", image_folder, "--out", str(tmp_path / "out"), "--num-classes", "3", *TINY_FLAGS]) == 1
    assert "needs labels" in capsys.readouterr().err
