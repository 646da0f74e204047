"""The automatic budget's CPU cost: what the default training (`gan-augment train` with no
flag) of 5,000 and 10,000 images costs at 32x32x1 (Fashion-MNIST) and at 64x64x3 (Wesnoth's unit
sprites), decoding included.

Every part is timed by CPU time, which other load on a shared machine does not inflate the way it
inflates wall-clock: the decode of 1,000 images in this process (`build_cache`, `max_seconds=None`),
the median of `--steps` G steps of the default recipe and the median of `--steps` steps of the finish
(`training.finish`) that follows them (`Trainer`, one torch thread, each after two warm-up steps).
The training's CPU time is the recipe's steps (`resolve_steps`) and the automatic finish's
(`TrainConfig.finish_steps_for`: twice the recipe's on greyscale, none on colour) at their measured
costs, plus the decode at the measured rate; on 2 cores with 2 torch threads its wall-clock is at
best half of it. The finishing step is timed on colour too, for what a finish there would cost.

    python benchmarks/auto_budget.py [--steps 5] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_line, markdown_table, set_threads, write_section  # noqa: E402
from fewlabel_data import write_pngs  # noqa: E402

from gan_augment.config import ModelConfig, TrainConfig  # noqa: E402
from gan_augment.demo import load_fashion_mnist, load_wesnoth_sprites  # noqa: E402
from gan_augment.scan.cache import build_cache  # noqa: E402
from gan_augment.training.trainer import Trainer, resolve_steps  # noqa: E402

SECTION = "Automatic budget"
DECODED = 1000


def write_samples(name: str, folder: str) -> None:
    """1,000 images of the data set, as files in its own format."""
    if name == "fashion":
        pixels, labels = load_fashion_mnist()
        write_pngs(folder, pixels, labels, np.arange(DECODED))
    else:
        paths, _, _ = load_wesnoth_sprites()
        os.makedirs(folder)
        for i in np.random.RandomState(0).permutation(len(paths))[:DECODED]:
            shutil.copyfile(paths[i], os.path.join(folder, f"{i:05d}.png"))


def measure(name: str, model: ModelConfig, steps: int) -> tuple[float, float, float]:
    """(decode CPU seconds per image, CPU seconds per G step of the default recipe, and per step of
    its finish)."""
    folder = os.path.join(tempfile.mkdtemp(prefix="auto-budget-"), name)
    write_samples(name, folder)
    started = time.process_time()
    cache = build_cache(folder, model.image_size, model.channels, max_seconds=None, **model.decode_options)
    decode = (time.process_time() - started) / len(cache)
    # The recipe's warm-up and timed steps, then as many of the finish (an explicit number runs on
    # colour too).
    config = TrainConfig(steps=2 + steps, finish_steps=2 + steps)
    trainer = Trainer(cache, f"memory://auto-budget/{name}/model", model, config, dataset=name)
    recipe, finish = _timed(trainer, steps), _timed(trainer, steps)
    assert trainer.state.step == trainer.total_steps, "the timed steps are the recipe's, then the finish's"
    return decode, recipe, finish


def _timed(trainer: Trainer, steps: int) -> float:
    """The median CPU seconds of `steps` training steps, after two warm-up steps."""
    for _ in range(2):
        trainer.training_step()
    times = []
    for _ in range(steps):
        started = time.thread_time()
        trainer.training_step()
        times.append(time.thread_time() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed G steps per size (default: 5)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    set_threads(1)
    rows, loads, default = [], [os.getloadavg()[0]], TrainConfig()
    for name, model in (("fashion", ModelConfig(image_size=32, channels=1)),
                        ("wesnoth", ModelConfig(image_size=64, channels=3))):
        decode, step, finishing = measure(name, model, args.steps)
        for images in (5000, 10_000):
            g_steps = resolve_steps(default, images, image_size=model.image_size)
            finish_steps = default.finish_steps_for(g_steps, model)
            total = images * decode + g_steps * step + finish_steps * finishing
            rows.append([f"{model.image_size}x{model.image_size}x{model.channels} ({name})", f"{images:,}",
                         f"{default.d_steps * g_steps:,}", f"{finish_steps:,}", f"{1e3 * decode:.2f}", f"{step:.2f}",
                         f"{finishing:.2f}", f"{total:,.0f}", f"{total / 120:.1f}"])
    loads.append(os.getloadavg()[0])
    table = markdown_table(["images", "count", "D steps (auto)", "finishing G steps (auto)", "decode CPU ms / image",
                            "CPU s / G step", "CPU s / finishing step", "CPU s of the default training",
                            "minutes on 2 cores at best"], rows)
    print(table)
    if not args.no_write:
        write_section(SECTION, "\n\n".join([
            f"`python benchmarks/auto_budget.py --steps {args.steps}`",
            f"{machine_line(1)}; bf16 autocast {'on' if TrainConfig().amp and _bf16() else 'off (no native bf16)'}; "
            f"load average {loads[0]:.1f} at the start and {loads[1]:.1f} at the end. " + __doc__.split("\n\n")[1]
            .replace("\n", " "),
            table,
        ]))


def _bf16() -> bool:
    from gan_augment.gan.devices import has_native_bf16

    return has_native_bf16(torch.device("cpu"))


if __name__ == "__main__":
    main()
