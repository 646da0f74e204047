"""A seeded corpus of broken images (every supported format and many modes, mutated in every
way `testing.fuzz` knows): nothing crashes, every object is classified with a reason, and no
object stays `ok` in the manifest once a stage has found that it does not decode."""

from __future__ import annotations

import hashlib
import os

import pytest

from gan_augment.io.tables import MANIFEST_STATUSES, read_manifest
from gan_augment.scan.cache import build_cache
from gan_augment.scan.store import scan_store
from gan_augment.testing.fuzz import BASES, MUTATIONS, decodes, fuzz_corpus, spinning_jpeg

# Pillow warns about the damage it works around; the verdicts are what is checked here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# Every base image under every mutation twice: 29 bases x 6 mutations x 2.
CORPUS = list(fuzz_corpus(len(BASES) * len(MUTATIONS) * 2, seed=7))
DATA = {case.name: case.data for case in CORPUS}


DECODABLE = {name for name, data in DATA.items() if decodes(data)}


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("fuzz") / "store"
    os.makedirs(root / "fuzz")
    for name, data in DATA.items():
        (root / "fuzz" / name).write_bytes(data)
    return str(root)


def rows_by_name(table) -> dict[str, dict]:
    return {row["uri"].rsplit("/", 1)[-1]: row for row in table.to_pylist()}


def test_corpus_covers_every_format_mode_and_mutation():
    assert {(case.format, case.mode) for case in CORPUS} == {(fmt, mode) for fmt, mode, _ in BASES}
    assert {case.mutation for case in CORPUS} == set(MUTATIONS)
    assert 0 < len(DECODABLE) < len(CORPUS)  # the corpus holds both kinds


def test_header_scan_then_training_leaves_no_undecodable_object_ok(fuzz_store, tmp_path):
    out = str(tmp_path / "out")
    scan = scan_store(fuzz_store, out=out).datasets["fuzz"]
    rows = rows_by_name(scan.manifest)
    assert set(rows) == set(DATA)  # every object classified
    assert all(row["status"] in MANIFEST_STATUSES for row in rows.values())
    assert all(row["error"] for row in rows.values() if row["status"] != "ok")  # every rejection says why
    header_ok = {name for name, row in rows.items() if row["status"] == "ok"}
    assert header_ok - DECODABLE, "the header probe alone lets undecodable objects through"
    assert scan.slowest is not None
    print(f"\nslowest object of the fuzz corpus (header probe): {scan.slowest[0]} {scan.slowest[1]:.3f} s")

    cache = build_cache(f"{fuzz_store}/fuzz", 16, 3, manifest=scan.manifest_url)
    after = rows_by_name(read_manifest(scan.manifest_url))
    assert {name for name, row in after.items() if row["status"] == "ok"} <= DECODABLE
    written_back = {name for name, row in after.items() if row["found_in"] == "training"}
    assert written_back == header_ok - DECODABLE
    for name in written_back:
        row = after[name]
        assert row["checked"] == "decode" and row["status"] == "corrupt" and row["error"]
        assert cache.skipped[row["uri"]] == f"corrupt: {row['error']}"

    # The next scans keep what training found: unchanged objects are not probed back into ok.
    for rescan in (False, True):
        again = rows_by_name(scan_store(fuzz_store, out=out, rescan=rescan).datasets["fuzz"].manifest)
        assert {n: r["status"] for n, r in again.items()} == {n: r["status"] for n, r in after.items()}
        assert {n for n, r in again.items() if r["found_in"] == "training"} == written_back


def test_verify_scan_calls_ok_exactly_what_decodes(fuzz_store, tmp_path):
    scan = scan_store(fuzz_store, out=str(tmp_path / "out"), verify=True).datasets["fuzz"]
    rows = rows_by_name(scan.manifest)
    ok = {name for name, row in rows.items() if row["status"] in ("ok", "duplicate")}
    assert ok == DECODABLE
    assert {row["checked"] for row in rows.values()} == {"decode"}
    print(f"\nslowest object of the fuzz corpus (full decode): {scan.slowest[0]} {scan.slowest[1]:.3f} s")


def test_a_decoder_that_spins_costs_the_time_limit_not_the_night(tmp_path):
    store = tmp_path / "store"
    os.makedirs(store / "spin")
    (store / "spin" / "spin.jpg").write_bytes(spinning_jpeg(2048, 4000))  # minutes of libjpeg work
    (store / "spin" / "fine.png").write_bytes(DATA[CORPUS[0].name])
    out = str(tmp_path / "out")
    header = rows_by_name(scan_store(str(store), out=out, max_seconds=1).datasets["spin"].manifest)
    assert header["spin.jpg"]["status"] == "ok"  # its header is sound

    cache = build_cache(str(store / "spin"), 16, 1, manifest=f"{out}/spin/manifest.parquet", max_seconds=1)
    assert cache.skipped[f"file://{store}/spin/spin.jpg"].startswith("too_slow: decoding took longer than")
    row = rows_by_name(read_manifest(f"{out}/spin/manifest.parquet"))["spin.jpg"]
    assert (row["status"], row["found_in"]) == ("too_slow", "training")

    verified = rows_by_name(scan_store(str(store), out=str(tmp_path / "v"), verify=True, max_seconds=1)
                            .datasets["spin"].manifest)
    assert verified["spin.jpg"]["status"] == "too_slow" and verified["fine.png"]["status"] == "ok"
    # The worker that read it was killed; the scan hashed its bytes itself.
    spun = (store / "spin" / "spin.jpg").read_bytes()
    assert verified["spin.jpg"]["content_hash"] == "md5:" + hashlib.md5(spun).hexdigest()
