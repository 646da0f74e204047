"""A hostile store: 3,000 mutated images of every supported format and mode
(`testing.fuzz.fuzz_corpus`) on a local disk. What the header-only scan lets through, what
training writes back, what `scan --verify` costs against the header-only scan, what the
per-object time limit (decodes in worker processes) costs against decoding in the scanning
threads, and the slowest object.

    python benchmarks/hostile_store.py [--objects 3000] [--repeats 3]

The scans run side by side in each repeat (fresh output folders, order alternating); the
table gives medians and ratios against the header-only scan.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import markdown_table, median, write_section  # noqa: E402

from gan_augment.io.tables import read_manifest  # noqa: E402
from gan_augment.scan.cache import build_cache  # noqa: E402
from gan_augment.scan.images import ImageRejected, decode_image  # noqa: E402
from gan_augment.scan.store import scan_store  # noqa: E402
from gan_augment.testing.fuzz import fuzz_corpus  # noqa: E402

SECTION = "A hostile store: header scan, scan --verify, write-back"
METHODS = {
    "header probe (default)": {},
    "scan --verify (every pixel decoded, in worker processes under the time limit)": {"verify": True},
    "scan --verify, decoded in the scanning threads (no time limit)": {"verify": True, "max_seconds": None},
}


def write_corpus(root: str, count: int) -> dict[str, bytes]:
    os.makedirs(os.path.join(root, "hostile"))
    data = {}
    for case in fuzz_corpus(count, seed=0):
        with open(os.path.join(root, "hostile", case.name), "wb") as f:
            f.write(case.data)
        data[case.name] = case.data
    return data


def undecodable_ok(manifest_url: str, data: dict[str, bytes]) -> tuple[int, int]:
    """(rows called ok, of which training's decode rejects)."""
    ok = [row["uri"].rsplit("/", 1)[-1] for row in read_manifest(manifest_url).to_pylist() if row["status"] == "ok"]
    rejected = 0
    for name in ok:
        try:
            decode_image(data[name], 16, 3)
        except ImageRejected:
            rejected += 1
    return len(ok), rejected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="hostile-bench-")
    try:
        store = os.path.join(work, "store")
        data = write_corpus(store, args.objects)
        scan_store(store, max_seconds=5)  # start the worker processes and warm the page cache
        times: dict[str, list[float]] = {name: [] for name in METHODS}
        slowest: dict[str, tuple[str, float]] = {}
        for repeat in range(args.repeats):
            order = list(METHODS) if repeat % 2 == 0 else list(reversed(METHODS))
            for name in order:
                out = os.path.join(work, f"out-{repeat}-{list(METHODS).index(name)}")
                started = time.perf_counter()
                result = scan_store(store, out=out, **METHODS[name])
                times[name].append(time.perf_counter() - started)
                slowest[name] = result.datasets["hostile"].slowest or ("-", 0.0)
        header_out = os.path.join(work, "out-0-0")
        manifest = os.path.join(header_out, "hostile", "manifest.parquet")
        ok_before, bad_before = undecodable_ok(manifest, data)
        started = time.perf_counter()
        cache = build_cache(os.path.join(store, "hostile"), 16, 3, manifest=manifest)
        build_seconds = time.perf_counter() - started
        ok_after, bad_after = undecodable_ok(manifest, data)
        written_back = read_manifest(manifest).column("found_in").to_pylist().count("training")
        rescan = scan_store(store, out=header_out).datasets["hostile"]
        verify_ok, verify_bad = undecodable_ok(os.path.join(work, "out-0-2", "hostile", "manifest.parquet"), data)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = median(times["header probe (default)"])
    rows = [[name, args.objects, f"{median(values):.2f}", f"{args.objects / median(values):.0f}",
             f"{median(values) / base:.2f}x", f"{slowest[name][1]:.3f} s ({slowest[name][0].rsplit('/', 1)[-1]})"]
            for name, values in times.items()]
    table = markdown_table(["scan", "objects", "median s", "objects/s", "vs header probe", "slowest object"], rows)
    truth = markdown_table(
        ["manifest", "rows ok", "of which training cannot decode"],
        [["after the header-only scan", ok_before, bad_before],
         [f"after training's decode wrote back {written_back} rows ({build_seconds:.1f} s)", ok_after, bad_after],
         ["after the next scan (unchanged objects not read)", rescan.status_counts.get("ok", 0), bad_after],
         ["after scan --verify", verify_ok, verify_bad]])
    print(table, truth, sep="\n\n")
    print(f"cache: {len(cache)} images decoded, {len(cache.skipped)} left out; next scan read {rescan.read_objects}")
    write_section(SECTION, f"{args.objects} objects made by `gan_augment.testing.fuzz.fuzz_corpus(seed=0)`: valid "
                  "PNG, JPEG, GIF, BMP, TIFF, WebP and PPM files in 29 (format, mode) pairs, mutated by header bit "
                  "flips, body bit flips, truncation, inserted junk and overwritten declared sizes, on a local disk. "
                  f"Medians of {args.repeats} repeats, the scans interleaved in each.\n\n{table}\n\n{truth}\n\n"
                  f"```\npython benchmarks/hostile_store.py --objects {args.objects} --repeats {args.repeats}\n```")


if __name__ == "__main__":
    main()
