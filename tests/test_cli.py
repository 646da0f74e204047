import json
import subprocess
import sys

import pytest

from gan_augment.cli import build_parser, main


def _subcommands():
    parser = build_parser()
    return list(parser._subparsers._group_actions[0].choices)  # noqa: SLF001


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: gan-augment " + command in capsys.readouterr().out


def test_every_config_field_is_a_flag():
    from dataclasses import fields

    from gan_augment.config import ModelConfig, TrainConfig

    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()  # noqa: SLF001
    for field in [*fields(ModelConfig), *fields(TrainConfig)]:
        assert "--" + field.name.replace("_", "-") in text


def test_train_and_sample_on_a_png_folder(image_folder, tmp_path, capsys):
    out = str(tmp_path / "out")
    code = main(["train", image_folder, "--out", out, "--image-size", "16", "--channels", "1", "--ngf", "8",
                 "--ndf", "8", "--latent-dim", "16", "--steps", "3", "--batch-size", "8", "--flip",
                 "--diffaugment", "translation"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"{out}/blobs/model/model.pt" in printed
    card = json.loads((tmp_path / "out" / "blobs" / "model" / "model.json").read_text())
    assert card["train_config"]["flip"] is True and card["train_config"]["diffaugment"] == "translation"
    assert card["model_config"]["ngf"] == 8
    grid = tmp_path / "grid.png"
    assert main(["sample", f"{out}/blobs/model", "--n", "9", "--out", str(grid)]) == 0
    assert grid.read_bytes().startswith(b"\x89PNG")


def test_the_seed_dcgan_recipe_is_one_flag_and_other_flags_still_apply(image_folder, tmp_path):
    out = str(tmp_path / "out")
    assert main(["train", image_folder, "--out", out, "--image-size", "16", "--channels", "1", "--recipe",
                 "seed-dcgan", "--ngf", "8", "--ndf", "8", "--steps", "2", "--batch-size", "8"]) == 0
    card = json.loads((tmp_path / "out" / "blobs" / "model" / "model.json").read_text())
    assert card["train_config"]["contrastive_weight"] == 0 and card["train_config"]["d_lr"] == 2e-4
    assert card["model_config"]["d_dropout"] == 0.25 and card["model_config"]["projection_dim"] == 0
    assert card["model_config"]["ngf"] == 8 and card["train_config"]["batch_size"] == 8


def test_failures_exit_non_zero_with_one_line(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing"), "--out", str(tmp_path), "--image-size", "48"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "image_size=48" in err
    assert main(["sample", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.png")]) == 1
    assert "no trained model" in capsys.readouterr().err


def test_console_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "gan_augment.cli", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "train" in result.stdout
