"""The scheduled path as deployed: `dark-data/nightly` of deployments/prefect.yaml, run by a
cpu and a gpu process worker against a `prefect server start` on loopback
(`pipelines.local_stack`), on a store of MNIST digits. The run gets the file's parameters
(its image size and channels: 32, grayscale) with two site choices changed: the time limit and
the sample count; the recipe is the library's default, as deployed.

Reports the set-up (server start, `prefect deploy --all`), the nightly run's wall time from
`prefect deployment run` to its Completed state, what its training ran (G steps, device,
precision, images per second, from the model card), and a second run over the unchanged store
(everything skipped). Each repeat writes to a fresh output root (`out_url` is a location).

    python benchmarks/deployed_nightly.py [--images 300] [--max-seconds 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_line, markdown_table, median, write_section  # noqa: E402
from prefect.deployments import run_deployment  # noqa: E402
from prefect.flow_runs import wait_for_flow_run  # noqa: E402

from gan_augment.demo import load_mnist, write_digits  # noqa: E402
from gan_augment.gan.checkpoint import read_model_card  # noqa: E402
from pipelines.local_stack import LocalStack  # noqa: E402

SECTION = "The deployed nightly run (prefect.yaml, process workers)"


def nightly(stack: LocalStack, parameters: dict) -> float:
    """Wall seconds from `prefect deployment run dark-data/nightly` to its Completed state."""
    started = time.perf_counter()
    with stack.client():
        run = run_deployment("dark-data/nightly", parameters=parameters, timeout=0)
        final = asyncio.run(wait_for_flow_run(run.id, timeout=7200))
    assert final.state.is_completed() and "1 of 1" in final.state.message, final.state.message
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="MNIST digits in the one dataset")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="training.max_seconds (a site choice)")
    parser.add_argument("--samples", type=int, default=1000, help="num_samples (a site choice)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="deployed-nightly-")
    store = os.path.join(work, "store")
    write_digits(os.path.join(store, "digits"), load_mnist()[0][:args.images])
    site = {"training": {"max_seconds": args.max_seconds}, "num_samples": args.samples}
    with LocalStack(os.path.join(work, "prefect")) as stack:
        started = time.perf_counter()
        stack.start_server()
        server_s = time.perf_counter() - started
        stack.deploy(store, os.path.join(work, "out"))
        deploy_s = time.perf_counter() - started - server_s
        stack.start_worker("cpu", "cpu-0")
        stack.start_worker("gpu", "gpu-0", limit=1)
        first, again, cards = [], [], []
        for repeat in range(args.repeats):
            out = os.path.join(work, f"out-{repeat}")
            first.append(nightly(stack, {**site, "out_url": out}))
            again.append(nightly(stack, {**site, "out_url": out}))
            cards.append(read_model_card(os.path.join(out, "digits", "model")))
            print(f"repeat {repeat + 1}/{args.repeats}: nightly {first[-1]:.1f} s, again {again[-1]:.1f} s, "
                  f"{cards[-1]['steps']} G steps", flush=True)
    card = cards[-1]
    rows = [("server start (`prefect server start`, fresh SQLite)", f"{server_s:.1f}"),
            ("`prefect deploy --prefect-file deployments/prefect.yaml --all` (5 deployments)", f"{deploy_s:.1f}"),
            (f"dark-data/nightly, {args.images} digits: scan, training on the gpu pool, export", f"{median(first):.1f}"),
            ("dark-data/nightly again, nothing changed (all skipped)", f"{median(again):.1f}")]
    table = markdown_table(("step", "wall s (median)"), rows)
    recipe = (f"The training as deployed: {median([c['steps'] for c in cards]):.0f} G steps (median) of batch "
              f"{card['train_config']['batch_size']} before the {args.max_seconds:.0f} s limit, "
              f"ngf = {card['model_config']['ngf']}, ndf = {card['model_config']['ndf']}, device "
              f"{card['device']}, {card['precision']}, "
              f"{median([c['metrics']['images_per_second'] for c in cards]):.0f} real images/s.")
    print(table + "\n\n" + recipe)
    if not args.no_write:
        body = (f"Command: `python benchmarks/deployed_nightly.py --images {args.images} --max-seconds "
                f"{args.max_seconds:g} --samples {args.samples} --repeats {args.repeats}`\n\n"
                f"Machine: {machine_line(1)}; load average {os.getloadavg()[0]:.1f} at the end of the run "
                "(the machine was shared). The parameters are the file's (model "
                f"`{{image_size: {card['model_config']['image_size']}, channels: {card['model_config']['channels']}}}`) "
                f"with training `{{max_seconds: {args.max_seconds:g}}}` and num_samples {args.samples}; every "
                "other field is the library's default recipe. Medians of "
                f"{args.repeats} repeats, each into a fresh output root; set-up measured once.\n\n"
                f"{table}\n\n{recipe}\n\n"
                "Each flow run of a deployment starts a Python process on its worker (Prefect, torch and "
                "the flow's imports) before it does anything: the parent on the cpu worker and the training "
                "on the gpu worker; scan and export run inside the parent.")
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
