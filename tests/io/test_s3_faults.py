"""A flaky S3 endpoint: requests that fail (503 SlowDown) or lose their connection are retried by
one layer (botocore's on S3, fsio.retry's elsewhere), and the scan comes out exactly as on a
healthy endpoint."""

from __future__ import annotations

import pytest
import torch
from conftest import bad_inputs

from gan_augment.io import fsio, retries
from gan_augment.io.fsio import concurrent_fs, parallel_map
from gan_augment.scan.listing import ImageObject, list_images
from gan_augment.scan.objects import ScanLimits, probe_object
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


def gets_per_object(proxy: FaultProxy) -> list[int]:
    """How often the proxy saw each distinct object read (GET of a key, one per byte range)."""
    return [count for line, count in proxy.seen.items() if line.startswith(b"GET ") and b"?" not in line.split()[1]]


def probe_through(proxy: FaultProxy, objects: list[ImageObject], options: dict) -> list[str]:
    """The scan's verdicts on `objects`, read at once (so that botocore's backoffs overlap)."""
    fs, workers = concurrent_fs(objects[0].uri, options, len(objects))
    verdicts = parallel_map(lambda obj: probe_object(fs, obj, ScanLimits())[0].status, objects,
                            max_workers=workers, ordered=True)
    return [status for _, status in verdicts]


@pytest.fixture
def images(s3_endpoint, zoo) -> list[ImageObject]:
    """Four readable objects of the zoo, listed through the healthy endpoint."""
    listed = list_images(f"{zoo}/zoo", s3_storage_options(s3_endpoint))
    return [obj for obj in listed if obj.uri.endswith(("ok-gray.png", "ok-rgb.jpg", "gray16.png", "la.png"))]


def test_botocore_is_the_only_retry_layer_on_s3(s3_endpoint, images):
    """Every read answered 503 for good: exactly botocore's attempts per object, then
    `unreadable`; neither s3fs nor fsio.retry adds a single request."""
    with FaultProxy(s3_endpoint, fail_first=10**6) as proxy:
        retries = {"config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": 3}}}
        statuses = probe_through(proxy, images, {**s3_storage_options(proxy.url), **retries})
    assert statuses == ["unreadable"] * 4
    assert sorted(gets_per_object(proxy)) == [3] * 4


def test_botocore_alone_recovers_failed_reads(s3_endpoint, images):
    """Two 503s per read: botocore's third attempt succeeds; with its retries off nothing
    else retries, so the same reads are `unreadable` after one request each."""
    with FaultProxy(s3_endpoint, fail_first=2) as proxy:
        retries = {"config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": 3}}}
        assert probe_through(proxy, images, {**s3_storage_options(proxy.url), **retries}) == ["ok"] * 4
    assert sorted(gets_per_object(proxy)) == [3] * 4
    with FaultProxy(s3_endpoint, fail_first=2) as proxy:
        no_retries = {"config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": 1}}}
        assert probe_through(proxy, images, {**s3_storage_options(proxy.url), **no_retries}) == ["unreadable"] * 4
    assert sorted(gets_per_object(proxy)) == [1] * 4


def test_fsio_retry_alone_recovers_reads_of_a_filesystem_without_retries(s3_endpoint, s3_bucket, monkeypatch):
    """HTTP(S) through fsspec's HTTPFileSystem retries nothing itself: fsio.retry is the layer."""
    monkeypatch.setattr(retries.time, "sleep", lambda seconds: None)
    s3_client(s3_endpoint).put_object(Bucket=s3_bucket[len("s3://"):], Key="public/a.png", Body=b"pixels",
                                      ACL="public-read")
    with FaultProxy(s3_endpoint, fail_first=2) as proxy:
        assert fsio.read_bytes(f"{proxy.url}/{s3_bucket[len('s3://'):]}/public/a.png") == b"pixels"
    assert gets_per_object(proxy) == [3]
    with FaultProxy(s3_endpoint, fail_first=10**6) as proxy, pytest.raises(Exception) as error:
        fsio.read_bytes(f"{proxy.url}/{s3_bucket[len('s3://'):]}/public/a.png")
    assert fsio.is_transient(error.value) and gets_per_object(proxy) == [5]  # fsio.retry's 5 attempts


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
