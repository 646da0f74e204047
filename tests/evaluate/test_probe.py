"""The few-label probe: near-perfect on separable data, chance on noise, the same from arrays and
from a features table, and the pixels / random D / trained D comparison."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL

from gan_augment.config import ModelConfig
from gan_augment.evaluate.probe import (
    C_GRID,
    FIXED_C,
    compare_features,
    few_label_probe,
    fit_probe,
    random_discriminator,
)
from gan_augment.gan.checkpoint import load_model
from gan_augment.io.parquet import gan_augment_metadata
from gan_augment.io.tables import features_table, write_features


def clusters(per_class: int, classes: int = 3, dim: int = 20, spread: float = 1.0, seed: int = 0):
    """Gaussian clusters around random centres `spread` apart on average, and their labels."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((classes, dim)) * spread
    labels = np.repeat(np.arange(classes), per_class)
    return (centres[labels] + rng.standard_normal((len(labels), dim))).astype(np.float32), labels


def test_separable_data_is_classified_almost_perfectly():
    pool, pool_labels = clusters(100, spread=4.0, seed=1)
    test, test_labels = clusters(100, spread=4.0, seed=2)
    for k in (1, 5, 10):
        result = few_label_probe(pool, pool_labels, k, test, test_labels, draws=4, seed=0)
        assert result.mean >= 0.97, (k, result)
        assert len(result.accuracies) == 4 and result.num_classes == 3 and result.num_test == 300
        assert result.feature_dim == 20
    assert few_label_probe(pool, pool_labels, 1, test, test_labels, draws=3).c_values == (FIXED_C,) * 3
    chosen = few_label_probe(pool, pool_labels, 5, test, test_labels, draws=3).c_values
    assert set(chosen) <= set(C_GRID)


def test_noise_is_classified_at_chance():
    rng = np.random.default_rng(3)
    pool, test = rng.standard_normal((600, 20)), rng.standard_normal((600, 20))
    pool_labels, test_labels = rng.integers(0, 3, 600), rng.integers(0, 3, 600)
    result = few_label_probe(pool, pool_labels, 10, test, test_labels, draws=5, seed=0)
    assert abs(result.mean - 1 / 3) < 0.07 and result.std > 0


def test_draws_are_seeded_and_labels_may_be_strings():
    pool, pool_labels = clusters(20, spread=1.0, seed=4)
    test, test_labels = clusters(30, spread=1.0, seed=5)
    names = np.array(["cat", "dog", "owl"])
    first = few_label_probe(pool, names[pool_labels], 2, torch.from_numpy(test), names[test_labels], seed=7)
    assert first == few_label_probe(pool, names[pool_labels], 2, test, names[test_labels], seed=7)
    assert first != few_label_probe(pool, names[pool_labels], 2, test, names[test_labels], seed=8)
    as_dict = first.to_dict()
    assert as_dict["mean"] == pytest.approx(np.mean(as_dict["accuracies"])) and as_dict["std"] == first.std


def test_a_features_table_joined_by_uri(tmp_path):
    pool, pool_labels = clusters(20, spread=2.0, seed=6)
    test, test_labels = clusters(20, spread=2.0, seed=7)
    uris = [f"s3://lake/scans/img-{i:03d}.png" for i in range(len(pool) + 5)]
    extra = np.zeros((5, pool.shape[1]), np.float32)  # rows without a label are left out
    url = str(tmp_path / "features.parquet")
    write_features(url, [features_table(uris, dataset="scans", model_id="m", features=np.concatenate([pool, extra]))],
                   pool.shape[1], gan_augment_metadata("scans", "m"))
    labels = {uri: int(label) for uri, label in zip(uris, pool_labels)}
    from_table = few_label_probe(url, labels, 3, test, test_labels, draws=3)
    assert from_table == few_label_probe(pool, pool_labels, 3, test, test_labels, draws=3)
    with pytest.raises(ValueError, match="none of the 65 uris .* has a label"):
        few_label_probe(url, {"elsewhere.png": 0}, 1, test, test_labels)
    with pytest.raises(ValueError, match="need features with uris"):
        few_label_probe(pool, labels, 1, test, test_labels)


def test_bad_input_is_a_clear_error():
    pool, pool_labels = clusters(4)
    with pytest.raises(ValueError, match="class 0 has 4 labelled pool rows, fewer than labelled_per_class=5"):
        few_label_probe(pool, pool_labels, 5, pool, pool_labels)
    with pytest.raises(ValueError, match=r"test labels \[7\] never occur in the pool"):
        few_label_probe(pool, pool_labels, 1, pool[:2], [0, 7])
    with pytest.raises(ValueError, match="11 labels for 12 feature rows"):
        few_label_probe(pool, pool_labels[:11], 1, pool, pool_labels)
    with pytest.raises(ValueError, match="20-d but test features 3-d"):
        few_label_probe(pool, pool_labels, 1, pool[:, :3], pool_labels)
    with pytest.raises(ValueError, match="at least 2"):
        few_label_probe(pool, np.zeros(12), 1, pool, np.zeros(12))
    with pytest.raises(ValueError, match="test split is empty"):
        few_label_probe(pool, pool_labels, 1, pool[:0], [])


def test_random_discriminator_is_seeded_and_leaves_the_global_rng_alone():
    config = ModelConfig(**TINY_MODEL)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = random_discriminator(config, seed=1), random_discriminator(config, seed=1)
    assert torch.rand(1) == before
    assert not a.training
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = random_discriminator(config, seed=2)
    assert not torch.equal(a.blocks[0][0].weight, c.blocks[0][0].weight)


def test_compare_features_probes_three_feature_spaces(random_model_dir):
    g = torch.Generator().manual_seed(0)
    # Two classes a linear probe separates from pixels: bright and dark images.
    labels = torch.arange(40) % 2
    images = (torch.rand(40, 1, 16, 16, generator=g) * 60 + labels[:, None, None, None] * 150).to(torch.uint8)
    results = compare_features(load_model(random_model_dir), images[:20], labels[:20].tolist(), images[20:],
                               labels[20:].tolist(), labelled_per_class=(1, 3), draws=2)
    assert list(results) == ["pixels", "random D", "trained D"]
    assert all(list(by_k) == [1, 3] for by_k in results.values())
    assert results["pixels"][3].feature_dim == 256 and results["trained D"][3].feature_dim == (8 + 16) * 2 * 2
    assert results["pixels"][3].mean == 1.0


def test_fit_probe_labels_the_rest_of_a_pool():
    pool, labels = clusters(100, spread=4.0, seed=1)
    labelled = np.concatenate([np.flatnonzero(labels == c)[:5] for c in range(3)])
    classifier = fit_probe(pool[labelled], labels[labelled])
    assert (classifier.predict(pool) == labels).mean() >= 0.97
