"""`gan-augment` in scripts: --version, --json (one document on stdout, logs on stderr), the
documented exit codes (0 ok, 1 failure, 2 usage, 3 data rejected by `scan --fail-on`, 130
interrupted) and -v on either side of the sub-command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import bad_inputs

import gan_augment
from gan_augment.cli import build_parser, commands, main


@pytest.fixture
def zoo(tmp_path) -> str:
    """A store with one dataset, `zoo`, of every kind of object (4 of them corrupt)."""
    folder = tmp_path / "store" / "zoo"
    folder.mkdir(parents=True)
    for name, (data, _) in bad_inputs().items():
        (folder / name).write_bytes(data)
    return str(tmp_path / "store")


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"gan-augment {gan_augment.__version__}"


def test_verbose_before_or_after_the_subcommand():
    parser = build_parser()
    assert parser.parse_args(["-v", "scan", "store"]).verbose is True
    assert parser.parse_args(["scan", "store", "-v"]).verbose is True
    assert parser.parse_args(["scan", "-v", "store"]).verbose is True
    assert parser.parse_args(["scan", "store"]).verbose is False


def test_usage_errors_exit_2(capsys):
    for argv in (["scan"], ["scan", "store", "--fail-on", "corrupt,bogus"], ["nothing"], ["scan", "s", "--nope"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "choose from corrupt,unsupported" in capsys.readouterr().err


def test_scan_json_is_one_document_and_logs_go_to_stderr(zoo, tmp_path, capsys):
    assert main(["scan", zoo, "--out", str(tmp_path / "out"), "--json", "-v"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)  # the whole of stdout is one JSON document
    zoo_scan = document["datasets"]["zoo"]
    assert zoo_scan["objects"] == 21 and zoo_scan["statuses"]["ok"] == 13 and zoo_scan["statuses"]["corrupt"] == 4
    assert zoo_scan["manifest"].endswith("zoo/manifest.parquet") and document["rejected"] == {}


def test_fail_on_rejects_bad_data_with_exit_3(zoo, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["scan", zoo, "--out", out, "--fail-on", "corrupt,too_large", "--json"]) == 3
    captured = capsys.readouterr()
    assert json.loads(captured.out)["rejected"] == {"zoo": {"corrupt": 4, "too_large": 1}}
    assert "rejected (--fail-on corrupt,too_large): zoo: corrupt 4, too_large 1" in captured.err
    assert (tmp_path / "out" / "zoo" / "manifest.parquet").exists()  # written all the same
    assert main(["scan", zoo, "--out", out, "--fail-on", "unreadable"]) == 0  # none of those


def test_interrupted_exits_130(zoo, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "run_scan", interrupted)
    assert main(["scan", zoo]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_train_sample_and_features_json(image_folder, trained_model_dir, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["train", image_folder, "--out", out, "--image-size", "16", "--channels", "1", "--ngf", "8",
                 "--ndf", "8", "--latent-dim", "16", "--steps", "2", "--batch-size", "8", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    # The recipe's 2 steps, then the automatic finish's 2 x 2 (TrainConfig.finish_steps_for).
    assert trained["steps"] == 2 + 4 and trained["files"]["model"] == f"{out}/blobs/model/model.pt"
    assert main(["sample", trained_model_dir, "--n", "5", "--out", str(tmp_path / "s"), "--json"]) == 0
    sampled = json.loads(capsys.readouterr().out)
    assert sampled["rows"] == 5 and sampled["files"] == [str(tmp_path / "s" / "part-00000.parquet")]
    assert main(["features", trained_model_dir, image_folder, "--out", str(tmp_path / "f.parquet"), "--json"]) == 0
    features = json.loads(capsys.readouterr().out)
    assert features["rows"] == 24 and features["feature_dim"] > 0 and features["skipped"] == {}


def test_module_entry_point_speaks_the_same_codes(tmp_path):
    run = subprocess.run([sys.executable, "-m", "gan_augment.cli", "scan", str(tmp_path / "missing"), "--json"],
                         capture_output=True, text=True)
    assert run.returncode == 1 and run.stdout == "" and "gan-augment scan: error:" in run.stderr
