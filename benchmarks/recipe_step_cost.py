"""CPU cost of one discriminator step of the default recipe and of its variants, against the
SimCLR step that `benchmarks/fewlabel.py` races it with (the same backbone, views, optimiser,
batch and precision, no generator).

Every variant is timed by the CPU time of the calling thread (one torch thread), interleaved
over the repeats, so other load on the machine does not enter the figures. A "D step" is one
discriminator update; with `d_steps=2` a generator update follows every second one, and its
cost is spread over both.

    python benchmarks/recipe_step_cost.py [--repeats 3] [--steps 12] [--size 32 --channels 1] [--no-write]

Each image shape has its own section; 64x64x3 is the shape of the colour races (Wesnoth's sprites).
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

MODEL = ModelConfig(image_size=32, channels=1)


def recipe_step(cache: ImageCache, config: TrainConfig, model: ModelConfig = MODEL) -> tuple[Callable[[], None], int]:
    trainer = Trainer(cache, "memory://step-cost/model", model, config, dataset="step-cost")
    return trainer.training_step, config.d_steps


def simclr_step(cache: ImageCache, model: ModelConfig = MODEL) -> tuple[Callable[[], None], int]:
    peer = SimCLRPeer(seed=0, model=model)
    images = to_model_range(cache.images[: peer.batch_size])
    return lambda: peer.step(images), 1


def variants(cache: ImageCache, model: ModelConfig) -> dict[str, tuple[Callable[[], None], int]]:
    """The timed steps: the peer's, the default recipe's, and the recipe with one thing changed
    (ContraD's loss on fakes turned the other way from its automatic choice for the channel count)."""
    colour = model.channels == 3

    def step(**changes: object) -> tuple[Callable[[], None], int]:
        return recipe_step(cache, TrainConfig(**changes), model)

    return {
        "SimCLR step (the peer in fewlabel.py)": simclr_step(cache, model),
        "**default recipe**: 32 fakes, G every 2nd D step": step(),
        f"default recipe {'with' if colour else 'without'} ContraD's loss on fakes":
            step(fake_contrastive_weight=1.0 if colour else 0.0),
        "16 fakes, G every 2nd D step": step(fake_batch_size=16),
        "32 fakes, G every D step": step(d_steps=1),
        "32 fakes, G every 4th D step": step(d_steps=4),
        "64 fakes, G every 2nd D step": step(fake_batch_size=64),
        "64 fakes, G every D step": step(fake_batch_size=64, d_steps=1),
        "default recipe in fp32": step(amp=False),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default: 3)")
    parser.add_argument("--steps", type=int, default=12, help="timed calls per repeat, after 3 warm-up calls")
    parser.add_argument("--size", type=int, default=32, help="image side (default: 32)")
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3), help="channels (default: 1)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    set_threads(1)
    model = ModelConfig(image_size=args.size, channels=args.channels)
    images = torch.randint(0, 256, (4000, args.channels, args.size, args.size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    cache = ImageCache(images, [str(i) for i in range(len(images))], "step-cost", {})
    steps = variants(cache, model)
    per_step: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, (step, d_steps) in steps.items():
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
        shape = f"{args.size}x{args.size}x{args.channels}"
        flags = "" if shape == "32x32x1" else f" --size {args.size} --channels {args.channels}"
        write_section(f"Cost of a step of the default recipe ({shape}, CPU)", "\n\n".join([
            f"`python benchmarks/recipe_step_cost.py --repeats {args.repeats} --steps {args.steps}{flags}`",
            f"{machine_line(1)}. Batch 256 real images; medians over {args.repeats} interleaved repeats of the "
            f"median of {args.steps} steps, by the CPU time of the calling thread.",
            table,
        ]))


if __name__ == "__main__":
    main()
