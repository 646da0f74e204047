"""A flaky S3 endpoint: requests that fail (503 SlowDown) or lose their connection are retried,
and the scan and the training cache come out exactly as on a healthy endpoint."""

from __future__ import annotations

import pytest
import torch
from conftest import bad_inputs

from gan_augment.scan.cache import build_cache
from gan_augment.scan.store import scan_store
from gan_augment.testing.servers import FaultProxy, s3_client, s3_storage_options

COLUMNS = ["uri", "size_bytes", "etag_or_hash", "format", "mode", "width", "height", "status", "error",
           "content_hash", "duplicate_of"]


@pytest.fixture
def zoo(s3_endpoint, s3_bucket) -> str:
    client, bucket = s3_client(s3_endpoint), s3_bucket[len("s3://"):]
    for name, (data, _) in bad_inputs().items():
        client.put_object(Bucket=bucket, Key=f"zoo/{name}", Body=data)
        client.put_object(Bucket=bucket, Key=f"copy/{name}", Body=data)
    return s3_bucket


def test_scan_survives_random_failures_and_resets(s3_endpoint, zoo, tmp_path):
    healthy = scan_store(zoo, storage_options=s3_storage_options(s3_endpoint))
    with FaultProxy(s3_endpoint, fail_rate=0.2, reset_rate=0.05, seed=3) as proxy:
        flaky = scan_store(zoo, out=str(tmp_path / "out"), storage_options=s3_storage_options(proxy.url))
    assert proxy.counts["failed"] > 5 and proxy.counts["reset"] > 0
    for name in ("zoo", "copy"):
        assert flaky.datasets[name].manifest.select(COLUMNS).equals(healthy.datasets[name].manifest.select(COLUMNS))


def test_our_retries_alone_recover_every_failed_request(s3_endpoint, zoo, tmp_path):
    """With botocore's own retries switched off, every request fails once and fsio.retry
    must recover each, listing included."""
    healthy = scan_store(zoo, storage_options=s3_storage_options(s3_endpoint), head_bytes=1024)
    with FaultProxy(s3_endpoint, fail_first=1) as proxy:
        options = {**s3_storage_options(proxy.url), "config_kwargs": {"retries": {"max_attempts": 1}}}
        flaky = scan_store(zoo, storage_options=options, head_bytes=1024)
        cache = build_cache(f"{zoo}/zoo", 16, 3, options)
    assert proxy.counts["failed"] >= flaky.read_objects
    for name in ("zoo", "copy"):
        assert flaky.datasets[name].manifest.select(COLUMNS).equals(healthy.datasets[name].manifest.select(COLUMNS))
    reference = build_cache(f"{zoo}/zoo", 16, 3, s3_storage_options(s3_endpoint))
    assert torch.equal(cache.images, reference.images) and cache.skipped == reference.skipped


def test_requests_overlap_to_hide_latency(s3_endpoint, zoo):
    with FaultProxy(s3_endpoint, latency=0.05) as proxy:
        result = scan_store(zoo, datasets=["zoo"], storage_options=s3_storage_options(proxy.url), max_workers=8)
    assert result.datasets["zoo"].read_objects == 20
    assert proxy.counts["max_in_flight"] == 8  # the scan keeps max_workers requests waiting at once


def test_truncated_bodies_and_latency_spikes_change_nothing(s3_endpoint, zoo, tmp_path):
    healthy = scan_store(zoo, storage_options=s3_storage_options(s3_endpoint), head_bytes=1024)
    reference = build_cache(f"{zoo}/zoo", 16, 3, s3_storage_options(s3_endpoint))
    with FaultProxy(s3_endpoint, truncate_rate=0.3, spike_rate=0.05, spike_seconds=0.5, seed=5) as proxy:
        options = s3_storage_options(proxy.url)
        flaky = scan_store(zoo, storage_options=options, head_bytes=1024)
        cache = build_cache(f"{zoo}/zoo", 16, 3, options)
    assert proxy.counts["truncated"] > 5 and proxy.counts["spiked"] > 0
    for name in ("zoo", "copy"):
        assert flaky.datasets[name].manifest.select(COLUMNS).equals(healthy.datasets[name].manifest.select(COLUMNS))
    assert torch.equal(cache.images, reference.images) and cache.skipped == reference.skipped
