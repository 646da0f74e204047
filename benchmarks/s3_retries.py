"""S3 retries: requests per object and time to judge it `unreadable` under a sustained 503, and
the time to read a store where a share of requests is throttled, before and after botocore
became the only retry layer on S3.

    python benchmarks/s3_retries.py [--objects 4] [--repeats 3] [--store-objects 256]

Reads go to moto's S3 server (its own process) through `FaultProxy`, which answers 503 SlowDown
and counts every request. The layers compared, side by side in one run:
- before: s3fs as it comes (its own retry loop, 5 tries, around botocore's default retries,
  5 attempts) with `fsio.retry` (5 attempts) around every read, as every read had.
- after: `fsio.get_fs` (botocore's standard mode, 5 attempts; s3fs's loop and fsio.retry off
  for S3 requests); "after, adaptive mode" is botocore's adaptive mode (standard plus a
  client-side rate limit after throttling) with the same 5 attempts.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import markdown_table, median, write_section  # noqa: E402

from gan_augment.io.fsio import S3_RETRIES, concurrent_fs, parallel_map, retry  # noqa: E402
from gan_augment.testing.servers import (  # noqa: E402
    FaultProxy,
    s3_client,
    s3_storage_options,
    serve_in_subprocess,
    start_moto_server,
)

TITLE = "S3 retries under throttling"
BUCKET = "retries"
FAIL_RATE = 0.1
LATENCY = 0.02
WORKERS = 32


def before_read(url: str, workers: int) -> Callable[[str], bytes]:
    """The old stack: s3fs's defaults (its loop and botocore's default retries) under fsio.retry."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3_storage_options(url), config_kwargs={"max_pool_connections": workers},
                           skip_instance_cache=True)
    return lambda key: retry(lambda: fs.cat_file(f"{BUCKET}/{key}", start=0, end=64))


def after_read(url: str, workers: int, mode: str = S3_RETRIES["mode"]) -> Callable[[str], bytes]:
    """Today's stack: `concurrent_fs` (botocore alone retries), read as `read_object` reads."""
    options = s3_storage_options(url)
    if mode != S3_RETRIES["mode"]:
        options["config_kwargs"] = {"retries": {**S3_RETRIES, "mode": mode}}
    fs, _ = concurrent_fs(f"s3://{BUCKET}", options, workers)
    return lambda key: retry(lambda: fs.cat_file(f"{BUCKET}/{key}", start=0, end=64), fs=fs)


STACKS = {"before": before_read, "after (standard mode, the default)": after_read,
          "after, adaptive mode": lambda url, workers: after_read(url, workers, "adaptive")}


def judge_unreadable(endpoint: str, stack: str, keys: list[str]) -> list[tuple[int, float]]:
    """(GETs, seconds until the read gave up) for each key, read at once, every GET failing."""
    def attempt(key: str) -> float:
        start = time.perf_counter()
        try:
            read(key)
        except Exception:  # noqa: BLE001 - the verdict `unreadable` is what is timed
            return time.perf_counter() - start
        raise AssertionError(f"{key} was read through a proxy that fails every request")

    with FaultProxy(endpoint, fail_first=10**9) as proxy:
        read = STACKS[stack](proxy.url, len(keys))
        seconds = [s for _, s in parallel_map(attempt, keys, max_workers=len(keys), ordered=True)]
    gets = [sum(n for line, n in proxy.seen.items() if line.startswith(f"GET /{BUCKET}/{key} ".encode()))
            for key in keys]
    return list(zip(gets, seconds))


def read_store(endpoint: str, stack: str, keys: list[str], seed: int) -> tuple[float, int]:
    """(seconds, requests) to read every key with WORKERS in flight, FAIL_RATE of requests 503."""
    with FaultProxy(endpoint, fail_rate=FAIL_RATE, latency=LATENCY, seed=seed) as proxy:
        read = STACKS[stack](proxy.url, WORKERS)
        start = time.perf_counter()
        for _ in parallel_map(read, keys, max_workers=WORKERS):
            pass
        return time.perf_counter() - start, proxy.counts["requests"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=4, help="objects read at once under a sustained 503")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (default: 3)")
    parser.add_argument("--store-objects", type=int, default=256, help="objects of the throttled store")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()

    server, endpoint = serve_in_subprocess(start_moto_server)
    try:
        client = s3_client(endpoint)
        client.create_bucket(Bucket=BUCKET)
        keys = [f"data/img-{i:05d}.png" for i in range(max(args.objects, args.store_objects))]
        for key in keys:
            client.put_object(Bucket=BUCKET, Key=key, Body=os.urandom(1024))
        sustained, throttled = {s: [] for s in STACKS}, {s: [] for s in STACKS}
        for repeat in range(args.repeats):  # interleaved, so drifts of a shared machine hit every stack alike
            for stack in STACKS:
                sustained[stack] += judge_unreadable(endpoint, stack, keys[:args.objects])
                throttled[stack].append(read_store(endpoint, stack, keys[:args.store_objects], seed=repeat))
                print(f"run {repeat + 1}/{args.repeats} {stack}: {sustained[stack][-1]}, {throttled[stack][-1]}",
                      flush=True)
    finally:
        server.terminate()

    rows = [[stack, f"{median([g for g, _ in sustained[stack]]):.0f} (max {max(g for g, _ in sustained[stack])})",
             f"{median([s for _, s in sustained[stack]]):.1f}",
             f"{median([s for s, _ in throttled[stack]]):.2f}",
             f"{median([n for _, n in throttled[stack]]) / args.store_objects:.2f}"] for stack in STACKS]
    header = ["retry layers", "GETs per object, sustained 503", "s to `unreadable`",
              f"s to read {args.store_objects} objects, {FAIL_RATE:.0%} 503", "requests per object there"]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_write:
        command = "python benchmarks/s3_retries.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "no_write")
        write_section(TITLE, report(command, args, table))


def report(command: str, args: argparse.Namespace, table: str) -> str:
    return textwrap.dedent(f"""
        `{command}` (moto's S3 server on loopback in its own process, `FaultProxy` in front of it).

        Sustained 503: every GET of {args.objects} objects, read at once, is answered 503 SlowDown
        until the read gives up; medians over {args.repeats} runs of the GETs each object saw and the
        seconds until its read raised (the scan then records `unreadable`). Throttled store:
        {args.store_objects} 1-KiB objects read with {WORKERS} in flight, {LATENCY * 1000:.0f} ms
        first-byte latency and {FAIL_RATE:.0%} of requests answered 503 at random; every read succeeds.
        Before: s3fs's own loop (5 tries) around botocore's default retries (5 attempts) under
        `fsio.retry` (5 attempts). After: botocore alone (`fsio.S3_RETRIES`: standard mode, 5 attempts),
        and the same in botocore's adaptive mode.

        """) + table + "\n"


if __name__ == "__main__":
    main()
