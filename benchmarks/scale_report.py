"""The BENCHMARKS.md sections of benchmarks/scale.py, from the results it saved under ROOT."""

from __future__ import annotations

import json
import os
import textwrap

from common import markdown_table, median, write_section

STORES_TITLE = "Scale: stores of 10,000 to 1,000,000 objects"
FASHION_TITLE = "Scale: one 70,000-image dataset (Fashion-MNIST)"


def _load(root: str, part: str) -> object | None:
    path = os.path.join(root, f"results-{part}.json")
    if not os.path.exists(path) or os.path.getsize(path) == 0:  # absent, or its run still going
        return None
    with open(path) as f:
        return json.load(f)


def stores_section(results: list[dict]) -> str:
    """One row per store size: the limit, the first scan, the re-scan, memory and DuckDB."""
    rows = []
    for size in results:
        runs = size["runs"]
        bare = median([run["seconds"] for run in runs["bare"]])
        # A first scan that read nothing found manifests it should not have (a stray earlier
        # run writing into the same output): it is no first scan, and is left out.
        firsts = [run for run in runs["scan"] if run["read"] > 0]
        first = median([run["scan_seconds"] for run in firsts])
        again = median([run["scan_seconds"] for run in runs["rescan"]])
        objects = runs["scan"][0]["objects"]
        rss = max(run["rss_mib"] for run in runs["scan"] + runs["rescan"])
        duck = size["duckdb"]
        rows.append([f"{objects:,}", f"{len(firsts)} / {len(runs['rescan'])}", f"{bare:.1f}", f"{first:.1f}", f"{objects / first:,.0f}",
                     f"{first / bare:.1f}x", f"{again:.2f}", f"{first / again:.1f}x", f"{rss:.0f}",
                     f"{duck['seconds']:.2f} ({duck['rows']:,} rows, {duck['datasets']} datasets)",
                     " / ".join(f"{v:.1f}" for v in size["load"])])
    header = ["objects", "runs (first scan / re-scan)", "bare walk s", "first scan s", "objects/s", "scan / bare walk", "re-scan s",
              "re-scan speed-up", "peak RSS MiB", "DuckDB query s", "load 1/5/15 min"]
    kinds = results[-1]["kinds"]
    total = sum(kinds.values())
    setup = (f"Command: `OMP_NUM_THREADS=1 python benchmarks/scale.py stores --root /work/scale-data` (2 cores shared "
             "with other work; the load average, taken after each size, says how shared). Each store has 100 "
             f"datasets of tiny PNG and JPEG objects (16x16 to 32x32, 0.3-2 KiB): {100 * kinds['bad'] / total:.0f}% "
             f"bad (truncated, empty, random bytes), {100 * kinds['copy'] / total:.0f}% exact copies, and every "
             "object shares its pixels with many others under another comment chunk (near duplicates no "
             "content hash finds). The stores lie on a local disk, in the page cache after being written.")
    starts = [run["startup_seconds"] for size in results for run in size["runs"]["scan"] + size["runs"]["rescan"]]
    startup = f"{min(starts):.1f}-{max(starts):.1f} s in this run"
    method = ("Each step runs in a fresh process: the bare walk (os.scandir over the tree, the first 64 KiB of "
              "every file read, one thread: the bytes the scan reads, nothing judged), `scan_store(store, "
              "out=out)` with no manifest yet, and the same again on the unchanged store. Seconds are the "
              f"scan_store call alone (the imports, {startup}, are start-up); peak RSS is "
              "the scanning process's high-water mark. Sizes up to 100,000 are medians of 3 interleaved "
              "repeats (a first scan that read nothing, because a stray earlier run had written manifests into "
              "its output, is left out), 1,000,000 is one run. The DuckDB query is one `SELECT count(*), count(DISTINCT dataset), "
              "count(*) FILTER (status = 'ok') FROM read_parquet('<out>/*/manifest.parquet')` over every dataset.")
    return "\n\n".join([textwrap.fill(setup, 100), textwrap.fill(method, 100), markdown_table(header, rows)])


def fashion_section(results: dict) -> str:
    """One row per step of the 70,000-image dataset."""
    rows = []
    for label, step in results["steps"].items():
        export = (f"{step['export_peak_mib'] - step['export_start_mib']:+.0f} (from {step['export_start_mib']:.0f})"
                  if "export_peak_mib" in step else "")
        rows.append([label, f"{step['rows']:,}" if step.get("rows") is not None else "", f"{step['seconds']:.0f}",
                     f"{step['rss_mib']:.0f}", f"{step['tree_rss_mib']:.0f}", export])
    header = ["step", "rows", "seconds", "peak RSS MiB", "peak RSS MiB, workers included", "export's own growth MiB"]
    setup = (f"Command: `OMP_NUM_THREADS=1 python benchmarks/scale.py fashion --root /work/scale-data "
             f"--train-seconds {results['train_seconds']:.0f}` (2 cores shared with other work; load average "
             f"{' / '.join(f'{v:.1f}' for v in results['load'])} at the end; Fashion-MNIST from Debian's "
             "`dataset-fashion-mnist`). The 60,000 train and 10,000 test images are written as grey PNGs into "
             f"one dataset of {results['images']:,} objects. The model is the default DCGAN at 32x32x1 with the "
             f"default training (its automatic budget, 7.3 epochs for 70,000 images), capped at "
             f"{results['train_seconds']:.0f} s by `TrainConfig(max_seconds=..., finish_steps=0)`.")
    method = ("Each step runs in a fresh process. Peak RSS is that process's high-water mark (VmHWM); the next "
              "column samples, every 0.2 s, the sum over the process and its decoding worker processes. The "
              "exports' last column is the high-water mark reached while writing, above the resident memory once "
              "the input was ready (the mark is reset through /proc/self/clear_refs first): a streamed export "
              "should keep it flat in the row count. Features: `extract_features` on the first N images of the "
              "memory-mapped decoded cache of all 70,000 (left by the cache step), then `export_features`; "
              "synthetic: `export_samples` of N samples of the trained model.")
    return "\n\n".join([textwrap.fill(setup, 100), textwrap.fill(method, 100),
                        markdown_table(header, rows)])


def _fashion_so_far(root: str, train_seconds: float) -> dict | None:
    """The fashion results, or the steps measured so far when the run did not finish."""
    results = _load(root, "fashion")
    steps = _load(root, "fashion-steps")
    if results or not steps:
        return results
    return {"images": steps["scan"]["rows"], "train_seconds": train_seconds, "steps": steps, "load": os.getloadavg()}


def write_report(root: str, sizes: str, train_seconds: float, write: bool) -> None:
    """Print both sections that have results, and write them into BENCHMARKS.md unless not `write`."""
    for title, part, section in ((STORES_TITLE, "stores", stores_section), (FASHION_TITLE, "fashion", fashion_section)):
        results = _load(root, part) if part == "stores" else _fashion_so_far(root, train_seconds)
        if not results:
            continue
        body = section(results)
        print(f"\n## {title}\n\n{body}")
        if write:
            write_section(title, body)
