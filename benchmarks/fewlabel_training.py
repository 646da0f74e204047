"""Few-label benchmark, its training runs: our recipe and the SimCLR peer, each in its own
process, so that two share the machine fairly."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import sys
import time
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import set_threads  # noqa: E402
from fewlabel_data import MODEL, load_split  # noqa: E402

from gan_augment.config import ModelConfig, TrainConfig  # noqa: E402
from gan_augment.gan.augment import random_view  # noqa: E402
from gan_augment.gan.devices import has_native_bf16  # noqa: E402
from gan_augment.gan.losses import nt_xent  # noqa: E402
from gan_augment.gan.models import build_models  # noqa: E402
from gan_augment.gan.pixels import to_model_range  # noqa: E402
from gan_augment.scan.cache import ImageCache  # noqa: E402
from gan_augment.training.trainer import Trainer  # noqa: E402


def setup_process(threads: int) -> None:
    set_threads(threads)
    import logging
    logging.basicConfig(level=logging.WARNING)


def train_ours(root: str, split: str, out: str, name: str, model: dict, train: dict, threads: int,
               ready: Any = None, go: Any = None, done: Any = None, cache: ImageCache | None = None) -> dict:
    """Train with the project's Trainer on the split (or on `cache`, already decoded); returns
    D steps and wall seconds."""
    setup_process(threads)
    if cache is None:
        cache, _ = load_split(root, split, ModelConfig.from_dict(model))
    trainer = Trainer(cache, os.path.join(out, name, "model"), ModelConfig.from_dict(model),
                      TrainConfig.from_dict(train), dataset=name)
    if ready is not None:
        ready.set()
        go.wait()
    started, cpu = time.perf_counter(), time.process_time()
    result = trainer.run(resume=False)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    if done is not None:
        done.set()
    # D steps: what the SimCLR peer's steps compare with (each is one discriminator update); the
    # steps of a finish (`TrainConfig.finish_steps`) update no D and are not counted
    d_steps = min(result.steps, trainer.main_steps) * trainer.tc.d_steps
    return {"steps": d_steps, "seconds": seconds, "cpu_seconds": cpu_seconds}


class SimCLRPeer:
    """The peer: NT-Xent on D's projection head over two `random_view`s of each real image, the
    recipe's D optimiser (Adam 1e-3, betas 0.9/0.999), batch, precision and memory format, no
    generator."""

    def __init__(self, seed: int, model: ModelConfig = MODEL, flip: bool = False) -> None:
        recipe = TrainConfig()
        torch.manual_seed(seed)
        _, discriminator = build_models(model)
        self.memory_format = torch.channels_last if recipe.channels_last else torch.contiguous_format
        self.discriminator = discriminator.to(memory_format=self.memory_format).train()
        self.optimizer = torch.optim.Adam(discriminator.parameters(), lr=recipe.d_lr,
                                          betas=(recipe.d_beta1, recipe.beta2))
        self.amp = recipe.amp and has_native_bf16(torch.device("cpu"))
        self.temperature, self.batch_size = recipe.contrastive_temperature, recipe.batch_size
        self.rng = torch.Generator().manual_seed(seed)
        self.flip = flip  # mirrored views, as ours' `TrainConfig.view_flip`

    def step(self, batch: torch.Tensor) -> None:
        views = torch.cat([random_view(batch, self.rng, self.flip) for _ in range(2)]).contiguous(
            memory_format=self.memory_format)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.amp):
            first, second = self.discriminator.project(self.discriminator.trunk(views)).chunk(2)
            loss = nt_xent(first, second, self.temperature)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def train_simclr(root: str, out: str, model: dict, threads: int, seed: int, ready: Any, go: Any, stop: Any,
                 flip: bool = False) -> dict:
    """Train `SimCLRPeer` until `stop` is set; saves D's state dict to out/simclr-<seed>.pt."""
    setup_process(threads)
    config = ModelConfig.from_dict(model)
    cache, _ = load_split(root, "pool", config)
    peer = SimCLRPeer(seed, config, flip)
    images = to_model_range(cache.images)
    steps, per_epoch, batch = 0, len(images) // peer.batch_size, peer.batch_size
    ready.set()
    go.wait()
    started = time.perf_counter()
    while not stop.is_set():
        order = torch.randperm(len(images), generator=peer.rng)
        for i in range(per_epoch):
            peer.step(images[order[i * batch:(i + 1) * batch]])
            steps += 1
            if stop.is_set():
                break
    seconds = time.perf_counter() - started
    torch.save(peer.discriminator.state_dict(), os.path.join(out, f"simclr-{seed}.pt"))
    return {"steps": steps, "seconds": seconds}


def _call(target: Any, kwargs: dict, results: Any, key: str) -> None:
    results[key] = target(**kwargs)


def run_pair(jobs: dict[str, tuple[Any, dict]]) -> dict[str, dict]:
    """Run up to two training jobs in parallel processes; both start after both are ready."""
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    results = manager.dict()
    go = ctx.Event()
    processes, readies = [], []
    for key, (target, kwargs) in jobs.items():
        ready = ctx.Event()
        readies.append(ready)
        kwargs = {**kwargs, "ready": ready, "go": go}
        processes.append(ctx.Process(target=_call, args=(target, kwargs, results, key)))
    for process in processes:
        process.start()
    for ready in readies:
        ready.wait()
    go.set()
    for process in processes:
        process.join()
        if process.exitcode:
            raise RuntimeError(f"a training process failed with exit code {process.exitcode}")
    return dict(results)


def race(root: str, out: str, recipe: TrainConfig, seed: int, threads: int,
         model: ModelConfig = MODEL) -> dict[str, dict]:
    """Our recipe and the SimCLR peer, seeded alike, side by side in two processes; the peer stops
    when ours finishes, so both get the same wall-clock under the same machine load."""
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    results, stop = manager.dict(), ctx.Event()
    ready_ours, ready_peer, go = ctx.Event(), ctx.Event(), ctx.Event()
    ours = ctx.Process(target=_call, args=(train_ours, dict(
        root=root, split="pool", out=out, name=f"recipe-{seed}", model=model.to_dict(),
        train=dataclasses.replace(recipe, seed=seed).to_dict(), threads=threads, ready=ready_ours, go=go, done=stop),
        results, "recipe"))
    peer_model = dataclasses.replace(model, critic=False)  # the peer has no generator, so no critic
    peer = ctx.Process(target=_call, args=(train_simclr, dict(
        root=root, out=out, model=peer_model.to_dict(), threads=threads, seed=seed, ready=ready_peer, go=go,
        stop=stop, flip=recipe.view_flip), results, "simclr"))
    ours.start(), peer.start()
    ready_ours.wait(), ready_peer.wait()
    go.set()
    load_at_start = os.getloadavg()[0]
    ours.join()
    stop.set()  # also when ours failed: the peer must not run forever
    peer.join()
    if ours.exitcode or peer.exitcode:
        raise SystemExit(f"training failed (exit codes: ours {ours.exitcode}, peer {peer.exitcode})")
    runs = {**results, "load": (load_at_start, os.getloadavg()[0])}  # 1-minute load averages
    print(f"seed {seed}: ours {runs['recipe']}; SimCLR peer {runs['simclr']}", file=sys.stderr)
    return runs
