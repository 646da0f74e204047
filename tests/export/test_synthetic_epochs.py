"""SyntheticDataset as torchvision code expects it: ImageFolder-style labels (`classes`,
`class_to_idx`, `targets`, `target_transform`), fresh samples each epoch that stay a pure
function of (model, seed, epoch, index) in every DataLoader worker, and batched fetching through
a concatenation with real data."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_MODEL, write_random_model
from torch.utils.data import ConcatDataset, DataLoader, TensorDataset, WeightedRandomSampler

from gan_augment.config import ModelConfig
from gan_augment.export.concat import BatchedConcatDataset
from gan_augment.export.synthetic import SyntheticDataset
from gan_augment.export.tables import export_samples
from gan_augment.gan.sampling import epoch_seed, sample_seed


@pytest.fixture(scope="module")
def two_models(random_model_dir, tmp_path_factory) -> dict[int, str]:
    """{3: a model, 7: another}: per-class generators keyed by ImageFolder class indices."""
    other = str(tmp_path_factory.mktemp("other") / "other" / "model")
    return {3: random_model_dir, 7: write_random_model(other, ModelConfig(**TINY_MODEL), "other", seed=1)}


def test_labels_follow_imagefolder(two_models):
    ds = SyntheticDataset(two_models, num_samples_per_model={3: 2, 7: 4}, seed=0, output="uint8")
    assert ds.classes == [3, 7] and ds.class_to_idx == {3: 0, 7: 1}
    assert ds.targets == [3, 3, 7, 7, 7, 7] == [ds[i][1] for i in range(len(ds))]
    to_index = SyntheticDataset(two_models, num_samples_per_model={3: 2, 7: 4}, seed=0, output="uint8",
                                target_transform=ds.class_to_idx.__getitem__)
    assert [to_index[i][1] for i in range(6)] == [0, 0, 1, 1, 1, 1] and to_index.targets == ds.targets
    assert torch.equal(to_index[5][0], ds[5][0])
    unlabelled = SyntheticDataset(two_models[3], num_samples=3)
    assert unlabelled.classes == [] and unlabelled.class_to_idx == {} and unlabelled.targets is None
    assert SyntheticDataset(two_models[3], num_samples=3, label="cat").targets == ["cat"] * 3


def test_class_balanced_sampling_from_targets(two_models):
    ds = SyntheticDataset(two_models, num_samples_per_model={3: 10, 7: 90}, seed=0, output="uint8")
    counts = {label: ds.targets.count(label) for label in ds.classes}
    weights = [1.0 / counts[target] for target in ds.targets]
    sampler = WeightedRandomSampler(weights, num_samples=2000, generator=torch.Generator().manual_seed(0))
    labels = torch.cat([batch[1] for batch in DataLoader(ds, batch_size=500, sampler=sampler)])
    assert 0.4 < (labels == 3).float().mean() < 0.6  # balanced, where the data is 10% / 90%


def test_each_epoch_is_the_run_with_the_epoch_seed(two_models):
    ds = SyntheticDataset(two_models[3], num_samples=40, seed=5, block_size=16, output="uint8")
    epoch0 = ds.images(range(40))
    ds.set_epoch(2)
    assert ds.epoch == 2 and ds.sample_seed(9) == sample_seed(epoch_seed(5, 2), 9)
    epoch2 = ds.images(range(40))
    run = SyntheticDataset(two_models[3], num_samples=40, seed=epoch_seed(5, 2), block_size=16, output="uint8")
    assert torch.equal(epoch2, run.images(range(40)))  # a pure function of (model, seed, epoch, index)
    assert not any(torch.equal(a, b) for a, b in zip(epoch0, epoch2))  # fresh samples
    ds.set_epoch(0)
    assert torch.equal(ds.images(range(40)), epoch0)
    with pytest.raises(ValueError, match="epoch"):
        ds.set_epoch(-1)


def test_an_epoch_equals_its_export(two_models, tmp_path):
    ds = SyntheticDataset(two_models[3], num_samples=8, seed=1, output="uint8")
    ds.set_epoch(3)
    out = str(tmp_path / "epoch3.parquet")
    export_samples(two_models[3], out, 8, seed=epoch_seed(1, 3))
    stored = SyntheticDataset.from_parquet(out, output="uint8")
    assert torch.equal(stored.images(range(8)), ds.images(range(8)))
    assert stored.sample_seed(4) == ds.sample_seed(4)
    with pytest.raises(ValueError, match="one epoch"):
        stored.set_epoch(1)


@pytest.mark.parametrize("context, workers, persistent", [("fork", 2, True), ("fork", 2, False),
                                                           ("spawn", 1, True)])
def test_epochs_reach_dataloader_workers(two_models, context, workers, persistent):
    ds = SyntheticDataset(two_models, num_samples_per_model=24, seed=4, block_size=16, output="uint8")
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=workers, persistent_workers=persistent,
                        multiprocessing_context=context, generator=torch.Generator().manual_seed(0))
    for epoch in (0, 1, 2):
        ds.set_epoch(epoch)  # before iterating, as with DistributedSampler
        reference = SyntheticDataset(two_models, num_samples_per_model=24, seed=epoch_seed(4, epoch), block_size=16,
                                     output="uint8")
        images, labels = (torch.cat(parts) for parts in zip(*loader))
        expected = {(bytes(image.numpy()), int(label)) for image, label in zip(*next(iter(
            DataLoader(reference, batch_size=48))))}
        assert {(bytes(image.numpy()), int(label)) for image, label in zip(images, labels)} == expected


def test_concatenation_fetches_each_member_in_one_call(two_models):
    real = TensorDataset(torch.zeros(10, 1, 16, 16, dtype=torch.uint8), torch.full((10,), 3))
    synthetic = SyntheticDataset(two_models, num_samples_per_model=20, seed=0, output="uint8")
    calls = []
    fetch = synthetic.__getitems__
    synthetic.__getitems__ = lambda indices: calls.append(len(indices)) or fetch(indices)
    both, plain = BatchedConcatDataset([real, synthetic]), ConcatDataset([real, synthetic])
    order = [49, 0, 12, -1, 30, 9, 10]
    items = both.__getitems__(order)
    assert calls == [5]  # one call for the five synthetic samples
    for item, index in zip(items, order):
        assert torch.equal(item[0], plain[index][0]) and int(item[1]) == int(plain[index][1])
    calls.clear()
    batches = list(DataLoader(both, batch_size=25, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert sum(len(batch[0]) for batch in batches) == 50 and len(calls) == len(batches) == 2
