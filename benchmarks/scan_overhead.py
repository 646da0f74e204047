"""What the perceptual hash costs a scan: this checkout against another one (a checkout of the
commit before the hash), side by side on the same files, in alternating fresh processes.

    git worktree add /tmp/base <commit before the hash>
    OMP_NUM_THREADS=1 python benchmarks/scan_overhead.py --baseline /tmp/base [--objects 2000] [--repeats 5]

Files: `scan_throughput.write_images` (48x48 RGB, half PNG, half JPEG). Two scans per side: the
default header scan (which computes no hash: its code path only gains a null column) and
`verify=True` with `max_seconds=None` (every pixel decoded in the scanning process, so that the
process's CPU time holds all the work; the verify decode is where the hash is computed), and
this checkout's `verify=True, phash=False` (`scan --verify --no-phash`) against the same
baseline verify. CPU
seconds (user + system of the process) are the measure: on a shared machine they count the work,
not the waiting. Medians of --repeats, each side run alternately.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import markdown_table, median, report_section  # noqa: E402
from scan_throughput import write_images  # noqa: E402

TITLE = "What the perceptual hash costs a scan"
CHILD = """
import json, resource, sys, time
from gan_augment.scan.store import scan_store
store, mode = sys.argv[1], sys.argv[2]
options = {"phash": False} if mode == "verify-no-phash" else {}
before = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
result = scan_store(store, rescan=True, verify=mode != "header", max_seconds=None, **options)
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(json.dumps({"cpu": cpu, "wall": time.perf_counter() - started, "objects": result.objects}))
"""


def measure(checkout: str, store: str, mode: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": checkout, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, store, mode], env=env, cwd=checkout, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="a checkout of the commit before the hash")
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    store = tempfile.mkdtemp(prefix="scan-overhead-")
    write_images(store, args.objects)
    cpu: dict[tuple[str, str], list[float]] = {}
    modes = ("header", "verify", "verify-no-phash")
    for _ in range(args.repeats):
        for mode in modes:
            for side, checkout in (("baseline", args.baseline), ("this checkout", here)):
                # The baseline has no hash to leave out: its side of every verify row is its verify.
                run = "verify" if side == "baseline" and mode != "header" else mode
                cpu.setdefault((mode, side), []).append(measure(checkout, store, run)["cpu"])
    rows = []
    for mode in modes:
        base, ours = median(cpu[(mode, "baseline")]), median(cpu[(mode, "this checkout")])
        rows.append([mode, args.objects, f"{base:.2f}", f"{ours:.2f}", f"{ours / base:.3f}"])
    table = markdown_table(["scan", "objects", "baseline CPU s", "this checkout CPU s", "ratio"], rows)
    command = (f"OMP_NUM_THREADS=1 python benchmarks/scan_overhead.py --baseline BASE --objects {args.objects} "
               f"--repeats {args.repeats}")
    report_section(TITLE, command, table, write=not args.no_write, command_note=", BASE a checkout of 3563e48",
                   machine_note="; CPU seconds of the scanning process, medians")


if __name__ == "__main__":
    main()
