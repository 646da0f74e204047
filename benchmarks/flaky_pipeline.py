"""`dark-data` end to end on a flaky S3: every run completes or fails with a reason, nothing is
written half, no manifest row is lost, and a rerun without faults gives the outputs of a
clean run, byte for byte.

The store (three datasets: images, a few broken objects among them, two of which only a full
decode finds, and one dataset of junk) lives on moto's S3 server in its own process;
`FaultProxy` stands between it and the pipeline, injecting one kind of fault per series at a
stated rate (seeded per run). After each faulty run the output root is checked directly on
the server: every Parquet file loads, every `_SUCCESS` marker counts the rows its folder
holds, `model.pt` and every checkpoint load, every listed object has its manifest row. Then
the same flow runs again without faults, and its outputs are compared with a clean run's.

    OMP_NUM_THREADS=1 python benchmarks/flaky_pipeline.py [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="flaky-bench-prefect-")  # a throwaway embedded server
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ["AWS_ACCESS_KEY_ID"] = os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"  # moto on loopback only

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
from common import machine_line, markdown_table, set_threads, write_section  # noqa: E402
from PIL import Image  # noqa: E402

from gan_augment.config import ModelConfig, TrainConfig  # noqa: E402
from gan_augment.gan.checkpoint import load_model  # noqa: E402
from gan_augment.io.fsio import get_fs, join_url  # noqa: E402
from gan_augment.io.tables import read_features, read_manifest, read_synthetic  # noqa: E402
from gan_augment.scan.images import ImageRejected, decode_image, probe_image  # noqa: E402
from gan_augment.scan.listing import list_store  # noqa: E402
from gan_augment.testing.fuzz import fuzz_corpus  # noqa: E402
from gan_augment.testing.servers import (  # noqa: E402
    REGION,
    FaultProxy,
    s3_client,
    serve_in_subprocess,
    start_moto_server,
)
from pipelines.dark_data import dark_data  # noqa: E402

SECTION = "A flaky S3 under the whole pipeline (dark-data)"
MODEL = ModelConfig(image_size=16, channels=1, latent_dim=16, ngf=8, ndf=8)
# The training as these runs were measured: the finish (automatic since finish_steps=None) would triple
# its steps, and with them the checkpoints written through the faults, the requests and the seconds.
TRAINING = TrainConfig(steps=6, batch_size=8, log_every=2, checkpoint_every=3, sample_every=3, seed=0, device="cpu",
                       finish_steps=0)
SAMPLES = 20
# One series per fault kind, each at a stated rate per request.
FAULTS = {
    "connection resets 5%": {"reset_rate": 0.05},
    "503 SlowDown 10%": {"fail_rate": 0.10},
    "truncated bodies 10%": {"truncate_rate": 0.10},
    "latency spikes 5% x 2 s": {"spike_rate": 0.05, "spike_seconds": 2.0},
    "all four at once": {"reset_rate": 0.03, "fail_rate": 0.05, "truncate_rate": 0.05, "spike_rate": 0.02,
                         "spike_seconds": 2.0},
    # Past what the retries absorb: runs must then fail with a reason and leave nothing half written.
    "harsh: 503 40% + resets 10%": {"fail_rate": 0.40, "reset_rate": 0.10},
}
MANIFEST_COLUMNS = ["uri", "size_bytes", "format", "mode", "width", "height", "status", "error", "content_hash",
                    "duplicate_of", "checked", "found_in"]


def store_objects(seed: int = 0) -> dict[str, bytes]:
    """key -> bytes: `cats` (24 images, two whose damage only a decode finds, one truncated),
    `dogs` (16 images), `junk` (nothing readable)."""
    rng, objects = np.random.default_rng(seed), {}
    for dataset, count in (("cats", 24), ("dogs", 16)):
        for i in range(count):
            pixels = (np.linspace(0, 200, 16)[None, :] + rng.uniform(0, 55, (16, 16))).astype(np.uint8)
            buffer = __import__("io").BytesIO()
            Image.fromarray(pixels).save(buffer, "PNG")
            objects[f"{dataset}/img-{i:03d}.png"] = buffer.getvalue()
    sneaky = [case for case in fuzz_corpus(400, seed=3) if _fools_the_probe(case.data)][:2]
    for case in sneaky:
        objects[f"cats/{case.name}"] = case.data
    objects["cats/truncated.png"] = objects["cats/img-000.png"][:40]
    objects["junk/empty.png"], objects["junk/notes.jpg"] = b"", b"meeting notes"
    return objects


def _fools_the_probe(data: bytes) -> bool:
    if probe_image(data, len(data)).status != "ok":
        return False
    try:
        decode_image(data, 16, 1)
    except ImageRejected:
        return True
    return False


def digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()[:16]


def snapshot(out: str, options: dict) -> dict[str, object]:
    """What a run produced, per dataset, for comparing runs: manifest rows (without times),
    model weights, synthetic rows and feature rows."""
    found: dict[str, object] = {}
    fs, root = get_fs(out, options)
    for dataset in sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, refresh=True)):
        base = join_url(out, dataset)
        found[f"{dataset}/manifest"] = read_manifest(join_url(base, "manifest.parquet"), options).select(
            MANIFEST_COLUMNS).to_pylist()
        if not fs.exists(f"{root}/{dataset}/model/model.pt"):
            continue
        model = load_model(join_url(base, "model"), storage_options=options)
        found[f"{dataset}/model"] = digest(*(t.numpy().tobytes() for t in
                                             [*model.generator.state_dict().values(),
                                              *model.discriminator.state_dict().values()]))
        synthetic = read_synthetic(join_url(base, "synthetic"), options).sort_by("index")
        found[f"{dataset}/synthetic"] = digest(*(row["bytes"] for row in synthetic.column("image").to_pylist()))
        features = read_features(join_url(base, "features"), options).sort_by("uri")
        found[f"{dataset}/features"] = digest(features.column("uri").to_string().encode(),
                                              np.asarray(features.column("feature").to_pylist(), np.float32).tobytes())
    return found


def check_integrity(out: str, options: dict, listed: dict[str, int]) -> dict[str, int]:
    """Counts of what a run left broken: Parquet files that do not load, markers that disagree
    with their folder, models or checkpoints that do not load, manifest rows missing."""
    import json

    fs, root = get_fs(out, options)
    broken = {"partial parquet": 0, "bad _SUCCESS": 0, "bad model/checkpoint": 0, "manifest rows lost": 0,
              "rows unreadable": 0}
    files = fs.find(root) if fs.exists(root) else []
    for path in files:
        if path.endswith(".parquet"):
            try:
                with fs.open(path, "rb") as f:
                    pq.read_table(f)
            except Exception:  # noqa: BLE001 - counted
                broken["partial parquet"] += 1
        elif path.endswith("/_SUCCESS"):
            folder = path.rsplit("/", 1)[0]
            rows = sum(pq.ParquetFile(fs.open(p, "rb")).metadata.num_rows for p in files
                       if p.startswith(folder + "/") and p.endswith(".parquet"))
            broken["bad _SUCCESS"] += json.loads(fs.cat_file(path))["rows"] != rows
        elif path.endswith(".pt"):
            try:
                torch.load(fs.open(path, "rb"), weights_only=True)
            except Exception:  # noqa: BLE001 - counted
                broken["bad model/checkpoint"] += 1
    for dataset, count in listed.items():
        try:
            manifest = read_manifest(f"s3://{root}/{dataset}/manifest.parquet", options)
        except FileNotFoundError:
            continue  # the run stopped before the scan wrote it: nothing claimed, nothing lost
        broken["manifest rows lost"] += max(0, count - manifest.num_rows)
        # A read that kept failing is recorded `unreadable` (and read again next time), never dropped.
        broken["rows unreadable"] += manifest.column("status").to_pylist().count("unreadable")
    return broken


def _same(out: str, options: dict, clean: dict[str, object]) -> bool:
    try:
        return snapshot(out, options) == clean
    except (FileNotFoundError, ValueError):
        return False


def run_flow(store: str, out: str, options: dict) -> tuple[bool, str, float]:
    started = time.perf_counter()
    try:
        state = dark_data(store, out, model=MODEL, training=TRAINING, num_samples=SAMPLES, seed=0,
                          storage_options=options, return_state=True)
        completed, message = state.is_completed(), state.message or ""
    except Exception as exc:  # noqa: BLE001 - a run that fails must say why; recorded
        completed, message = False, f"{type(exc).__name__}: {exc}"
    return completed, message, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="faulty runs per fault kind")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    set_threads(args.threads)
    server, endpoint = serve_in_subprocess(start_moto_server)
    try:
        client = s3_client(endpoint)
        client.create_bucket(Bucket="lake")
        for key, data in store_objects().items():
            client.put_object(Bucket="lake", Key=f"store/{key}", Body=data)
        direct = {"endpoint_url": endpoint, "client_kwargs": {"region_name": REGION}}
        store = "s3://lake/store"
        listed = {name: len(objs) for name, objs in list_store(store, direct)[0].items()}
        ok, clean_message, seconds = run_flow(store, "s3://lake/clean", direct)
        assert ok, clean_message
        message = clean_message
        clean = snapshot("s3://lake/clean", direct)
        print(f"clean run: {seconds:.1f} s; {message}")
        rows, totals = [], {"runs": 0, "injected": 0, "lost": 0, "differ": 0}
        for kind, rates in FAULTS.items():
            injected, completed, reasons, lost, same, spent, equal_at_once = 0, 0, [], {}, 0, [], 0
            for run in range(args.runs):
                out = f"s3://lake/{kind.split()[0]}-{run}"
                with FaultProxy(endpoint, seed=100 + run, **rates) as proxy:
                    ok, message, seconds = run_flow(store, out, {**direct, "endpoint_url": proxy.url})
                # The flow completes even when a dataset fails; a run counts as completed when
                # every dataset came out as in the clean run, else its message says what failed.
                ok = ok and message == clean_message
                injected += sum(proxy.counts[k] for k in ("failed", "reset", "truncated", "spiked"))
                spent.append(seconds)
                completed += ok
                if not ok:
                    reasons.append(message.splitlines()[0][:80])
                for name, count in check_integrity(out, direct, listed).items():
                    lost[name] = lost.get(name, 0) + count
                equal_at_once += ok and _same(out, direct, clean)
                rerun_ok, rerun_message, _ = run_flow(store, out, direct)
                same += rerun_ok and _same(out, direct, clean)
                print(f"{kind} run {run}: {'completed' if ok else 'failed'} in {seconds:.1f} s "
                      f"({proxy.counts}); {message[:160]}; rerun: {rerun_message[:80]}")
            totals["runs"] += args.runs
            totals["injected"] += injected
            totals["lost"] += sum(lost.values())
            totals["differ"] += args.runs - same
            rows.append([kind, args.runs, injected, f"{completed}/{args.runs}", "; ".join(reasons) or "-",
                         ", ".join(f"{k} {v}" for k, v in lost.items()), f"{equal_at_once}/{completed}",
                         f"{same}/{args.runs}", f"{np.median(spent):.1f}"])
    finally:
        server.terminate()
    header = ["faults (per request)", "runs", "faults injected", "runs completed", "failures (reason)",
              "broken outputs after the faulty run", "completed run = clean run", "rerun = clean run",
              "median s per run"]
    table = markdown_table(header, rows)
    print(table)
    body = (f"`dark-data` on a store of {sum(listed.values())} objects in {len(listed)} datasets (moto S3 on loopback, "
            f"tiny configs: 16x16, ngf=ndf=8, {TRAINING.steps} steps, {SAMPLES} samples), the output root on the "
            "same endpoint, through `FaultProxy` at the stated rates (seeded per run). After each faulty run the "
            "outputs are checked directly on the server, then the flow runs again without faults and its outputs "
            "(manifest rows, model weights, synthetic and feature rows) are compared with a clean run's.\n\n"
            f"{table}\n\nIn all: {totals['runs']} faulty runs, {totals['injected']} faults injected, "
            f"{totals['lost']} objects, rows or files lost or written half, {totals['differ']} reruns that differ "
            f"from the clean run.\n\n{machine_line(args.threads)}\n\n"
            f"```\nOMP_NUM_THREADS=1 python benchmarks/flaky_pipeline.py --runs {args.runs}\n```")
    write_section(SECTION, body)


if __name__ == "__main__":
    main()
