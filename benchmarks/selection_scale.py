"""Selection at scale: what `select_for_labelling` costs on a features table of 10,000 to
1,000,000 rows, per method.

    python benchmarks/selection_scale.py [--sizes 10000,100000,1000000] [--budget 1000] [--threads 2]
        [--root DIR] [--baseline CHECKOUT] [--no-write]

Each size gets a features table written once under ROOT (reused when it is there): rows of the
default model's width (896) drawn around 50 seeded Gaussian centres, in the table layout and
parts `export_features` writes. Each (size, method) then runs in a fresh process, as `gan-augment
select FEATURES --budget B` would: reading the table is part of the time. `margin` is a later round
told 100 labels (the cluster of 100 seeded rows). Reported: wall seconds and the process's peak
resident memory (its high-water mark, the features matrix included); with --baseline, the same
for a checkout of an earlier commit, side by side in the same run. The synthetic features
measure cost only; what a method's picks are worth is measured on real data in "Which images to
label".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

# A child measuring --baseline imports that checkout's gan_augment instead of this one's.
sys.path.insert(0, os.environ.get(CODE_ENV := "SELECTION_SCALE_CODE", os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from common import machine_line, markdown_table, write_section  # noqa: E402

TITLE = "Selection at scale (synthetic features, 896 dimensions)"
DIM, CENTRES, LABELLED, CHUNK = 896, 50, 100, 50_000
METHODS = ("random", "kmeans", "typiclust", "kcenter", "margin")


def uri(row: int) -> str:
    return f"s3://store/ds/img-{row:07d}.png"


def centres_of(rows: int) -> np.ndarray:
    """The centre each row of a table of `rows` rows is drawn around (seeded)."""
    return np.random.default_rng(1).integers(0, CENTRES, rows)


def write_table(url: str, rows: int) -> None:
    """A features table of `rows` rows around `CENTRES` seeded centres, written in chunks."""
    from gan_augment.io.tables import features_table, write_features

    centres = np.random.default_rng(0).normal(size=(CENTRES, DIM)).astype(np.float32) * 2
    centre = centres_of(rows)
    noise = np.random.default_rng(2)

    def chunks():
        for start in range(0, rows, CHUNK):
            part = centre[start:start + CHUNK]
            features = centres[part] + noise.standard_normal((len(part), DIM), dtype=np.float32)
            yield features_table([uri(r) for r in range(start, start + len(part))], dataset="ds", model_id="synthetic",
                                 features=features)

    write_features(url, chunks(), DIM, {})


def child(url: str, rows: int, method: str, budget: int) -> None:
    """One selection in this process; prints {"seconds", "peak_mib"} as JSON."""
    from gan_augment.curate import select_for_labelling

    labelled = {}
    if method == "margin":  # a later round: 100 images labelled by their centre
        picked = np.random.default_rng(3).choice(rows, LABELLED, replace=False)
        labelled = {uri(int(r)): int(c) for r, c in zip(picked, centres_of(rows)[picked])}
    started = time.perf_counter()
    selection = select_for_labelling(url, budget, method, labelled=labelled)
    seconds = time.perf_counter() - started
    assert len(selection) == budget, len(selection)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_mib": peak}))


def measure(url: str, rows: int, method: str, budget: int, environment: dict[str, str]) -> dict[str, float]:
    """{"seconds", "peak_mib"} of one selection in a fresh process."""
    done = subprocess.run([sys.executable, __file__, "--child", url, str(rows), method, str(budget)], env=environment,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def baseline_note(checkout: str | None) -> str:
    if not checkout:
        return ""
    commit = subprocess.run(["git", "-C", checkout, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return f", BASE a checkout of {commit.stdout.strip() or checkout}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "gan-augment-selection-scale"))
    parser.add_argument("--baseline", help="a checkout of an earlier commit, measured beside this one")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--child", nargs=4, metavar=("URL", "ROWS", "METHOD", "BUDGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]), args.child[2], int(args.child[3]))
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OPENBLAS_NUM_THREADS": str(args.threads)}
    codes = [None, *([os.path.abspath(args.baseline)] if args.baseline else [])]  # this checkout, then BASE
    table_rows = []
    for rows in (int(size) for size in args.sizes.split(",")):
        url = os.path.join(args.root, f"rows-{rows}", "features")
        if not os.path.isdir(url):
            started = time.perf_counter()
            write_table(url, rows)
            print(f"wrote {rows} rows in {time.perf_counter() - started:.0f} s", flush=True)
        for method in METHODS:
            # one after the other, the same table warm in the page cache for both
            results = [measure(url, rows, method, args.budget, environment if code is None
                               else {**environment, CODE_ENV: code}) for code in codes]
            cells = [cell for result in results for cell in (f"{result['seconds']:.1f}", f"{result['peak_mib']:,.0f}")]
            if args.baseline:
                cells.append(f"{results[0]['peak_mib'] / results[1]['peak_mib']:.2f}")
            table_rows.append([f"{rows:,}", method, *cells])
            print(" | ".join(table_rows[-1]), flush=True)
    header = ["rows", "method", "seconds", "peak RSS MiB"]
    if args.baseline:
        header += ["baseline seconds", "baseline peak RSS MiB", "peak RSS, this / baseline"]
    body = "\n\n".join([
        f"Command: `python benchmarks/selection_scale.py --sizes {args.sizes} --budget {args.budget} --threads "
        f"{args.threads}{' --baseline BASE' if args.baseline else ''}`{baseline_note(args.baseline)}. "
        f"{machine_line(args.threads)}. Features tables of N rows, {DIM} dimensions (the default "
        f"model's width), around {CENTRES} seeded Gaussian centres; each selection of {args.budget} images in a fresh "
        "process, reading the table included; `margin` told the labels of 100 images. Peak RSS: the process's "
        "high-water mark.",
        markdown_table(header, table_rows)])
    print(body)
    if not args.no_write:
        write_section(TITLE, body)


if __name__ == "__main__":
    main()
