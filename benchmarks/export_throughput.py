"""Export throughput: SyntheticDataset through a DataLoader vs the raw generator forward, feature
extraction vs the raw discriminator forward, and Parquet write rates vs a plain pyarrow write.

Each repeat times ours and the baseline back to back, so both see the same machine load; the
table reports medians over the repeats and the ratio of the medians, by wall clock and by CPU time.

    python benchmarks/export_throughput.py [--threads 1] [--repeats 11] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_line, markdown_table, median, set_threads, timed, write_section  # noqa: E402

from gan_augment.config import ModelConfig  # noqa: E402
from gan_augment.export.features import extract_features  # noqa: E402
from gan_augment.export.synthetic import SyntheticDataset  # noqa: E402
from gan_augment.export.tables import export_samples  # noqa: E402
from gan_augment.gan.checkpoint import load_model, save_model  # noqa: E402
from gan_augment.gan.models import build_models  # noqa: E402
from gan_augment.gan.pixels import to_model_range  # noqa: E402
from gan_augment.io.tables import features_table, read_synthetic, synthetic_schema, write_features, write_synthetic  # noqa: E402

SECTION = "Export throughput (SyntheticDataset, features, Parquet)"


def replicate(table: pa.Table, args: argparse.Namespace) -> pa.Table:
    """`table` repeated to about `args.write_mb` MB, so fixed costs (open, fsync) do not dominate."""
    return pa.concat_tables([table] * max(1, round(args.write_mb * 1e6 / table.nbytes)))


def run(args: argparse.Namespace) -> list[tuple[str, str, float, float, float]]:
    """Rows of (what, unit, ours, baseline, CPU-time ratio); nan where there is none."""
    config = ModelConfig(image_size=args.image_size, channels=3, latent_dim=100, ngf=args.width, ndf=args.width)
    work = tempfile.mkdtemp(prefix="export-bench-")
    torch.manual_seed(0)
    generator, discriminator = build_models(config)
    model_dir = os.path.join(work, "bench", "model")
    save_model(model_dir, generator.eval(), discriminator.eval(), model_id="bench-0", dataset="bench")
    model = load_model(model_dir)
    n, batch = args.samples, args.batch_size
    real = torch.randint(0, 256, (n, 3, args.image_size, args.image_size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))  # (N, 3, S, S)
    z = torch.randn(n, config.latent_dim, generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def raw_generator() -> None:
        for start in range(0, n, batch):
            model.generator(z[start:start + batch])

    @torch.no_grad()
    def raw_discriminator() -> None:
        for start in range(0, n, batch):
            model.discriminator(to_model_range(real[start:start + batch]))

    samples: dict[str, list[tuple[float, float]]] = {key: [] for key in
                                       ("ds", "g", "ds2", "feat", "d", "export", "write", "plain", "fwrite", "fplain")}
    tables = {}

    def pair(repeat: int, ours: str, base: str, run_ours: Callable[[], object], run_base: Callable[[], object]) -> None:
        """Time both back to back, alternating which goes first."""
        order = [(ours, run_ours), (base, run_base)]
        for key, call in order if repeat % 2 == 0 else order[::-1]:
            samples[key].append(timed(call))

    def loader(seed: int, workers: int) -> Callable[[], int]:
        # A fresh seed for every timed pass, so no block is ever served from a cache.
        dataset = SyntheticDataset(model, num_samples=n, seed=seed, block_size=batch)
        return lambda: sum(1 for _ in DataLoader(dataset, batch_size=batch, num_workers=workers))

    loader(10_000, 0)(), raw_generator(), extract_features(model, real, batch_size=batch).features  # warm-up
    raw_discriminator()
    for repeat in range(args.repeats):
        pair(repeat, "ds", "g", loader(repeat, 0), raw_generator)
        samples["ds2"].append(timed(loader(1000 + repeat, 2)))
        pair(repeat, "feat", "d", lambda: extract_features(model, real, batch_size=batch).features, raw_discriminator)
        out = os.path.join(work, f"synthetic-{repeat}")
        samples["export"].append(timed(lambda: export_samples(model, out, n, seed=repeat, block_size=batch)))
        # Writes of ready tables of about --write-mb: ours (streamed, atomic with fsync, in parts)
        # vs one plain pyarrow call.
        synthetic = tables.setdefault("synthetic", replicate(read_synthetic(out).cast(synthetic_schema()), args))
        pair(repeat, "write", "plain", lambda: write_synthetic(os.path.join(work, f"w-{repeat}"), [synthetic], {}),
             lambda: pq.write_table(synthetic, os.path.join(work, f"p-{repeat}.parquet"), compression="none"))
        if "features" not in tables:
            extracted = extract_features(model, real, batch_size=batch)
            tables["features"] = replicate(features_table(extracted.uris, dataset="bench", model_id="bench-0",
                                                          features=extracted.features), args)
        rows, dim = tables["features"], tables["features"].schema.field("feature").type.list_size
        pair(repeat, "fwrite", "fplain", lambda: write_features(os.path.join(work, f"f-{repeat}"), [rows], dim, {}),
             lambda: pq.write_table(rows, os.path.join(work, f"fp-{repeat}.parquet"), compression="zstd"))
        for name in os.listdir(work):  # keep the disk footprint to one repeat's outputs
            path = os.path.join(work, name)
            if name == "bench":
                continue
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)

    shutil.rmtree(work)
    wall = {key: median([w for w, _ in values]) for key, values in samples.items()}
    cpu = {key: median([c for _, c in values]) for key, values in samples.items()}
    synthetic_mb, features_mb = tables["synthetic"].nbytes / 1e6, tables["features"].nbytes / 1e6
    nan = float("nan")
    return [  # what, unit, ours, baseline (wall-clock rates), CPU-time ratio where it means something
        ("SyntheticDataset via DataLoader (0 workers) vs raw G forward", "samples/s", n / wall["ds"], n / wall["g"],
         cpu["g"] / cpu["ds"]),
        ("SyntheticDataset via DataLoader (2 workers) vs raw G forward", "samples/s", n / wall["ds2"], n / wall["g"],
         nan),
        ("extract_features vs raw D forward", "images/s", n / wall["feat"], n / wall["d"], cpu["d"] / cpu["feat"]),
        ("export_samples end to end (generate, PNG, Parquet)", "samples/s", n / wall["export"], nan, nan),
        ("synthetic table write: write_synthetic vs pq.write_table(compression='none')", "MB/s (table data)",
         synthetic_mb / wall["write"], synthetic_mb / wall["plain"], nan),
        ("features table write: write_features vs pq.write_table(compression='zstd')", "MB/s (table data)",
         features_mb / wall["fwrite"], features_mb / wall["fplain"], nan),
    ]


def render(rows: list[tuple[str, str, float, float, float]], args: argparse.Namespace, command: str) -> str:
    def number(value: float, text: str) -> str:
        return "" if value != value else text  # nan: no such figure

    table = markdown_table(
        ["measurement", "unit", "ours", "baseline", "ours / baseline", "same, by CPU time"],
        [[what, unit, f"{ours:,.1f}", number(base, f"{base:,.1f}"), number(base, f"{ours / base:.2f}"),
          number(cpu_ratio, f"{cpu_ratio:.2f}")] for what, unit, ours, base, cpu_ratio in rows],
    )
    return (
        f"Command: `{command}`\n\n"
        f"Machine: {machine_line(args.threads)}; load average {os.getloadavg()[0]:.1f} at the end of the run. "
        f"Model: DCGAN {args.image_size}x{args.image_size} RGB, latent 100, ngf = ndf = {args.width}; "
        f"{args.samples} samples/images per repeat, batch = block size = {args.batch_size}; write rows on "
        f"tables of about {args.write_mb:.0f} MB; medians of {args.repeats} repeats, ours and the baseline "
        f"timed back to back in each, alternating which goes first.\n\n{table}\n\n"
        "What is timed: SyntheticDataset passes use a fresh seed (no cached block); they include the "
        "noise draw, uint8 quantisation, the [0, 1] conversion and collation. The 2-worker pass "
        "includes starting its workers. extract_features starts from uint8 images in memory and "
        "includes pooling and the copy out; the raw D forward runs the whole discriminator. Our "
        "writes stream row groups into a temporary file, fsync it and rename it into place (atomic "
        "and durable); the plain pq.write_table does neither, which is most of the gap. On a shared "
        "machine wall-clock ratios move between runs (a ratio above 1 is noise, not a speed-up); the "
        "CPU-time column (this thread's CPU seconds) is the steadier comparison of the work done.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=32, help="ngf = ndf")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--write-mb", type=float, default=64, help="size of the tables in the write rows")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    set_threads(args.threads)
    command = " ".join(["python benchmarks/export_throughput.py", *sys.argv[1:]])
    body = render(run(args), args, command)
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
