"""`gan-augment scan`: a table and exit status 0 with bad objects, one clear line and a non-zero
status when the store cannot be read, and fsspec's environment configuration for S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import fsspec
from conftest import bad_inputs

from gan_augment.cli import main
from gan_augment.io.tables import read_manifest
from gan_augment.testing.servers import TEST_CREDENTIALS, s3_storage_options


def test_scan_prints_a_table_and_succeeds_with_bad_objects(tmp_path, capsys):
    folder = tmp_path / "store" / "zoo"
    folder.mkdir(parents=True)
    for name, (data, _) in bad_inputs().items():
        (folder / name).write_bytes(data)
    assert main(["scan", str(tmp_path / "store"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[:2]
    assert header.split()[:4] == ["dataset", "objects", "ok", "bad"]
    assert row.split()[:3] == ["zoo", "21", "13"] and "corrupt 4" in row and "16x16" in row
    assert read_manifest(str(tmp_path / "out" / "zoo" / "manifest.parquet")).num_rows == 21


def test_unreachable_store_is_one_line_without_secrets(capsys):
    options = {"endpoint_url": "http://127.0.0.1:9", "key": "AKIDEXAMPLE", "secret": "s3cr3t-never-shown",
               "config_kwargs": {"retries": {"max_attempts": 1}}}
    assert main(["scan", "s3://lake", "--storage-options", json.dumps(options)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("gan-augment scan: error: cannot list s3://lake")
    assert captured.err.count("\n") == 1 and "s3cr3t" not in captured.err


def test_bad_storage_options_and_missing_store(tmp_path, capsys):
    assert main(["scan", str(tmp_path), "--storage-options", "{not json"]) == 1
    assert "--storage-options is not valid JSON" in capsys.readouterr().err
    assert main(["scan", str(tmp_path / "missing")]) == 1
    assert "no folder or prefix" in capsys.readouterr().err


def test_fsspec_environment_configuration_reaches_s3(s3_endpoint, s3_bucket, tmp_path):
    fs = fsspec.filesystem("s3", **s3_storage_options(s3_endpoint))
    for name, (data, _) in list(bad_inputs().items())[:4]:
        fs.pipe_file(f"{s3_bucket[5:]}/zoo/{name}", data)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FSSPEC_"))}
    env = {**inherited, "FSSPEC_S3_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": TEST_CREDENTIALS["key"],
           "AWS_SECRET_ACCESS_KEY": TEST_CREDENTIALS["secret"], "AWS_DEFAULT_REGION": "us-east-1",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "gan_augment.cli", "scan", s3_bucket, "--out", f"{s3_bucket}/out"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split()[:2] == ["zoo", "4"]
    manifest = read_manifest(f"{s3_bucket}/out/zoo/manifest.parquet", s3_storage_options(s3_endpoint))
    assert manifest.num_rows == 4 and all(uri.startswith(f"{s3_bucket}/zoo/") for uri in manifest["uri"].to_pylist())


def test_scan_verify_decodes_every_object_and_reports_the_slowest(tmp_path, capsys):
    from gan_augment.testing.fuzz import fuzz_corpus

    folder = tmp_path / "store" / "fuzz"
    folder.mkdir(parents=True)
    for case in fuzz_corpus(60, seed=1):
        (folder / case.name).write_bytes(case.data)
    out = str(tmp_path / "out")
    assert main(["scan", str(tmp_path / "store"), "--out", out]) == 0
    header_ok = read_manifest(f"{out}/fuzz/manifest.parquet").column("status").to_pylist().count("ok")
    assert main(["scan", str(tmp_path / "store"), "--out", out, "--verify", "--max-seconds", "20"]) == 0
    assert "slowest object" in capsys.readouterr().out
    manifest = read_manifest(f"{out}/fuzz/manifest.parquet")
    assert {row["checked"] for row in manifest.to_pylist() if row["status"] == "ok"} == {"decode"}
    assert manifest.column("status").to_pylist().count("ok") < header_ok  # damage past the header found
    assert main(["scan", str(tmp_path / "store"), "--max-seconds", "-1"]) == 1
