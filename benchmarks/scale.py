"""Scale on one machine: the scan of stores of 10,000 to 1,000,000 objects, and one 70,000-image
dataset (Fashion-MNIST) through scan, decoded cache, training and both exports.

    OMP_NUM_THREADS=1 python benchmarks/scale.py stores --root /work/scale-data [--sizes 10000,100000,1000000]
    OMP_NUM_THREADS=1 python benchmarks/scale.py fashion --root /work/scale-data [--train-seconds 600]

`stores` writes each store under ROOT/store-<size> (100 datasets of tiny PNG and JPEG objects,
3% bad, 2% exact copies, every object a near duplicate of others: the same pixels with another
comment chunk), then per size: a bare `os.scandir` walk reading the first 64 KiB of every file
(the limit: the bytes the scan reads, nothing judged, one thread), the first scan, a re-scan of
the unchanged store, and one DuckDB query over all manifests. Every scan and every step runs in
a fresh child process, whose peak resident memory (ru_maxrss) is reported. DuckDB is for this
benchmark only: `pip install duckdb`.

`fashion` needs Debian's `dataset-fashion-mnist` (IDX files in /usr/share/datasets/fashion-mnist):
it writes the 70,000 train and test images as PNGs into one dataset, then runs each step in
its own child process (see fashion_steps.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

DATASETS = 100
HEAD_BYTES = 1 << 16  # what the scan reads of a small object: all of it, up to 64 KiB
BASES = 64  # distinct pixel contents, so most objects are near duplicates of each other


# -- the store ----------------------------------------------------------------------------------


def _base_images(seed: int = 0) -> list[tuple[bytes, str]]:
    """BASES tiny encoded images (16x16 to 32x32, grey and RGB), half PNG, half JPEG."""
    import io

    from PIL import Image

    rng, found = np.random.default_rng(seed), []
    for i in range(BASES):
        side = (16, 24, 32)[i % 3]
        shape = (side, side, 3) if i % 4 < 2 else (side, side)
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        buffer = io.BytesIO()
        fmt = "PNG" if i % 2 == 0 else "JPEG"
        Image.fromarray(pixels).save(buffer, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
        found.append((buffer.getvalue(), "png" if fmt == "PNG" else "jpg"))
    return found


def _with_comment(data: bytes, text: bytes) -> bytes:
    """The same image with a comment: a PNG tEXt chunk after IHDR, a JPEG COM segment after SOI.
    The pixels stay the same and the bytes differ: a near duplicate, found by no content hash."""
    if data[:4] == b"\x89PNG":
        body = b"tEXt" + b"id\0" + text
        chunk = len(body[4:]).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
        return data[:33] + chunk + data[33:]
    return data[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[2:]


def write_store(root: str, count: int, seed: int = 0) -> dict[str, int]:
    """`count` objects over DATASETS folders of ROOT; returns how many of each kind.

    Kinds, drawn per object: 3% bad (a truncated file, an empty one, random bytes), 2% exact
    copies of the object before it, the rest a base image with the object's own comment.
    """
    bases = _base_images(seed)
    rng = np.random.default_rng(seed)
    draws = rng.random(count)
    choice = rng.integers(0, BASES, count)
    junk = rng.integers(0, 256, 512, dtype=np.uint8).tobytes()
    kinds = {"ok": 0, "bad": 0, "copy": 0}
    per_dataset = -(-count // DATASETS)
    previous = b""
    for i in range(count):
        folder = os.path.join(root, f"ds-{i // per_dataset:03d}")
        if i % per_dataset == 0:
            os.makedirs(folder, exist_ok=True)
        data, ext = bases[choice[i]]
        data = _with_comment(data, b"%d" % i)
        if draws[i] < 0.01:
            data, kind = data[:len(data) // 2], "bad"
        elif draws[i] < 0.02:
            data, kind = b"", "bad"
        elif draws[i] < 0.03:
            data, kind = junk[: 64 + i % 256], "bad"
        elif draws[i] < 0.05 and previous:
            data, kind = previous, "copy"
        else:
            kind = "ok"
        kinds[kind] += 1
        previous = data
        with open(os.path.join(folder, f"img-{i:07d}.{ext}"), "wb") as f:
            f.write(data)
    with open(os.path.join(root, ".complete"), "w") as f:
        json.dump(kinds, f)
    return kinds


def ensure_store(root: str, count: int) -> dict[str, int]:
    """The store of `count` objects under ROOT/store-<count>, written unless already complete."""
    path = os.path.join(root, f"store-{count}")
    marker = os.path.join(path, ".complete")
    if os.path.exists(marker):
        with open(marker) as f:
            return json.load(f)
    started = time.perf_counter()
    kinds = write_store(path, count)
    print(f"wrote {count} objects under {path} in {time.perf_counter() - started:.0f} s: {kinds}", flush=True)
    return kinds


# -- steps, each in a child process -------------------------------------------------------------


def _rss_kib(pid: int | str, field: str = "VmRSS") -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith(field + ":")), 0)
    except OSError:  # the process ended
        return 0


class TreeMemory(threading.Thread):
    """Samples, every 0.2 s, the resident memory of this process plus all its descendants (the
    decoding worker processes): their peak sum. ru_maxrss cannot tell it: a process started by
    fork and exec inherits its parent's high-water mark in ru_maxrss."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kib, self.done = 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            pid = os.getpid()
            total = _rss_kib(pid) + sum(_rss_kib(child) for child in _descendants_all(pid))
            self.peak_kib = max(self.peak_kib, total)


def _descendants_all(pid: int) -> list[int]:
    """Every process below `pid`, through each thread's children list."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        children = []
        for task in os.listdir(f"/proc/{current}/task") if os.path.exists(f"/proc/{current}/task") else []:
            try:
                with open(f"/proc/{current}/task/{task}/children") as f:
                    children += [int(c) for c in f.read().split()]
            except OSError:
                continue
        found += children
        stack += children
    return found


def peak_rss_mib() -> dict[str, float]:
    """This process's own peak resident memory (VmHWM), in MiB."""
    return {"rss_mib": _rss_kib("self", "VmHWM") / 1024}


def bare_walk(store: str) -> int:
    """The limit: every file found by os.scandir and its first HEAD_BYTES read, one thread."""
    count, folders = 0, [store]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif entry.is_file() and not entry.name.startswith("."):
                    with open(entry.path, "rb") as f:
                        f.read(HEAD_BYTES)
                    count += 1
    return count


def scan_step(store: str, out: str) -> dict[str, object]:
    """One `scan_store` call, timed alone: the imports before it (pyarrow loads pandas on its
    first timestamp conversion) are the process's start-up, reported apart."""
    started = time.perf_counter()
    import pandas  # noqa: F401

    from gan_augment.scan.store import scan_store

    imported = time.perf_counter()
    result = scan_store(store, out=out)
    scan_seconds = time.perf_counter() - imported
    statuses: dict[str, int] = {}
    for scan in result.datasets.values():
        for status, n in scan.status_counts.items():
            statuses[status] = statuses.get(status, 0) + n
    return {"objects": result.objects, "read": result.read_objects, "statuses": statuses,
            "startup_seconds": imported - started, "scan_seconds": scan_seconds}


STEPS = {"bare": lambda args: {"objects": bare_walk(args[0])}, "scan": lambda args: scan_step(*args)}


def run_child(step: str, *args: str) -> dict[str, object]:
    """Run `step` in a fresh interpreter; its result with wall seconds and peak memory."""
    command = [sys.executable, os.path.abspath(__file__), "_step", step, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"step {step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_main(step: str, args: list[str]) -> None:
    if step in STEPS:
        call = STEPS[step]
    else:
        from fashion_steps import FASHION_STEPS

        call = FASHION_STEPS[step]
    tree = TreeMemory()
    tree.start()
    started = time.perf_counter()
    result = call(args)
    seconds = time.perf_counter() - started
    tree.done.set()
    tree.join()
    print(json.dumps({**result, "seconds": seconds, **peak_rss_mib(), "tree_rss_mib": tree.peak_kib / 1024}))


def duckdb_query(out: str) -> dict[str, object]:
    """One SQL query over every dataset's manifest: rows, datasets and ok rows."""
    import duckdb

    started = time.perf_counter()
    rows, datasets, ok = duckdb.sql(
        f"SELECT count(*), count(DISTINCT dataset), count(*) FILTER (status = 'ok') "
        f"FROM read_parquet('{out}/*/manifest.parquet')").fetchall()[0]
    return {"rows": rows, "datasets": datasets, "ok": ok, "seconds": time.perf_counter() - started}


def measure_size(root: str, size: int, repeats: int) -> dict[str, object]:
    """Bare walk, first scan and re-scan, interleaved `repeats` times; then the DuckDB query."""
    store, runs = os.path.join(root, f"store-{size}"), {"bare": [], "scan": [], "rescan": []}
    for repeat in range(repeats):
        out = os.path.join(root, f"out-{size}")
        subprocess.run(["rm", "-rf", out], check=True)
        runs["bare"].append(run_child("bare", store))
        runs["scan"].append(run_child("scan", store, out))
        runs["rescan"].append(run_child("scan", store, out))
        for name, results in runs.items():
            last = results[-1]
            print(f"  {size}: repeat {repeat + 1}: {name}: {last['objects']} objects in {last['seconds']:.1f} s, "
                  f"peak {last['rss_mib']:.0f} MiB", flush=True)
    return {"size": size, "runs": runs, "duckdb": duckdb_query(os.path.join(root, f"out-{size}")),
            "load": os.getloadavg()}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_step":
        child_main(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["stores", "fashion", "report"])
    parser.add_argument("--root", required=True, help="where the stores and outputs are written (not the repository)")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per size up to 100,000 objects")
    parser.add_argument("--train-seconds", type=float, default=600, help="the training's time cap (fashion)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    os.makedirs(args.root, exist_ok=True)
    results_path = os.path.join(args.root, f"results-{args.part}.json")
    if args.part == "stores":
        results = []
        for size in (int(s) for s in args.sizes.split(",")):
            kinds = ensure_store(args.root, size)
            results.append({**measure_size(args.root, size, args.repeats if size <= 100_000 else 1),
                            "kinds": kinds})
            with open(results_path, "w") as f:
                json.dump(results, f, indent=1)
    elif args.part == "fashion":
        from fashion_steps import run_fashion

        results = run_fashion(args.root, args.train_seconds, run_child)
        with open(results_path, "w") as f:
            json.dump(results, f, indent=1)
    from scale_report import write_report

    write_report(args.root, args.sizes, args.train_seconds, not args.no_write)


if __name__ == "__main__":
    main()
