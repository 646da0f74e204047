"""Batches are a pure function of (seed, step), so a resumed run sees the same ones."""

from __future__ import annotations

import torch

from gan_augment.training.batches import BatchSampler


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
