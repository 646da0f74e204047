"""The 70,000-image dataset of benchmarks/scale.py: Fashion-MNIST's train and test images as PNGs
in one dataset, each step (scan, decoded cache, training, features, synthetic samples) in its
own child process, with its peak resident memory.

An export's own memory is also measured apart from the decoded images it starts from: the
process's high-water mark (VmHWM) is reset (`/proc/self/clear_refs`) once its input is ready,
and read again when the export has written its last row.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import numpy as np

DATASET = "fashion-mnist"
ROWS = (10_000, 35_000, 70_000)


def _status_kib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> float:
    """Reset this process's high-water mark of resident memory; returns the resident MiB now."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS") / 1024


def _paths(root: str) -> dict[str, str]:
    return {"store": os.path.join(root, "fashion-store"), "out": os.path.join(root, "fashion-out"),
            "cache": os.path.join(root, "fashion-cache")}


def write_fashion(root: str) -> int:
    """Fashion-MNIST's 70,000 images as grey PNGs in ROOT/fashion-store/fashion-mnist."""
    from gan_augment.demo import load_fashion_mnist, write_digits

    folder = os.path.join(_paths(root)["store"], DATASET)
    marker = os.path.join(folder, ".complete")
    if not os.path.exists(marker):
        images = np.concatenate([load_fashion_mnist(split=split)[0] for split in ("train", "t10k")])
        write_digits(folder, images)
        open(marker, "w").close()
    return sum(1 for name in os.listdir(folder) if name.endswith(".png"))


def _configs(train_seconds: float):
    from gan_augment.config import ModelConfig, TrainConfig

    # The training as the section was measured: the finish (automatic since finish_steps=None) would
    # add G steps after the recipe's, and with them seconds and memory, under the same time cap.
    return ModelConfig(image_size=32, channels=1), TrainConfig(max_seconds=train_seconds, finish_steps=0)


def scan(root: str) -> dict[str, object]:
    from gan_augment.scan.store import scan_store

    paths = _paths(root)
    result = scan_store(paths["store"], out=paths["out"])
    return {"rows": result.objects, "ok": result.datasets[DATASET].status_counts.get("ok", 0)}


def cache(root: str, max_memory_bytes: str) -> dict[str, object]:
    """The decoded cache at the training size; max_memory_bytes 0 forces the memory-mapped file."""
    from gan_augment.layout import manifest_url
    from gan_augment.scan.cache import build_cache

    paths = _paths(root)
    built = build_cache(os.path.join(paths["store"], DATASET), 32, 1, manifest=manifest_url(paths["out"], DATASET),
                        cache_dir=paths["cache"], max_memory_bytes=int(max_memory_bytes))
    return {"rows": len(built), "mapped": built.path is not None}


def train(root: str, train_seconds: str) -> dict[str, object]:
    from gan_augment.training.trainer import train as train_model

    paths = _paths(root)
    model_config, train_config = _configs(float(train_seconds))
    result = train_model(os.path.join(paths["store"], DATASET), paths["out"], model_config, train_config)
    return {"steps": result.steps, "rows": result.num_images}


def features(root: str, rows: str) -> dict[str, object]:
    """Features of the first `rows` images, exported; the export's memory measured apart. The
    images come from the memory-mapped decoded cache the cache step left (the same decode the
    features export of a URL runs), so that each size does not decode all 70,000 again."""
    from gan_augment.export.features import extract_features
    from gan_augment.export.tables import export_features
    from gan_augment.layout import manifest_url, model_dir
    from gan_augment.scan.cache import build_cache

    paths = _paths(root)
    cached = build_cache(os.path.join(paths["store"], DATASET), 32, 1, manifest=manifest_url(paths["out"], DATASET),
                         cache_dir=paths["cache"], max_memory_bytes=0)
    count = int(rows)
    found = extract_features(model_dir(paths["out"], DATASET), cached.images[:count], uris=cached.uris[:count],
                             dataset=DATASET)
    start_mib = _reset_peak()
    written = export_features(found, os.path.join(paths["out"], f"features-{rows}"))
    return {"rows": written.rows, "export_peak_mib": _status_kib("VmHWM") / 1024, "export_start_mib": start_mib}


def synthetic(root: str, rows: str) -> dict[str, object]:
    from gan_augment.export.tables import export_samples
    from gan_augment.layout import model_dir

    paths = _paths(root)
    start_mib = _reset_peak()
    written = export_samples(model_dir(paths["out"], DATASET), os.path.join(paths["out"], f"synthetic-{rows}"),
                             int(rows))
    return {"rows": written.rows, "export_peak_mib": _status_kib("VmHWM") / 1024, "export_start_mib": start_mib}


FASHION_STEPS = {
    "fashion-scan": lambda args: scan(*args), "fashion-cache": lambda args: cache(*args),
    "fashion-train": lambda args: train(*args), "fashion-features": lambda args: features(*args),
    "fashion-synthetic": lambda args: synthetic(*args),
}


def run_fashion(root: str, train_seconds: float, run_child: Callable[..., dict[str, object]]) -> dict[str, object]:
    """Every step once, in order, each in a child process; what each reported. Each result is
    kept in ROOT/results-fashion-steps.json as it comes: a rerun goes on with the steps missing."""
    started = time.perf_counter()
    count = write_fashion(root)
    print(f"{count} PNGs under {_paths(root)['store']} ({time.perf_counter() - started:.0f} s)", flush=True)
    steps: list[tuple[str, str, tuple[str, ...]]] = [
        ("scan", "fashion-scan", (root,)),
        ("decoded cache, in memory", "fashion-cache", (root, str(2 << 30))),
        ("decoded cache, memory-mapped", "fashion-cache", (root, "0")),
        (f"training, capped at {train_seconds:.0f} s", "fashion-train", (root, str(train_seconds))),
    ]
    steps += [(f"features, {rows} rows", "fashion-features", (root, str(rows))) for rows in ROWS]
    steps += [(f"synthetic, {rows} rows", "fashion-synthetic", (root, str(rows))) for rows in ROWS]
    partial = os.path.join(root, "results-fashion-steps.json")
    results = json.load(open(partial)) if os.path.exists(partial) else {}
    for label, step, args in steps:
        if label in results:  # measured by an earlier run of the same command
            continue
        results[label] = run_child(step, *args)
        print(f"  {label}: {results[label]}", flush=True)
        with open(partial, "w") as f:
            json.dump(results, f, indent=1)
    return {"images": count, "train_seconds": train_seconds, "steps": results, "load": os.getloadavg()}
