"""Shared benchmark plumbing: thread settings, timing statistics and BENCHMARKS.md sections."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence

BENCHMARKS_MD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "BENCHMARKS.md")


def set_threads(threads: int) -> None:
    """Pin torch's intra-op threads (and OpenMP's) for the whole benchmark process."""
    import torch  # here, not at the top: benchmarks of start-up cost must not load it

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def machine_line(threads: int) -> str:
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_name()
    return (f"{os.cpu_count()} cores ({device}), torch {torch.__version__}, {threads} intra-op thread(s), "
            f"Python {platform.python_version()}")


def cpu_name() -> str:
    """The CPU's model and its bf16 path (`devices.cpu_bf16_units`): a seed's figures repeat to
    the digit only on CPUs whose bf16 units match, and in fp32 where there are none."""
    from gan_augment.gan.devices import CPUINFO, cpu_bf16_units

    model = platform.processor() or "cpu"
    if os.path.exists(CPUINFO):
        with open(CPUINFO) as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    units = cpu_bf16_units()
    return f"{model}, " + (f"bf16 on {units}" if units else "no native bf16: fp32")


def timed(call: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this thread). With one torch thread the compute runs in the
    calling thread, so CPU time is what the work costs, whatever else the machine runs."""
    wall, cpu = time.perf_counter(), time.thread_time()
    call()
    return time.perf_counter() - wall, time.thread_time() - cpu


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(title: str, body: str, path: str = BENCHMARKS_MD) -> None:
    """Replace (or append) the `## title` section of BENCHMARKS.md with `body`."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\nEvery figure here was measured by the command shown with it.\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n")


def report_section(title: str, command: str, table: str, *, write: bool, command_note: str = "",
                   machine_note: str = "") -> None:
    """Print `table` and the load average; with `write`, make it the BENCHMARKS.md section `title`:
    the command (then `command_note`), the cores and load average (then `machine_note`), the table."""
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(table)
    print(f"load average {load}")
    if write:
        write_section(title, f"`{command}`{command_note} ({os.cpu_count()} cores, load average {load}"
                             f"{machine_note})\n\n{table}\n")
