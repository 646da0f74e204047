"""Data-parallel training: sharded batches, averaged gradients, rank-0 writes, torchrun."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.gan.checkpoint import load_model, read_model_card
from gan_augment.scan.cache import build_cache
from gan_augment.training.batches import BatchSampler
from gan_augment.training.distributed import (
    DistributedContext,
    ShardedBatchSampler,
    init_distributed,
    shutdown_distributed,
)
from gan_augment.training.trainer import Trainer

MODEL = ModelConfig(image_size=16, channels=1, latent_dim=16, ngf=8, ndf=8)
TRAINING = TrainConfig(steps=4, batch_size=4, log_every=2, checkpoint_every=2, sample_every=4, seed=0, device="cpu",
                       finish_steps=0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_shards_are_disjoint_and_cover_the_global_batch():
    world = 3
    shards = [ShardedBatchSampler(10, 4, seed=7, context=DistributedContext(rank, world)) for rank in range(world)]
    global_sampler = BatchSampler(10, 4 * world, seed=7)
    for step in range(5):
        parts = [shard.indices(step) for shard in shards]
        assert [len(part) for part in parts] == [4, 4, 4]
        assert sorted(torch.cat(parts).tolist()) == sorted(global_sampler.indices(step).tolist())
    # The first global batch (12 indices over 10 images) holds a whole epoch: every image is seen.
    assert set(torch.cat([shard.indices(0) for shard in shards]).tolist()) == set(range(10))


def test_a_single_process_context_is_inert(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    context = DistributedContext.from_env()
    assert context == DistributedContext() and not context.enabled and context.is_main
    grads = torch.ones(3)
    assert context.average(grads) is grads and context.any(True, torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "two")
    try:
        DistributedContext.from_env()
    except ValueError as exc:
        assert "torchrun" in str(exc)
    else:
        raise AssertionError("a malformed WORLD_SIZE must be refused")


def _train_rank(rank: int, world: int, port: int, folder: str, out: str, critic: bool = False) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    context = init_distributed("cpu")
    try:
        cache = build_cache(folder, MODEL.image_size, MODEL.channels)
        model = dataclasses.replace(MODEL, critic=critic)
        trainer = Trainer(cache, os.path.join(out, "blobs", "model"), model, TRAINING, dataset="blobs",
                          distributed=context)
        trainer.run()
        # Parameters only: BatchNorm running statistics are per rank (each normalises its own
        # shard), and rank 0's are the ones saved.
        weights = {name: {key: value.detach() for key, value in module.named_parameters()}
                   for name, module in (("generator", trainer.state.generator),
                                        ("discriminator", trainer.state.discriminator))}
        torch.save({**weights, "seen": trainer.sampler.indices(0)}, os.path.join(out, f"rank-{rank}.pt"))
    finally:
        shutdown_distributed()


@pytest.mark.parametrize("critic", [False, True])
def test_two_gloo_ranks_stay_identical_and_only_rank_0_writes(image_folder, tmp_path, critic):
    out = str(tmp_path / "out")
    mp.spawn(_train_rank, args=(2, free_port(), image_folder, out, critic), nprocs=2, join=True)
    ranks = [torch.load(os.path.join(out, f"rank-{r}.pt"), weights_only=True) for r in range(2)]
    # Different data on each rank, yet the same weights: the gradients were averaged.
    assert set(ranks[0]["seen"].tolist()).isdisjoint(ranks[1]["seen"].tolist())
    for name in ("generator", "discriminator"):
        for key, value in ranks[0][name].items():
            assert torch.equal(value, ranks[1][name][key]), f"{name}.{key} differs between ranks"
    model = load_model(os.path.join(out, "blobs", "model"))
    for key, value in model.discriminator.named_parameters():
        assert torch.equal(value, ranks[0]["discriminator"][key])
    card = read_model_card(os.path.join(out, "blobs", "model"))
    assert card["world_size"] == 2 and card["steps"] == 4 and card["epochs"] == 4 * 4 * 2 * TRAINING.d_steps / 24


def test_torchrun_launches_the_cli_on_two_processes(image_folder, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
         "-m", "gan_augment.cli", "train", image_folder, "--out", str(out), "--image-size", "16", "--channels", "1",
         "--latent-dim", "16", "--ngf", "8", "--ndf", "8", "--steps", "4", "--finish-steps", "0", "--batch-size", "4",
         "--device", "cpu"],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("model card:") == 1  # rank 0 reports, rank 1 stays quiet
    card = json.loads((out / "blobs" / "model" / "model.json").read_text())
    assert card["world_size"] == 2 and card["steps"] == 4
