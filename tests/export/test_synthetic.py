"""SyntheticDataset: the determinism rule, batched generation, outputs, labels and bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, write_random_model
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from gan_augment.config import ModelConfig
from gan_augment.export.synthetic import SyntheticDataset
from gan_augment.gan.checkpoint import UnsafeFileError, load_model
from gan_augment.gan.sampling import sample_seed


def test_items_are_pure_in_model_seed_and_index(random_model_dir):
    large = SyntheticDataset(random_model_dir, num_samples=600, seed=1, output="uint8")
    small = SyntheticDataset(random_model_dir, num_samples=40, seed=1, output="uint8")
    order = [39, 0, 17, 17, 5]
    for i in order:  # another num_samples, another access order, repeated calls
        assert torch.equal(large[i], small[i])
    assert torch.equal(small[-1], small[39])
    assert len({small[i].numpy().tobytes() for i in range(40)}) == 40  # samples really differ
    other_seed = SyntheticDataset(random_model_dir, num_samples=40, seed=2, output="uint8")
    assert not torch.equal(other_seed[0], small[0])
    assert small.sample_seed(5) == sample_seed(1, 5)
    with pytest.raises(IndexError):
        small[40]


def test_a_block_is_one_generator_forward(random_model_dir):
    ds = SyntheticDataset(random_model_dir, num_samples=600, seed=0, block_size=256)
    calls = []
    ds.parts[0].generator.register_forward_hook(lambda module, args, out: calls.append(out.shape[0]))
    batches = list(DataLoader(ds, batch_size=64, num_workers=0))
    assert sum(batch.shape[0] for batch in batches) == 600
    assert calls == [256, 256, 256]  # three blocks cover 600 samples; none generated twice
    ds[3], ds[300]
    assert len(calls) == 3  # served from the block cache


def test_same_items_in_another_process_and_in_dataloader_workers(random_model_dir):
    ds = SyntheticDataset(random_model_dir, num_samples=70, seed=5, block_size=32, output="uint8")
    expected = ds.images(range(70))
    script = (
        "import sys, torch; from gan_augment.export.synthetic import SyntheticDataset; "
        "ds = SyntheticDataset(sys.argv[1], num_samples=70, seed=5, block_size=32, output='uint8'); "
        "sys.stdout.buffer.write(torch.stack([ds[i] for i in (69, 0, 33)]).numpy().tobytes())"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-c", script, random_model_dir], capture_output=True, env=env,
                         check=True).stdout
    assert out == expected[[69, 0, 33]].numpy().tobytes()
    order = torch.randperm(70, generator=torch.Generator().manual_seed(0)).split(16)  # shuffled batches
    seen = {}
    for indices, batch in zip(order, DataLoader(ds, batch_sampler=[b.tolist() for b in order], num_workers=2)):
        for i, image in zip(indices.tolist(), batch):
            seen[i] = image
    assert sorted(seen) == list(range(70))
    assert all(torch.equal(seen[i], expected[i]) for i in range(70))


def test_outputs_and_torchvision_transforms(random_model_dir):
    raw = SyntheticDataset(random_model_dir, num_samples=4, seed=0, output="uint8")[2]
    unit = SyntheticDataset(random_model_dir, num_samples=4, seed=0)[2]
    signed = SyntheticDataset(random_model_dir, num_samples=4, seed=0, output="signed")[2]
    pil = SyntheticDataset(random_model_dir, num_samples=4, seed=0, output="pil")[2]
    assert unit.dtype == torch.float32 and torch.equal(unit, raw.float() / 255)
    assert torch.allclose(signed, raw.float() / 127.5 - 1, atol=1e-6) and signed.min() >= -1
    assert isinstance(pil, Image.Image) and pil.mode == "L" and pil.size == (16, 16)
    assert np.array_equal(np.asarray(pil), raw[0].numpy())
    to_float = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    converted = SyntheticDataset(random_model_dir, num_samples=4, seed=0, output="pil", transform=to_float)[2]
    assert torch.allclose(converted, unit, atol=1e-6)
    flipped = SyntheticDataset(random_model_dir, num_samples=4, seed=0, output="uint8",
                               transform=v2.RandomHorizontalFlip(p=1.0))[2]
    assert torch.equal(flipped, raw.flip(-1))
    with pytest.raises(ValueError, match="output"):
        SyntheticDataset(random_model_dir, num_samples=4, output="bgr")


def test_one_generator_per_class_gives_labelled_pairs(trained_model_dir, random_model_dir, tmp_path):
    other = write_random_model(str(tmp_path / "other" / "model"), ModelConfig(**TINY_MODEL), "other", seed=1)
    ds = SyntheticDataset({"blobs": trained_model_dir, "other": load_model(other)},
                          num_samples_per_model={"blobs": 3, "other": 5}, seed=2, output="uint8")
    assert len(ds) == 8
    assert [ds[i][1] for i in range(8)] == ["blobs"] * 3 + ["other"] * 5
    alone = SyntheticDataset(other, num_samples=5, seed=2, output="uint8")
    assert all(torch.equal(ds[3 + i][0], alone[i]) for i in range(5))
    batch_images, batch_labels = next(iter(DataLoader(ds, batch_size=8)))
    assert batch_images.shape == (8, 1, 16, 16) and list(batch_labels) == ["blobs"] * 3 + ["other"] * 5
    single = SyntheticDataset(random_model_dir, num_samples=2, label=7)
    assert single[1][1] == 7
    with pytest.raises(ValueError, match="num_samples_per_model"):
        SyntheticDataset({"a": trained_model_dir}, num_samples=3)
    with pytest.raises(ValueError, match="'b'"):
        SyntheticDataset({"a": trained_model_dir, "b": other}, num_samples_per_model={"a": 3})


def test_a_model_of_another_shape_is_refused(random_model_dir, tmp_path):
    with pytest.raises(ValueError, match="16x16 images with 1 channel.*32x32"):
        SyntheticDataset(random_model_dir, num_samples=4, image_size=32)
    with pytest.raises(ValueError, match="channel"):
        SyntheticDataset(random_model_dir, num_samples=4, channels=3)
    rgb = write_random_model(str(tmp_path / "rgb" / "model"), ModelConfig(**{**TINY_MODEL, "image_size": 32,
                                                                                "channels": 3}))
    with pytest.raises(ValueError, match="one image shape"):
        SyntheticDataset({0: random_model_dir, 1: rgb}, num_samples_per_model=2)
    pil = SyntheticDataset(rgb, num_samples=2, output="pil", image_size=32, channels=3)[0]
    assert pil.mode == "RGB" and pil.size == (32, 32)


def test_missing_or_corrupt_model_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained model"):
        SyntheticDataset(str(tmp_path / "nothing" / "model"), num_samples=4)
    corrupt = tmp_path / "corrupt" / "model"
    corrupt.mkdir(parents=True)
    (corrupt / "model.pt").write_bytes(os.urandom(2048))
    with pytest.raises(UnsafeFileError, match="refusing to load"):
        SyntheticDataset(str(corrupt), num_samples=4)
    with pytest.raises(ValueError, match="TrainedModel"):
        SyntheticDataset(torch.nn.Linear(2, 2), num_samples=4)


def test_bad_arguments(random_model_dir):
    for kwargs, message in [({"num_samples": 0}, "positive"), ({}, "num_samples"),
                            ({"num_samples": 3, "seed": 2**31}, "seed"), ({"num_samples": 3, "block_size": 0},
                                                                           "block_size")]:
        with pytest.raises(ValueError, match=message):
            SyntheticDataset(random_model_dir, **kwargs)


def test_the_callers_model_is_left_as_it_is(trained_model_dir):
    model = load_model(trained_model_dir)
    model.generator.train()
    ds = SyntheticDataset(model, num_samples=3)
    ds[0]
    assert model.generator.training and not ds.parts[0].generator.training
