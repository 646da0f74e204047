"""Storage credentials from a prefect-aws AwsCredentials block named by `credentials_block`:
resolved where the flow runs, and nowhere in what Prefect records (parameters, task runs, logs,
artifacts, events)."""

from __future__ import annotations

import os

import pytest
import s3fs

from pipelines.common import resolve_storage_options
from pipelines.scan_store import scan_store

from .conftest import SECRET, recorded_text

prefect_aws = pytest.importorskip("prefect_aws", reason="prefect-aws (the `aws` extra) is not installed")


def test_the_block_becomes_s3fs_options_and_explicit_options_win(lake_credentials, s3_endpoint):
    assert resolve_storage_options(None, lake_credentials) == {
        "key": "lake-key", "secret": SECRET, "endpoint_url": s3_endpoint, "client_kwargs": {"region_name": "us-east-1"}}
    mine = {"endpoint_url": "http://127.0.0.1:1", "client_kwargs": {"verify": False}}
    assert resolve_storage_options(mine, lake_credentials) == {
        "key": "lake-key", "secret": SECRET, "endpoint_url": "http://127.0.0.1:1",
        "client_kwargs": {"region_name": "us-east-1", "verify": False}}
    assert resolve_storage_options(mine, None) is mine
    with pytest.raises(ValueError, match="no AwsCredentials block named 'elsewhere'"):
        resolve_storage_options(None, "elsewhere")
    prefect_aws.AwsCredentials(assume_role_arn="arn:aws:iam::123456789012:role/lake").save("role", overwrite=True)
    with pytest.raises(ValueError, match="assumes a role; s3fs cannot refresh"):
        resolve_storage_options(None, "role")
    with pytest.raises(ValueError, match="credentials_block"):
        resolve_storage_options({"secret": SECRET}, None)


def test_a_scan_of_s3_takes_its_credentials_from_the_block_and_records_none(
        tmp_path, png_writer, s3_endpoint, s3_bucket, lake_credentials, no_ambient_credentials):
    local = tmp_path / "store"
    png_writer(str(local / "cats"), 3)
    fs = s3fs.S3FileSystem(key="lake-key", secret=SECRET, endpoint_url=s3_endpoint)
    fs.put(str(local) + "/", f"{s3_bucket}/lake/", recursive=True)

    denied = scan_store(f"{s3_bucket}/lake", f"{s3_bucket}/out", storage_options={"endpoint_url": s3_endpoint},
                        return_state=True)
    assert denied.is_failed() and "no usable credentials" in denied.message  # nothing to sign with; not retried

    state = scan_store(f"{s3_bucket}/lake", f"{s3_bucket}/out", credentials_block=lake_credentials,
                       return_state=True)
    assert state.is_completed(), state.message
    assert state.result()[0]["ok"] == 3 and fs.exists(f"{s3_bucket}/out/cats/manifest.parquet")
    text = recorded_text(state.state_details.flow_run_id)
    assert '"credentials_block":"lake"' in text.replace(" ", "") and SECRET not in text
    # the search covered the logs and the events, not only the runs
    assert "Finished in state Completed" in text and "prefect.flow-run.Completed" in text
    assert os.environ.get("AWS_SECRET_ACCESS_KEY") is None


def test_without_a_block_the_worker_environment_still_serves(tmp_path, png_writer, s3_endpoint, s3_bucket,
                                                             no_ambient_credentials, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    s3fs.S3FileSystem.clear_instance_cache()  # the one made without credentials would serve again
    png_writer(str(tmp_path / "store" / "cats"), 2)
    options = {"endpoint_url": s3_endpoint}
    s3fs.S3FileSystem(**options).put(str(tmp_path / "store") + "/", f"{s3_bucket}/lake/", recursive=True)
    rows = scan_store(f"{s3_bucket}/lake", f"{s3_bucket}/out", storage_options=options)
    assert [(row["dataset"], row["ok"]) for row in rows] == [("cats", 2)]
