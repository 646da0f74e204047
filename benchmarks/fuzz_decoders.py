"""Coverage-guided fuzzing of the header probe and the decoder with Hypothesis.

Each example starts from a valid image of one of `testing.fuzz.BASES` and applies a list of
edits (bytes overwritten, a cut, bytes inserted, a declared size overwritten). Hypothesis's
targeted search (`hypothesis.target`) steers towards examples that execute more lines of
Pillow's Python plugins (measured with `sys.settrace` on PIL's modules) and towards slower
decodes. The properties, for every example:

- `probe_image` and `verify_image` return a verdict (a known status, a reason when not ok),
  never raise; `decode_image` raises nothing but `ImageRejected`;
- `verify_image` says ok exactly when `decode_image` decodes (grayscale and colour): a
  verified manifest never claims more, nor less, than training can use;
- a header verdict other than ok is never contradicted by a decode that succeeds.

The search is steered by timings too, so two runs with the same seed can differ.

    python benchmarks/fuzz_decoders.py [--examples 3000] [--seed 0]

Prints each distinct failure (with its shrunk input) and writes the run's figures to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from common import markdown_table, write_section  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings, target  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gan_augment.io.tables import MANIFEST_STATUSES  # noqa: E402
from gan_augment.scan.images import probe_image, verify_image  # noqa: E402
from gan_augment.testing.fuzz import BASES, decodes, encode_base, mutate  # noqa: E402

SECTION = "Coverage-guided fuzzing of the probe and the decoder"
FINDINGS: dict[str, bytes] = {}
STATS = {"examples": 0, "lines": set(), "slowest": (0.0, "")}


def _base_files() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    return [(f"{fmt}/{mode}", encode_base(fmt, mode, options, (24, 20), rng)) for fmt, mode, options in BASES]


BASE_FILES = _base_files()
EDIT = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 16), st.just(b"")),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("declared_size"), st.integers(0, 1 << 30), st.just(b"")),
)


def apply_edits(data: bytes, fmt: str, edits: list[tuple[str, int, bytes]]) -> bytes:
    import random

    for kind, position, payload in edits:
        at = position % (len(data) + 1)
        if kind == "set":
            data = data[:at] + payload + data[at + len(payload):]
        elif kind == "cut":
            data = data[:max(1, at)]
        elif kind == "insert":
            data = data[:at] + payload + data[at:]
        else:
            try:  # the size fields are found by parsing; earlier edits may have broken the structure
                data = mutate(data, fmt, "declared_size", random.Random(position))
            except (ValueError, IndexError, struct.error):
                continue
    return data


class LineTracer:
    """Lines of PIL's Python modules executed while active (what the search steers by)."""

    def __init__(self) -> None:
        self.lines: set[tuple[str, int]] = set()

    def __call__(self, frame, event, arg):  # noqa: ANN001 - sys.settrace's signature
        if "/PIL/" not in frame.f_code.co_filename:
            return None
        if event == "line":
            self.lines.add((frame.f_code.co_filename, frame.f_lineno))
        return self

    def __enter__(self) -> LineTracer:
        sys.settrace(self)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(None)


def check(data: bytes) -> None:
    """The properties of the module docstring; a failure raises AssertionError or the crash."""
    probe = probe_image(data, len(data))
    assert probe.status in MANIFEST_STATUSES and (probe.status == "ok" or probe.error), probe
    verified = verify_image(data)
    assert verified.status in MANIFEST_STATUSES and (verified.status == "ok" or verified.error), verified
    decoded = decodes(data)
    assert (verified.status == "ok") == decoded, f"verify says {verified.status} ({verified.error}), decode {decoded}"
    assert probe.status == "ok" or not decoded, f"probe says {probe.status} ({probe.error}) but it decodes"


@given(base=st.integers(0, len(BASE_FILES) - 1), edits=st.lists(EDIT, min_size=1, max_size=4))
def fuzz_one(base: int, edits: list[tuple[str, int, bytes]]) -> None:
    name, data = BASE_FILES[base]
    data = apply_edits(data, name.split("/")[0], edits)
    started = time.perf_counter()
    with LineTracer() as tracer:
        try:
            check(data)
        except Exception as exc:  # noqa: BLE001 - every distinct failure is recorded, then re-raised
            FINDINGS.setdefault(f"{name}: {type(exc).__name__}: {str(exc)[:160]}", data)
            raise
    seconds = time.perf_counter() - started
    STATS["examples"] += 1
    STATS["lines"] |= tracer.lines
    if seconds > STATS["slowest"][0]:
        STATS["slowest"] = (seconds, name)
    target(float(len(tracer.lines)), label="PIL lines covered")
    target(seconds, label="seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # Pillow warns about every damage it works around
    runner = settings(max_examples=args.examples, deadline=None, database=None, report_multiple_bugs=True,
                      suppress_health_check=list(HealthCheck))(seed(args.seed)(fuzz_one))
    started = time.perf_counter()
    try:
        runner()
        outcome = "no property failed"
    except BaseException as exc:  # noqa: BLE001 - reported below (ExceptionGroup with several bugs)
        outcome = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    seconds = time.perf_counter() - started
    for finding, data in FINDINGS.items():
        print(f"FOUND {finding}\n    input ({len(data)} bytes): {data[:96]!r}...")
    rows = [[STATS["examples"], len(STATS["lines"]), len(FINDINGS), f"{STATS['slowest'][0]:.3f} s ({STATS['slowest'][1]})",
             f"{seconds:.0f}", outcome]]
    table = markdown_table(["examples", "PIL lines covered", "distinct failures", "slowest example", "seconds",
                            "outcome"], rows)
    print(table)
    findings = "\n".join(f"- `{finding}`" for finding in FINDINGS) or "- none"
    write_section(SECTION, f"Hypothesis (seed {args.seed}), targeted at PIL lines covered and decode time; "
                  f"properties in the script's docstring.\n\n{table}\n\nFailures found in this run:\n\n{findings}\n\n"
                  f"```\npython benchmarks/fuzz_decoders.py --examples {args.examples} --seed {args.seed}\n```")


if __name__ == "__main__":
    main()
