"""Scan throughput: `scan_store` against a naive loop, on a real S3 protocol endpoint (moto's
server on loopback, bare and behind 50 ms of injected first-byte latency) and on a local folder,
plus the decoded-cache build rate.

    OMP_NUM_THREADS=1 python benchmarks/scan_throughput.py [--objects 10000] [--repeats 3]

Methods, measured side by side in one run and interleaved across repeats:
- naive: list, then for each object get the whole object and `PIL.Image.open(...).load()`,
  one after another (boto3 on S3; open + full decode on a local folder).
- server limit: a tight concurrent loop of 64-byte range GETs (s3fs `cat_ranges`, 64 in flight),
  the most objects per second the endpoint serves whatever the client does.
- scan_store: our full scan (listing, probe, hashes, duplicates), no previous manifest.
The moto server and the latency proxy each run in their own process.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from common import markdown_table, median, set_threads, write_section  # noqa: E402
from fsspec.implementations.local import LocalFileSystem  # noqa: E402
from PIL import Image  # noqa: E402

from gan_augment.io.fsio import default_workers, get_fs  # noqa: E402
from gan_augment.scan.cache import build_cache  # noqa: E402
from gan_augment.scan.store import scan_store  # noqa: E402
from gan_augment.testing.servers import (  # noqa: E402
    s3_client,
    s3_storage_options,
    serve_in_subprocess,
    start_fault_proxy,
    start_moto_server,
)

TITLE = "Image-store scan throughput"
HEADER = ["scenario", "method", "objects", "median s", "objects/s", "ratio"]
DATASETS = 10
LATENCY = 0.05


def write_images(root: str, count: int, seed: int = 0) -> list[str]:
    """`count` small images (48x48 RGB, half PNG, half JPEG) in DATASETS first-level folders."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, 48)[None, :, None] * np.ones((48, 1, 3))
    paths = []
    for i in range(count):
        pixels = (base * rng.uniform(0.3, 1.0, 3) + rng.normal(0, 20, (48, 48, 3))).clip(0, 255).astype(np.uint8)
        relative = f"ds-{i % DATASETS:02d}/img-{i:05d}.{'png' if i % 2 else 'jpg'}"
        os.makedirs(os.path.join(root, os.path.dirname(relative)), exist_ok=True)
        Image.fromarray(pixels).save(os.path.join(root, relative), quality=90)
        paths.append(relative)
    return paths


def upload(root: str, paths: list[str], url: str, options: dict) -> None:
    fs, bucket = get_fs(url, {**options, "config_kwargs": {"max_pool_connections": 64}})
    for start in range(0, len(paths), 1000):
        chunk = paths[start:start + 1000]
        fs.pipe({f"{bucket}/{p}": open(os.path.join(root, p), "rb").read() for p in chunk}, batch_size=64)


# -- the methods --------------------------------------------------------------------------------


def naive_s3(endpoint: str, bucket: str, prefixes: list[str]) -> int:
    client, count = s3_client(endpoint), 0
    for prefix in prefixes:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                data = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                Image.open(io.BytesIO(data)).load()
                count += 1
    return count


def server_limit(endpoint: str, bucket: str, prefixes: list[str]) -> int:
    options = {**s3_storage_options(endpoint), "config_kwargs": {"max_pool_connections": 64},
               "skip_instance_cache": True}
    fs, _ = get_fs(f"s3://{bucket}", options)
    paths = [path for prefix in prefixes for path in fs.find(f"{bucket}/{prefix}")]
    fs.cat_ranges(paths, [0] * len(paths), [64] * len(paths), batch_size=64)
    return len(paths)


def ours_s3(endpoint: str, bucket: str, prefixes: list[str]) -> int:
    datasets = [prefix.rstrip("/") for prefix in prefixes]
    result = scan_store(f"s3://{bucket}", datasets=datasets, storage_options=s3_storage_options(endpoint))
    return result.objects


def naive_local(root: str) -> int:
    count = 0
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            with Image.open(os.path.join(folder, name)) as image:
                image.load()
            count += 1
    return count


def ours_local(root: str) -> int:
    return scan_store(root).objects


def cache_build(root: str, max_workers: int | None) -> int:
    return len(build_cache(root, 32, 3, max_workers=max_workers))


def measure(methods: dict[str, Callable[[], int]], repeats: int) -> dict[str, tuple[int, list[float]]]:
    """Run every method `repeats` times, interleaved, so that load on the machine hits all alike."""
    results: dict[str, tuple[int, list[float]]] = {name: (0, []) for name in methods}
    for repeat in range(repeats):
        for name, method in methods.items():
            started = time.perf_counter()
            count = method()
            seconds = time.perf_counter() - started
            results[name] = (count, results[name][1] + [seconds])
            print(f"  repeat {repeat + 1}: {name}: {count} objects in {seconds:.2f} s ({count / seconds:.0f}/s)",
                  flush=True)
    return results


def rows_for(scenario: str, results: dict[str, tuple[int, list[float]]], baseline: str) -> list[list[str]]:
    base_count, base_times = results[baseline]
    base_rate = base_count / median(base_times)
    rows = []
    for name, (count, times) in results.items():
        rate = count / median(times)
        rows.append([scenario, name, str(count), f"{median(times):.2f}", f"{rate:.0f}",
                     f"{rate / base_rate:.2f}x"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000, help="objects in the store (default: 10000)")
    parser.add_argument("--latency-objects", type=int, default=1000,
                        help="objects per run behind the latency proxy, where the naive loop needs "
                             f"{LATENCY * 1000:.0f} ms each (default: 1000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    set_threads(1)  # decoding threads, not OpenMP ones, are what this measures
    workdir = tempfile.mkdtemp(prefix="scan-bench-")
    root = os.path.join(workdir, "store")
    print(f"writing {args.objects} images under {root}", flush=True)
    paths = write_images(root, args.objects)
    sizes = [os.path.getsize(os.path.join(root, path)) for path in paths]
    all_prefixes = [f"ds-{i:02d}/" for i in range(DATASETS)]
    latency_prefixes = all_prefixes[:max(1, args.latency_objects * DATASETS // args.objects)]

    moto, endpoint = serve_in_subprocess(start_moto_server)
    proxy, proxied = serve_in_subprocess(functools.partial(start_fault_proxy, endpoint, latency=LATENCY))
    try:
        s3_client(endpoint).create_bucket(Bucket="lake")
        print("uploading", flush=True)
        upload(root, paths, "s3://lake", s3_storage_options(endpoint))
        rows = []
        print("S3 on bare loopback", flush=True)
        bare = measure({"naive loop": lambda: naive_s3(endpoint, "lake", all_prefixes),
                        "server limit": lambda: server_limit(endpoint, "lake", all_prefixes),
                        "scan_store": lambda: ours_s3(endpoint, "lake", all_prefixes)}, args.repeats)
        rows += rows_for("S3, loopback", bare, "server limit")
        print(f"S3 behind {LATENCY * 1000:.0f} ms latency", flush=True)
        slow = measure({"naive loop": lambda: naive_s3(proxied, "lake", latency_prefixes),
                        "server limit": lambda: server_limit(proxied, "lake", latency_prefixes),
                        "scan_store": lambda: ours_s3(proxied, "lake", latency_prefixes)}, args.repeats)
        rows += rows_for(f"S3, +{LATENCY * 1000:.0f} ms latency", slow, "naive loop")
        print("local folder", flush=True)
        local = measure({"naive loop": lambda: naive_local(root), "scan_store": lambda: ours_local(root)},
                        args.repeats)
        rows += rows_for("local folder", local, "naive loop")
        cache = measure({"decode, 1 thread": lambda: cache_build(root, 1),
                         "build_cache": lambda: cache_build(root, None)}, args.repeats)
    finally:
        proxy.terminate()
        moto.terminate()
        shutil.rmtree(workdir)
    rows += [[*row[:4], f"{row[4]} images/s", row[5]] for row in rows_for("decoded cache 32x32", cache,
                                                                             "decode, 1 thread")]

    table = markdown_table(HEADER, rows)
    print("\n" + table)
    command = "OMP_NUM_THREADS=1 python benchmarks/scan_throughput.py"
    if (args.objects, args.latency_objects, args.repeats) != (10_000, 1000, 3):
        command += f" --objects {args.objects} --latency-objects {args.latency_objects} --repeats {args.repeats}"
    if not args.no_write:
        write_section(TITLE, report(command, args.objects, args.repeats,
                                    len(latency_prefixes) * args.objects // DATASETS, (min(sizes), max(sizes)), table))


def report(command: str, objects: int, repeats: int, latency_objects: int, sizes: tuple[int, int],
           table: str) -> str:
    """The BENCHMARKS.md section: how it was measured, then the table."""
    setup = (f"Command: `{command}` ({os.cpu_count()} cores shared with other work, OMP_NUM_THREADS=1, medians "
             f"of {repeats} interleaved repeats; scan_store keeps its default 32 requests in flight on S3 and "
             f"uses {default_workers(LocalFileSystem())} threads locally, as build_cache does).")
    method = (f"{objects} small images (48x48 RGB, half PNG, half JPEG, {sizes[0] / 1024:.1f}-{sizes[1] / 1024:.1f} "
              f"KiB) in {DATASETS} datasets. On S3 the endpoint is moto's server on loopback in its own process. "
              "On bare loopback the ratio is to the server limit (a tight loop of 64-byte range GETs, 64 in "
              "flight): that server, not the client, sets the pace there. Behind the latency proxy (its own "
              f"process, {LATENCY * 1000:.0f} ms before each request is forwarded, like a remote store's first-byte "
              f"latency) each method reads the first {latency_objects} objects and the ratio is to the naive loop. "
              "Locally the naive loop opens and fully decodes each file; the decoded-cache rows compare "
              "build_cache's thread pool with the same decoding on one thread.")
    return "\n\n".join([textwrap.fill(setup, 100), textwrap.fill(method, 100), table])


if __name__ == "__main__":
    main()
