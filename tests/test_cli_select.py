"""`gan-augment select`: the labelling loop without glue code (scan, features, select, label,
evaluate --labels), and one clear error line for bad input."""

from __future__ import annotations

import csv
import logging
import os
import shutil

import pytest

from conftest import write_png_folder

from gan_augment.cli import SELECTION_METHODS, main
from gan_augment.curate import METHODS


def test_the_parser_offers_every_method_auto_first():
    from gan_augment.curate.selection import AUTO

    assert SELECTION_METHODS == (AUTO, *METHODS)


def fill_labels(path: str, leave_empty: int) -> dict[str, str]:
    """Label the picks by the parity of the image number, except the last `leave_empty`."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows[:len(rows) - leave_empty]:
        row["label"] = "even" if int(os.path.basename(row["uri"])[4:7]) % 2 == 0 else "odd"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {row["uri"]: row["label"] for row in rows}


def test_select_label_evaluate_loop(trained_model_dir, tmp_path, capsys, caplog):
    store, out = tmp_path / "store", str(tmp_path / "out")
    write_png_folder(str(store / "ds"), 25)
    shutil.copy(store / "ds" / "img-000.png", store / "ds" / "copy.png")  # the scan marks it duplicate
    assert main(["scan", str(store), "--out", out]) == 0
    features = os.path.join(out, "ds", "features")
    assert main(["features", trained_model_dir, str(store / "ds"), "--out", features,
                 "--manifest", os.path.join(out, "ds", "manifest.parquet")]) == 0
    # The store changes after the export: the next scan finds one image broken; select skips it.
    (store / "ds" / "img-024.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert main(["scan", str(store), "--out", out]) == 0
    picks = str(tmp_path / "picks.csv")
    capsys.readouterr()
    assert main(["select", features, "--budget", "12", "--out", picks, "--show", "3"]) == 0
    printed = capsys.readouterr().out
    assert "most typical of cluster" in printed and "... 9 more in" in printed
    assert "picked 12 of 24 candidates by typiclust (skipped: corrupt 1)" in printed
    assert f"gan-augment select {features} --budget N --labelled {picks} --out NEXT.csv" in printed
    labels = fill_labels(picks, leave_empty=2)
    assert len(labels) == 12 and not any(uri.endswith(("copy.png", "img-024.png")) for uri in labels)

    caplog.set_level(logging.INFO, logger="gan_augment")
    assert main(["evaluate", trained_model_dir, str(store / "ds"), "--labels", picks, "--draws", "2",
                 "--no-card"]) == 0
    table = capsys.readouterr().out
    assert "few-label probe" in table and "1 / class" in table and "trained D" in table
    assert "10 labelled images; 2 rows with an empty label left out" in caplog.text

    # The next round: the first picks are never offered again.
    again = str(tmp_path / "round-2.csv")
    assert main(["select", features, "--budget", "5", "--out", again, "--labelled", picks,
                 "--method", "kcenter"]) == 0
    assert "picked 5 of 12 candidates by kcenter (skipped: corrupt 1, labelled 12)" in capsys.readouterr().out
    with open(again, newline="") as f:
        assert not {row["uri"] for row in csv.DictReader(f)} & set(labels)
    # By default the next round asks the probe fitted on the labels so far where it is least sure.
    third = str(tmp_path / "round-3.csv")
    assert main(["select", features, "--budget", "4", "--out", third, "--labelled", picks]) == 0
    printed = capsys.readouterr().out
    assert "picked 4 of 12 candidates by margin (skipped: corrupt 1, labelled 12)" in printed
    assert "where the probe is unsure" in printed
    # Each round's picks file, once filled in, joins the next: no merging by hand.
    labels.update(fill_labels(again, leave_empty=0))
    fourth = str(tmp_path / "round-4.csv")
    assert main(["select", features, "--budget", "3", "--out", fourth, "--labelled", picks, "--labelled", again]) == 0
    printed = capsys.readouterr().out
    assert "picked 3 of 7 candidates by margin (skipped: corrupt 1, labelled 17)" in printed
    assert f"--labelled {picks} --labelled {again} --labelled {fourth} --out NEXT.csv" in printed
    with open(fourth, newline="") as f:
        assert not {row["uri"] for row in csv.DictReader(f)} & set(labels)
    assert main(["evaluate", trained_model_dir, str(store / "ds"), "--labels", picks, "--labels", again, "--draws",
                 "1", "--no-card"]) == 0
    assert "15 labelled images; 2 rows with an empty label left out" in caplog.text
    # A labels file of other images is named, or refused when none of its images is here.
    with open(picks, "a") as f:
        f.write("file:///elsewhere/img-000.png,odd,,,,\n")
    with pytest.warns(UserWarning, match="1 of the 13 images listed as labelled are not in"):
        assert main(["select", features, "--budget", "2", "--out", third, "--labelled", picks]) == 0
    assert "1 images the --labelled files list are not in the features" in capsys.readouterr().out
    foreign = str(tmp_path / "foreign.csv")
    with open(foreign, "w") as f:
        f.write("uri,label\nfile:///elsewhere/img-000.png,odd\n")
    assert main(["select", features, "--budget", "2", "--out", third, "--labelled", foreign]) == 1
    assert "none of the 1 images listed as labelled is in" in capsys.readouterr().err


def test_bad_input_exits_1_with_one_line(tmp_path, capsys):
    assert main(["select", str(tmp_path / "none"), "--budget", "5", "--out", str(tmp_path / "p.csv")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gan-augment select: error:")
    assert main(["select", str(tmp_path / "none"), "--budget", "0", "--out", str(tmp_path / "p.csv")]) == 1
    assert "budget=0: ask for at least one image" in capsys.readouterr().err
