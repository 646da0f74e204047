"""What a command costs before it does any work: `gan-augment --help` and `gan-augment scan` of a
10-file folder, wall-clock and peak resident memory of the process, against the floor of loading
the libraries a scan needs (pyarrow, fsspec, Pillow) and nothing else.

Each repeat runs every command once in a fresh interpreter, in a rotating order; the table gives
medians. `--baseline DIR` adds the same commands run from another checkout of the project (for
example `git worktree add /tmp/before <commit>`), side by side in the same repeats.

    python benchmarks/startup.py [--repeats 7] [--baseline /tmp/before]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import markdown_table, median, write_section  # noqa: E402

SECTION = "Start-up cost: --help and a small scan"
FLOOR = "import pyarrow, pyarrow.parquet, fsspec, PIL.Image"
# pyarrow imports pandas on its first table whenever pandas is importable; pandas is no
# dependency of gan-augment (only of the test and demo extras), so a plain install has none.
NO_PANDAS = """
import sys
class NoPandas:  # as if pandas were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pandas":
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NoPandas())
from gan_augment.cli import main
sys.exit(main())
"""


def measure(argv: list[str], cwd: str) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one run of `argv` in a fresh process."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed in {cwd}")
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def baseline_commit(checkout: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True,
                          check=True).stdout.strip()


def write_store(root: str) -> str:
    from PIL import Image

    folder = os.path.join(root, "store", "photos")
    os.makedirs(folder)
    for i in range(10):
        Image.new("RGB", (64, 48), (i * 20, 100, 200 - i * 10)).save(os.path.join(folder, f"{i}.png"))
    return os.path.dirname(folder)


def commands(store: str, out: str, baseline: str | None) -> dict[str, tuple[list[str], str]]:
    python = sys.executable
    found = {
        "gan-augment --help": ([python, "-m", "gan_augment.cli", "--help"], ROOT),
        "gan-augment scan (10 files)": ([python, "-m", "gan_augment.cli", "scan", store, "--out", out], ROOT),
        "gan-augment scan (10 files), pandas not installed": (
            [python, "-c", NO_PANDAS, "scan", store, "--out", out], ROOT),
        f"floor: python -c '{FLOOR}'": ([python, "-c", FLOOR], ROOT),
    }
    if baseline:
        found["baseline checkout: gan-augment --help"] = ([python, "-m", "gan_augment.cli", "--help"], baseline)
        found["baseline checkout: gan-augment scan (10 files)"] = (
            [python, "-m", "gan_augment.cli", "scan", store, "--out", out], baseline)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of each command (default: 7)")
    parser.add_argument("--baseline", metavar="DIR", help="another checkout to run the same commands from")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="startup-bench-")
    store = write_store(root)
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        for repeat in range(args.repeats):
            todo = list(commands(store, os.path.join(root, "out"), args.baseline).items())
            todo = todo[repeat % len(todo):] + todo[:repeat % len(todo)]  # rotate the order
            for name, (argv, cwd) in todo:
                shutil.rmtree(os.path.join(root, "out"), ignore_errors=True)  # every scan is a first scan
                results.setdefault(name, []).append(measure(argv, cwd))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = [[name, f"{median([s for s, _ in runs]):.2f}", f"{median([m for _, m in runs]):.0f}"]
            for name, runs in results.items()]
    table = markdown_table(["command", "median wall s", "median peak RSS MB"], rows)
    print(table)
    if args.no_write:
        return
    command = "python benchmarks/startup.py" + (f" --repeats {args.repeats}" if args.repeats != 7 else "")
    command += " --baseline DIR" if args.baseline else ""
    write_section(SECTION, "\n\n".join([
        f"Command: `{command}` ({os.cpu_count()} cores shared with other work, Python "
        f"{sys.version.split()[0]}; medians of {args.repeats} runs, every command once per repeat in a "
        "rotating order, each in a fresh interpreter; peak RSS of that process; load average "
        f"{os.getloadavg()[0]:.1f} at the end of the run: compare rows with each other, not with another run).",
        table,
        "The scan stage, the output layout, the manifest and the CLI's parser import neither torch nor "
        "torchvision; commands that need them load them when they run. What is left above the floor is "
        "argparse, logging, the scan itself and its manifest write. pyarrow imports pandas (about 55 MB) "
        "on its first table when pandas is importable, as it is in the test and demo environments; "
        "gan-augment itself does not depend on pandas, hence the row without it."
        + (f" The baseline rows run the same commands from a checkout of commit {baseline_commit(args.baseline)} "
           f"(`git worktree add DIR {baseline_commit(args.baseline)}`)." if args.baseline else ""),
    ]))


if __name__ == "__main__":
    main()
