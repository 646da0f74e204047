"""CPU cost of one discriminator step of the default recipe and of its variants, against the
SimCLR step that `benchmarks/fewlabel.py` races it with (the same backbone, views, optimiser,
batch and precision, no generator).

Every variant is timed by the CPU time of the calling thread (one torch thread), interleaved
over the repeats, so other load on the machine does not enter the figures. A "D step" is one
discriminator update; with `d_steps=2` a generator update follows every second one, and its
cost is spread over both.

    python benchmarks/recipe_step_cost.py [--repeats 3] [--steps 12] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_line, markdown_table, set_threads, write_section  # noqa: E402
from fewlabel_training import SimCLRPeer  # noqa: E402

from gan_augment.config import ModelConfig, TrainConfig  # noqa: E402
from gan_augment.gan.pixels import to_model_range  # noqa: E402
from gan_augment.scan.cache import ImageCache  # noqa: E402
from gan_augment.training.trainer import Trainer  # noqa: E402

SECTION = "Cost of a step of the default recipe (32x32x1, CPU)"
MODEL = ModelConfig(image_size=32, channels=1)


def recipe_step(cache: ImageCache, config: TrainConfig) -> tuple[Callable[[], None], int]:
    trainer = Trainer(cache, "memory://step-cost/model", MODEL, config, dataset="step-cost")
    return trainer.training_step, config.d_steps


def simclr_step(cache: ImageCache) -> tuple[Callable[[], None], int]:
    peer = SimCLRPeer(seed=0)
    images = to_model_range(cache.images[: peer.batch_size])
    return lambda: peer.step(images), 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default: 3)")
    parser.add_argument("--steps", type=int, default=12, help="timed calls per repeat, after 3 warm-up calls")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    set_threads(1)
    images = torch.randint(0, 256, (4000, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cache = ImageCache(images, [str(i) for i in range(len(images))], "step-cost", {})
    variants = {
        "SimCLR step (the peer in fewlabel.py)": simclr_step(cache),
        "**default recipe**: 32 fakes, G every 2nd D step": recipe_step(cache, TrainConfig()),
        "default recipe without ContraD's loss on fakes": recipe_step(cache, TrainConfig(fake_contrastive_weight=0.0)),
        "32 fakes, G every D step": recipe_step(cache, TrainConfig(d_steps=1)),
        "64 fakes, G every 2nd D step": recipe_step(cache, TrainConfig(fake_batch_size=64)),
        "64 fakes, G every D step": recipe_step(cache, TrainConfig(fake_batch_size=64, d_steps=1)),
        "default recipe in fp32": recipe_step(cache, TrainConfig(amp=False)),
    }
    per_step: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, (step, d_steps) in variants.items():
            for _ in range(3):
                step()
            times = []
            for _ in range(args.steps):
                started = time.thread_time()
                step()
                times.append((time.thread_time() - started) / d_steps)
            per_step[name].append(statistics.median(times))
    base = statistics.median(per_step["SimCLR step (the peer in fewlabel.py)"])
    rows = [[name, f"{1000 * statistics.median(t):.0f}", f"{statistics.median(t) / base:.2f}"]
            for name, t in per_step.items()]
    table = markdown_table(["variant", "CPU ms per D step", "vs SimCLR step"], rows)
    print(table)
    if not args.no_write:
        write_section(SECTION, "\n\n".join([
            f"`python benchmarks/recipe_step_cost.py --repeats {args.repeats} --steps {args.steps}`",
            f"{machine_line(1)}. Batch 256 real images; medians over {args.repeats} interleaved repeats of the "
            f"median of {args.steps} steps, by the CPU time of the calling thread.",
            table,
        ]))


if __name__ == "__main__":
    main()
