"""Synthetic samples through ConcatDataset: a DataLoader over real + synthetic samples, torch's
`ConcatDataset` (item by item) against `BatchedConcatDataset` (one `__getitems__` per member and
batch), next to `SyntheticDataset` alone.

    python benchmarks/synthetic_concat.py [--samples 8192] [--repeats 5] [--no-write]

One process, no workers, one torch thread, so the time is the work a DataLoader worker does.
Half the samples are real (a uint8 tensor served item by item, as ImageFolder serves files,
minus the decoding), half synthetic (a random 32x32 RGB DCGAN, output "float"). "cold": a fresh
dataset, every block generated; "warm": the next epoch of the same dataset, blocks cached (a
persistent worker's steady state). The methods alternate within each repeat.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
from collections.abc import Callable

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_line, markdown_table, median, set_threads, timed, write_section  # noqa: E402

from gan_augment.config import ModelConfig  # noqa: E402
from gan_augment.export.concat import BatchedConcatDataset  # noqa: E402
from gan_augment.export.synthetic import SyntheticDataset  # noqa: E402
from gan_augment.gan.checkpoint import save_model  # noqa: E402
from gan_augment.gan.models import build_models  # noqa: E402

TITLE = "Synthetic samples through ConcatDataset"
BATCH = 256


class RealImages(Dataset):
    """(float image in [0, 1], label) pairs from a uint8 tensor, item by item like ImageFolder."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].float().div_(255.0), 0


def epoch(dataset: Dataset) -> None:
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(0))
    for _ in loader:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8192, help="synthetic samples (as many real ones)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; medians are reported (default: 5)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    set_threads(1)

    torch.manual_seed(0)
    generator, discriminator = build_models(ModelConfig(image_size=32, channels=3))
    model_dir = os.path.join(tempfile.mkdtemp(prefix="concat-bench-"), "bench", "model")
    save_model(model_dir, generator.eval(), discriminator.eval(), model_id="bench-0", dataset="bench")
    real = RealImages(torch.randint(0, 256, (args.samples, 3, 32, 32), dtype=torch.uint8))

    def synthetic() -> SyntheticDataset:
        return SyntheticDataset(model_dir, num_samples=args.samples, seed=0, label=1)

    methods: dict[str, Callable[[], Dataset]] = {
        "SyntheticDataset alone (half the samples)": synthetic,
        "ConcatDataset([real, synthetic])": lambda: ConcatDataset([real, synthetic()]),
        "BatchedConcatDataset([real, synthetic])": lambda: BatchedConcatDataset([real, synthetic()]),
    }
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for name, make in methods.items():
            dataset = make()
            for phase in ("cold", "warm"):
                _, cpu = timed(lambda: epoch(dataset))
                times.setdefault((name, phase), []).append(cpu)

    rows = []
    for name in methods:
        samples = args.samples * (1 if name.startswith("SyntheticDataset") else 2)
        cold, warm = median(times[(name, "cold")]), median(times[(name, "warm")])
        rows.append([name, samples, f"{cold:.2f}", f"{samples / cold:,.0f}", f"{warm:.2f}", f"{samples / warm:,.0f}"])
    table = markdown_table(["dataset", "samples", "cold CPU s", "cold samples/s", "warm CPU s", "warm samples/s"],
                           rows)
    print(table)
    if not args.no_write:
        command = f"python benchmarks/synthetic_concat.py --samples {args.samples} --repeats {args.repeats}"
        write_section(TITLE, textwrap.dedent(f"""
            `{command}`; {machine_line(1)}.

            One epoch through a DataLoader (batch {BATCH}, shuffled, no workers): CPU seconds of the
            loading thread, medians of {args.repeats} repeats. Real samples are a uint8 tensor served
            item by item; synthetic ones come from a random 32x32 RGB DCGAN (output "float"). Cold:
            a fresh dataset, every block generated; warm: its next epoch, blocks cached.

            """) + table + "\n")


if __name__ == "__main__":
    main()
