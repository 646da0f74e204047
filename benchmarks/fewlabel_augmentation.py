"""Few-label benchmark, its per-class augmentation experiment: a small CNN on 100 labelled digits,
alone and with samples of per-class GANs."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import markdown_table  # noqa: E402
from fewlabel_data import MODEL, load_split  # noqa: E402
from fewlabel_training import run_pair, setup_process, train_ours  # noqa: E402

from gan_augment.config import TrainConfig  # noqa: E402
from gan_augment.evaluate.probe import fit_probe  # noqa: E402
from gan_augment.export.synthetic import SyntheticDataset  # noqa: E402
from gan_augment.gan.augment import random_view  # noqa: E402
from gan_augment.gan.checkpoint import load_model  # noqa: E402
from gan_augment.gan.models import build_models  # noqa: E402
from gan_augment.scan.cache import ImageCache  # noqa: E402

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


def train_cnn(real: torch.Tensor, labels: torch.Tensor, synthetic: Dataset | None, test: torch.Tensor,
              y_test: np.ndarray, seed: int, augment: bool = False, steps: int = 400, batch: int = 64,
              synthetic_share: float = 0.5) -> float:
    """Test accuracy of `fit_cnn`'s SmallCNN."""
    return cnn_accuracy(fit_cnn(real, labels, synthetic, seed, augment, steps, batch, synthetic_share), test, y_test)


def cnn_accuracy(cnn: torch.nn.Module, images: torch.Tensor, labels: np.ndarray) -> float:
    """Share of `images` (N, 1, 32, 32) in [0, 1] that `cnn` assigns to `labels`."""
    with torch.no_grad():
        predicted = torch.cat([cnn(images[i:i + 500]).argmax(1) for i in range(0, len(images), 500)]).numpy()
    return float((predicted == labels).mean())


def fit_cnn(real: torch.Tensor, labels: torch.Tensor, synthetic: Dataset | None, seed: int,
            augment: bool = False, steps: int = 400, batch: int = 64, synthetic_share: float = 0.5) -> SmallCNN:
    """SmallCNN after `steps` Adam steps, in eval mode. `synthetic` is a dataset of (image, label)
    pairs (a `SyntheticDataset` or any other); with it, `synthetic_share` of each batch (in
    expectation) comes from it, drawn through a DataLoader over ConcatDataset([real, synthetic])
    with weights. With `augment`, every training image gets a `random_view` (crop, rotation, shift, contrast)."""
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
        weights = torch.cat([torch.full((len(real_set),), (1 - synthetic_share) / len(real_set)),
                             torch.full((len(synthetic),), synthetic_share / len(synthetic))])
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
    return cnn.eval()


def mean_spread(accuracies: list[float]) -> str:
    """Accuracies over CNN seeds as "mean ± sample standard deviation", in percent."""
    return f"{100 * np.mean(accuracies):.1f} ± {100 * np.std(accuracies, ddof=1):.1f}"


def per_class_job(root: str, out: str, classes: list[int], tag: str, train: dict, threads: int,
                  ready: Any, go: Any) -> dict:
    """Train one GAN per class on the pool rows `classes` gives that class; returns
    {"models": {class: model dir}, "seconds": ...}."""
    setup_process(threads)
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


def augmentation(args: argparse.Namespace, root: str, out: str, pool_images: torch.Tensor, y_pool: np.ndarray,
                 test_images: torch.Tensor, y_test: np.ndarray, our_pool_features: np.ndarray) -> str:
    rng = np.random.default_rng(0)
    labelled = np.concatenate([rng.choice(np.flatnonzero(y_pool == c), 10, replace=False) for c in range(10)])
    classifier = fit_probe(our_pool_features[labelled], y_pool[labelled])
    pseudo = classifier.predict(our_pool_features)
    pseudo[labelled] = y_pool[labelled]
    pseudo_accuracy = float((pseudo == y_pool).mean())
    # The per-class GANs as these figures were measured: the finish (automatic since finish_steps=None)
    # would change the samples the CNN trains on, and the seconds.
    train = TrainConfig(steps=args.class_steps, finish_steps=0).to_dict()
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
        rows.append([title, mean_spread(accuracies)])
    table = markdown_table(["small CNN trained on", f"test accuracy ({args.cnn_seeds} seeds)"], rows)
    return (f"Pseudo-labels of the pool from the 10-label probe on our D's features: "
            f"{100 * pseudo_accuracy:.1f}% correct. Per-class GANs: the default recipe without its finish "
            f"(`finish_steps=0`), {args.class_steps} G steps each ({trained['pseudo']['seconds']:.0f} s for the ten "
            f"pseudo-label GANs, {trained['oracle']['seconds']:.0f} s for the ten oracle ones), "
            f"{args.synthetic_per_class} synthetic images per class; half of every CNN batch is synthetic.\n\n{table}")


AUGMENTATION_TEXT = (
    "A small CNN (two conv blocks, dropout, linear) on 10 labelled images per class (draw 0), Adam 1e-3, "
    "400 steps of 64, alone or with `SyntheticDataset({class: model})` through a DataLoader over "
    "`ConcatDataset([real, synthetic])`.")
