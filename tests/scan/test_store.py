"""scan_store on a local folder, memory:// and a real S3 endpoint: statuses, duplicates,
incremental scans, range reads, and errors that are recorded rather than raised."""

from __future__ import annotations

import logging

import pytest
from conftest import bad_inputs, encode, noise_image

import gan_augment.scan.store as store_module
from gan_augment.io.tables import MANIFEST_SCHEMA, MANIFEST_STATUSES, read_manifest
from gan_augment.scan.listing import ImageObject, list_images, object_version
from gan_augment.scan.objects import ScanLimits, probe_object
from gan_augment.scan.store import scan_store

INPUTS = bad_inputs()


def fill(store, dataset="zoo") -> dict[str, str]:
    """Write every bad input into `dataset`, plus files a scan must skip; uri -> expected status."""
    expected = {store.put(f"{dataset}/{name}", data): status for name, (data, status) in INPUTS.items()}
    store.put(f"{dataset}/notes.txt", b"not an image")
    store.put(f"{dataset}/.hidden.png", INPUTS["ok-gray.png"][0])
    store.put(f"{dataset}/.thumbnails/a.png", INPUTS["ok-gray.png"][0])
    store.put("readme.png", b"a file at the store root belongs to no dataset")
    return expected


def statuses(scan) -> dict[str, str]:
    return dict(zip(scan.manifest.column("uri").to_pylist(), scan.manifest.column("status").to_pylist()))


@pytest.mark.parametrize("head_bytes", [1 << 16, 256], ids=["whole-reads", "range-reads"])
def test_scan_gives_every_bad_input_its_status(store, tmp_path, head_bytes):
    expected = fill(store)
    result = scan_store(store.url, out=str(tmp_path / "out"), storage_options=store.storage_options,
                        head_bytes=head_bytes)
    scan = result.datasets["zoo"]
    assert statuses(scan) == expected
    assert scan.skipped == {"hidden": 2, "not_image": 1}
    assert result.ignored == {"file at the store root": 1}
    rows = {row["uri"]: row for row in scan.manifest.to_pylist()}
    rotated = rows[store.url_of("zoo/exif-rotated.jpg")]
    assert (rotated["format"], rotated["width"], rotated["height"]) == ("JPEG", 16, 24)
    duplicate = rows[store.url_of("zoo/z-duplicate.png")]
    assert duplicate["duplicate_of"] == store.url_of("zoo/ok-gray.png")
    assert all(row["error"] for row in rows.values() if row["status"] != "ok")
    assert set(scan.manifest.column("status").to_pylist()) <= set(MANIFEST_STATUSES)
    # The manifest on disk is the one returned, with the documented schema.
    written = read_manifest(str(tmp_path / "out" / "zoo" / "manifest.parquet"))
    assert written.schema.remove_metadata().equals(MANIFEST_SCHEMA)
    assert written.equals(scan.manifest)
    table = result.summary_table()
    assert "zoo" in table and "corrupt 4" in table and "too_large 1" in table


def test_datasets_are_first_level_folders(store):
    for name in ("cats", "dogs"):
        store.put(f"{name}/a.png", encode(noise_image((16, 16), seed=hash(name) % 100), "PNG"))
    store.put("dogs/puppies/b.png", encode(noise_image((32, 32)), "PNG"))
    store.put(".trash/c.png", encode(noise_image((16, 16)), "PNG"))
    result = scan_store(store.url, storage_options=store.storage_options)
    assert sorted(result.datasets) == ["cats", "dogs"]
    assert result.datasets["dogs"].manifest.num_rows == 2
    assert result.datasets["dogs"].sizes == {"16x16": 1, "32x32": 1}
    assert result.ignored == {"hidden folder": 1}
    only = scan_store(store.url, datasets=["cats"], storage_options=store.storage_options)
    assert list(only.datasets) == ["cats"]


def test_incremental_scan_reads_only_what_changed(store, tmp_path):
    out = str(tmp_path / "out")
    for i in range(5):
        store.put(f"ds/img-{i}.png", encode(noise_image((16, 16), seed=i), "PNG"))
    first = scan_store(store.url, out=out, storage_options=store.storage_options).datasets["ds"]
    assert (len(first.new), first.read_objects) == (5, 5)

    again = scan_store(store.url, out=out, storage_options=store.storage_options).datasets["ds"]
    assert (again.new, again.changed, again.deleted, again.unchanged, again.read_objects) == ([], [], [], 5, 0)
    assert again.manifest.equals(first.manifest)

    store.put("ds/img-0.png", encode(noise_image((24, 24), seed=99), "PNG"))  # changed
    store.remove("ds/img-1.png")  # deleted
    store.put("ds/img-9.png", b"")  # new (and empty)
    later = scan_store(store.url, out=out, storage_options=store.storage_options).datasets["ds"]
    assert later.new == [store.url_of("ds/img-9.png")]
    assert later.changed == [store.url_of("ds/img-0.png")]
    assert later.deleted == [store.url_of("ds/img-1.png")]
    assert (later.unchanged, later.read_objects) == (3, 1)  # the empty object needs no read
    rows = {row["uri"]: row for row in later.manifest.to_pylist()}
    assert rows[store.url_of("ds/img-0.png")]["width"] == 24
    assert rows[store.url_of("ds/img-9.png")]["status"] == "empty"

    full = scan_store(store.url, out=out, rescan=True, storage_options=store.storage_options).datasets["ds"]
    assert full.read_objects == 4 and statuses(full) == statuses(later)


def test_duplicate_status_follows_its_original(tmp_path):
    root = tmp_path / "store" / "ds"
    root.mkdir(parents=True)
    data = encode(noise_image((16, 16), seed=1), "PNG")
    (root / "a.png").write_bytes(data)
    (root / "b.png").write_bytes(data)
    out = str(tmp_path / "out")
    assert statuses(scan_store(str(tmp_path / "store"), out=out).datasets["ds"])[f"file://{root}/b.png"] == "duplicate"
    (root / "a.png").unlink()  # the original goes: its copy is ok again, without being read
    scan = scan_store(str(tmp_path / "store"), out=out).datasets["ds"]
    assert statuses(scan) == {f"file://{root}/b.png": "ok"} and scan.read_objects == 0


def test_large_objects_are_judged_from_header_and_tail(tmp_path):
    big = encode(noise_image((200, 200), seed=1), "PNG")  # ~120 KB
    path = tmp_path / "big.png"
    path.write_bytes(big)
    calls = []

    class RecordingFS:
        def cat_file(self, path, start=None, end=None):
            calls.append((start, end))
            data = open(path, "rb").read()
            return data[start:end]

    obj = ImageObject(f"file://{path}", len(big), "", str(path))
    probe, content_hash, _ = probe_object(RecordingFS(), obj, ScanLimits(head_bytes=4096))
    assert (probe.status, probe.width, probe.height, content_hash) == ("ok", 200, 200, None)
    assert sum(end - start for start, end in calls) <= 4096 + 1024

    path.write_bytes(big[: len(big) // 2])  # truncated: the tail has no IEND
    calls.clear()
    probe, _, _ = probe_object(RecordingFS(), ImageObject(obj.uri, len(big) // 2, "", str(path)), ScanLimits(4096))
    assert probe.status == "corrupt" and "truncated" in probe.error


def test_object_deleted_between_list_and_read(store, tmp_path, monkeypatch, caplog):
    for name in ("a.png", "b.png", "c.png"):
        store.put(f"ds/{name}", encode(noise_image((16, 16), seed=ord(name[0])), "PNG"))
    out = str(tmp_path / "out")
    scan_store(store.url, out=out, storage_options=store.storage_options)
    store.put("ds/d.png", encode(noise_image((16, 16), seed=4), "PNG"))
    list_store = store_module.list_store

    def list_then_delete(*args, **kwargs):
        listing = list_store(*args, **kwargs)
        store.remove("ds/b.png")
        store.remove("ds/d.png")
        return listing

    monkeypatch.setattr(store_module, "list_store", list_then_delete)
    with caplog.at_level(logging.WARNING):
        scan = scan_store(store.url, out=out, rescan=True, storage_options=store.storage_options).datasets["ds"]
    assert sorted(statuses(scan)) == [store.url_of("ds/a.png"), store.url_of("ds/c.png")]
    assert scan.deleted == [store.url_of("ds/b.png")] and scan.new == []
    assert "deleted while the scan ran" in caplog.text


def test_permanent_read_error_is_recorded_and_retried_next_time(tmp_path, monkeypatch):
    from fsspec.implementations.memory import MemoryFileSystem

    path = f"/perm-{tmp_path.name}"
    root = f"memory://{path}"
    fs = MemoryFileSystem()
    for name in ("a.png", "b.png"):
        fs.pipe_file(f"{path}/ds/{name}", encode(noise_image((16, 16), seed=ord(name[0])), "PNG"))
    original = MemoryFileSystem.cat_file

    def denied(self, path, *args, **kwargs):
        if path.endswith("b.png"):
            raise PermissionError("Access Denied")
        return original(self, path, *args, **kwargs)

    out = str(tmp_path / "out")
    monkeypatch.setattr(MemoryFileSystem, "cat_file", denied)
    scan = scan_store(root, out=out).datasets["ds"]
    rows = {row["uri"].rsplit("/", 1)[-1]: row for row in scan.manifest.to_pylist()}
    assert rows["a.png"]["status"] == "ok"
    assert rows["b.png"]["status"] == "unreadable" and "PermissionError" in rows["b.png"]["error"]
    monkeypatch.setattr(MemoryFileSystem, "cat_file", original)
    scan = scan_store(root, out=out).datasets["ds"]
    assert statuses(scan)[f"{root}/ds/b.png"] == "ok" and scan.read_objects == 1
    fs.rm(path, recursive=True)


def test_store_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder or prefix"):
        scan_store(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no dataset folders"):
        scan_store(str(tmp_path / "empty"))
    (tmp_path / "empty" / "ds").mkdir()
    (tmp_path / "empty" / "ds" / "a.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no folder or prefix"):
        scan_store(str(tmp_path / "empty"), datasets=["nope"])
    with pytest.raises(ValueError, match="invalid dataset name"):
        scan_store(str(tmp_path / "empty"), datasets=["../etc"])


def test_unreachable_endpoint_fails_fast_without_credentials(tmp_path):
    options = {"endpoint_url": "http://127.0.0.1:9", "key": "AKIDEXAMPLE", "secret": "s3cr3t-never-shown",
               "config_kwargs": {"retries": {"max_attempts": 1}}}
    with pytest.raises(ConnectionError) as info:
        scan_store("s3://lake", storage_options=options)
    assert "s3://lake" in str(info.value) and "s3cr3t" not in str(info.value)


def test_object_version_and_listing(tmp_path):
    assert object_version({"ETag": '"abc"', "mtime": 1.0}) == "etag:abc"
    assert object_version({"mtime": 12.5}) == "mtime:12.5"
    assert object_version({}) == ""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.PNG").write_bytes(b"1")
    (tmp_path / "a" / ".y.png").write_bytes(b"1")
    assert [obj.uri.rsplit("/", 1)[-1] for obj in list_images(str(tmp_path / "a"))] == ["x.PNG"]
    with pytest.raises(FileNotFoundError, match="no images"):
        (tmp_path / "b").mkdir()
        list_images(str(tmp_path / "b"))


def test_the_local_listing_gives_what_fsspec_find_gives(tmp_path):
    """The local fast path builds the same objects, change tokens included (a re-scan compares
    them with the previous manifest's), in the same order, as the listing of any fsspec store."""
    from fsspec.implementations.local import LocalFileSystem

    from gan_augment.scan.listing import _from_listing, _walk_local

    root = tmp_path / "ds"
    for relative in ("b.png", "a/z.jpg", "a/b/c.png", ".hidden/x.png", "notes.txt", "a b/é.png"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"x" * len(relative))
    (root / "empty").mkdir()
    fs, base = LocalFileSystem(), f"file://{root}/"
    fast = _walk_local(str(root), base)
    assert fast == _from_listing(fs.find(str(root), detail=True), str(root), base)
    assert [relative for relative, _ in fast] == [".hidden/x.png", "a b/é.png", "a/b/c.png", "a/z.jpg", "b.png",
                                                  "notes.txt"]
    assert all(obj.version.startswith("mtime:") and obj.size > 0 for _, obj in fast)


def test_hashing_on_request_and_scan_limits(tmp_path):
    folder = tmp_path / "store" / "ds"
    folder.mkdir(parents=True)
    big = encode(noise_image((120, 100), seed=1), "PNG")  # ~36 KB
    (folder / "big.png").write_bytes(big)
    (folder / "small.png").write_bytes(INPUTS["ok-gray.png"][0])
    plain = {r["uri"].rsplit("/", 1)[-1]: r for r in
             scan_store(str(tmp_path / "store"), head_bytes=1024).datasets["ds"].manifest.to_pylist()}
    assert plain["big.png"]["content_hash"] is None and plain["small.png"]["content_hash"].startswith("md5:")
    assert plain["big.png"]["etag_or_hash"].startswith("mtime:")
    hashed = {r["uri"].rsplit("/", 1)[-1]: r for r in scan_store(
        str(tmp_path / "store"), head_bytes=1024, hash_contents=True).datasets["ds"].manifest.to_pylist()}
    assert hashed["big.png"]["content_hash"].startswith("md5:")
    assert hashed["big.png"]["etag_or_hash"] == plain["big.png"]["etag_or_hash"]  # still the change token
    limited = {r["uri"].rsplit("/", 1)[-1]: r for r in scan_store(
        str(tmp_path / "store"), head_bytes=1024, max_bytes=10_000, max_pixels=100 * 100).datasets["ds"]
        .manifest.to_pylist()}
    assert (limited["big.png"]["status"], limited["big.png"]["width"]) == ("too_large", 120)
    assert limited["small.png"]["status"] == "ok"


def test_limits_change_means_verdicts_are_not_reused(tmp_path):
    folder = tmp_path / "store" / "ds"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(encode(noise_image((40, 40), seed=1), "PNG"))
    out = str(tmp_path / "out")
    assert scan_store(str(tmp_path / "store"), out=out).datasets["ds"].read_objects == 1
    strict = scan_store(str(tmp_path / "store"), out=out, max_pixels=1000).datasets["ds"]
    assert strict.read_objects == 1 and statuses(strict) == {f"file://{folder}/a.png": "too_large"}
    assert strict.unchanged == 1  # the object did not change; only the verdict did
