"""The report: one self-contained page per dataset and an index, written by `gan-augment
report`; bad and hostile images are listed with their reason, never fatal; it renders in a real
browser (headless Chromium) without errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest

from conftest import TINY_MODEL, TINY_TRAIN, bad_inputs, write_png_folder
from gan_augment.cli import main
from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.export.features import extract_features
from gan_augment.export.tables import export_features
from gan_augment.scan.store import scan_store
from gan_augment.training.trainer import train

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> dict[str, str]:
    """A store of two datasets (one with every kind of bad object), scanned, one trained and
    exported, a hostile file swapped in after the export, then `gan-augment report OUT`."""
    root = tmp_path_factory.mktemp("report")
    store, out = str(root / "store"), str(root / "out")
    blobs = os.path.join(store, "blobs")
    write_png_folder(blobs, 24)
    os.makedirs(os.path.join(store, "mixed"))
    for name, (data, _) in bad_inputs().items():
        with open(os.path.join(store, "mixed", name), "wb") as f:
            f.write(data)
    scan_store(store, out=out, verify=True, max_seconds=None)
    result = train(blobs, out, ModelConfig(**TINY_MODEL), TrainConfig(**TINY_TRAIN, device="cpu"), resume=False)
    export_features(extract_features(result.model_dir, blobs), os.path.join(out, "blobs", "features"))
    # After the export, an image turns into a decompression bomb header: its thumbnail must fail softly.
    hostile = sorted(os.listdir(blobs))[0]
    shutil.copy(os.path.join(store, "mixed", "bomb.png"), os.path.join(blobs, hostile))
    assert main(["report", out]) == 0
    return {"out": out, "hostile": hostile}


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_each_dataset_gets_a_self_contained_report_and_the_index_links_them(reported):
    out = reported["out"]
    index = read(os.path.join(out, "index.html"))
    assert 'href="blobs/report.html"' in index and 'href="mixed/report.html"' in index
    page = read(os.path.join(out, "blobs", "report.html"))
    for section in ("Scan", "Training", "Samples", "Loss curve", "Near-duplicates", "Most unusual images",
                    "Model card", "train_config"):
        assert f">{section}<" in page, section
    assert page.count('src="data:image/png;base64,') >= 2 + 23  # grid, loss curve, 23 of 24 outliers (1 hostile)
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)  # nothing to fetch from a network
    assert pq.read_table(os.path.join(out, "blobs", "near_duplicates.parquet")).column_names[:2] == \
        ["uri", "near_duplicate_of"]


def test_bad_and_hostile_images_are_listed_with_their_reason(reported):
    out = reported["out"]
    mixed = read(os.path.join(out, "mixed", "report.html"))
    for name, (_, status) in bad_inputs().items():
        if status not in ("ok", "duplicate"):
            assert name.replace(" ", "%20") in mixed or name in mixed, name
    assert "too_large" in mixed and "decompression" in mixed or "pixels exceed" in mixed
    assert "No model yet" in mixed and "export the features first" in mixed
    blobs = read(os.path.join(out, "blobs", "report.html"))
    assert f"{reported['hostile']}: " in blobs and "not shown" in blobs and "too_large" in blobs


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium): "
                                             "the report's browser check needs it")
def test_the_report_renders_in_headless_chromium_without_errors(reported, tmp_path):
    page = os.path.join(reported["out"], "blobs", "report.html")
    screenshot = tmp_path / "report.png"
    common = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    shot = subprocess.run([*common, "--enable-logging=stderr", "--v=0", f"--screenshot={screenshot}",
                           "--window-size=1280,2400", f"file://{page}"], capture_output=True, text=True, timeout=180)
    print(f"report screenshot: {screenshot}")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 10_000  # a rendered page, not a blank one
    console = [line for line in shot.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    dom = subprocess.run([*common, "--dump-dom", f"file://{page}"], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0 and "Most unusual images" in dom.stdout and "<figure>" in dom.stdout
