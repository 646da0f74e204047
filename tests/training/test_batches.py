"""Batches are a pure function of (seed, step), so a resumed run sees the same ones."""

from __future__ import annotations

import torch

from gan_augment.gan.pixels import to_model_range
from gan_augment.training.batches import BatchSampler, RealBatches


def test_batch_sampler_is_a_pure_function_of_seed_and_step():
    sampler = BatchSampler(10, 4, seed=3)
    batches = [sampler.indices(step) for step in range(5)]  # 20 indices: two whole epochs
    assert all(len(b) == 4 for b in batches)
    first_epoch, second_epoch = torch.cat(batches)[:10], torch.cat(batches)[10:]
    assert sorted(first_epoch.tolist()) == sorted(second_epoch.tolist()) == list(range(10))
    assert not torch.equal(first_epoch, second_epoch)  # a fresh permutation per epoch
    fresh = BatchSampler(10, 4, seed=3)
    assert torch.equal(fresh.indices(3), batches[3])  # no state carried between steps: exact resume
    assert not torch.equal(BatchSampler(10, 4, seed=4).indices(0), batches[0])
    assert BatchSampler(10, 4, seed=3, device="cpu").indices(1).device.type == "cpu"


def test_real_batches_are_the_sampled_images_in_the_model_range():
    images = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    sampler, cpu = BatchSampler(10, 4, seed=3), torch.device("cpu")
    batch = RealBatches(images, sampler, cpu, memory_format=torch.channels_last)(2)  # (4, 1, 4, 4)
    assert torch.equal(batch, to_model_range(images[sampler.indices(2)]))
    assert batch.is_contiguous(memory_format=torch.channels_last)
    flips = [RealBatches(images, sampler, cpu, flip_rng=torch.Generator().manual_seed(seed))(2) for seed in (0, 0, 1)]
    assert torch.equal(flips[0], flips[1])  # the flips are drawn from the generator given
    for flipped in flips:
        assert all(torch.equal(a, b) or torch.equal(a, b.flip(2)) for a, b in zip(flipped, batch))
    assert any(not torch.equal(a, b) for a, b in zip(flips[0], batch))
