import dataclasses
import json
import os

import pytest
import torch

import gan_augment.training.step as step_module
from gan_augment.config import TrainConfig
from gan_augment.gan import devices
from gan_augment.gan.checkpoint import list_checkpoints, load_latest_checkpoint, load_model, read_model_card
from gan_augment.training.trainer import TrainingDivergedError, auto_epochs, resolve_steps, train


def _state_of(model_dir):
    return load_latest_checkpoint(os.path.join(model_dir, "checkpoints"))


def _assert_same_tensors(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_same_tensors(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tensors(x, y, f"{path}[{i}]")


def test_training_writes_the_storage_layout(image_folder, tmp_path, tiny_model_config, tiny_train_config):
    rows = []
    result = train(image_folder, str(tmp_path / "out"), tiny_model_config, tiny_train_config, callback=rows.append)
    model_dir = tmp_path / "out" / "blobs" / "model"
    assert result.model_dir == str(model_dir) and result.dataset == "blobs" and result.steps == 6
    for name in ("model.pt", "model.json", "samples/final.png", "samples/loss_curve.png", "samples/step-00000003.png"):
        assert (model_dir / name).is_file(), name
    assert [step for step, _ in list_checkpoints(str(model_dir / "checkpoints"))] == [6, 3, 0]
    assert [row["step"] for row in rows] == [2, 3, 4, 6]
    assert set(rows[0]) == {"step", "loss_d", "loss_g", "d_real", "d_fake", "images_per_second"}
    card = json.loads((model_dir / "model.json").read_text())
    assert card["model_id"] == result.model_id and card["num_images"] == 24 and card["steps"] == 6
    assert card["model_config"] == tiny_model_config.to_dict()
    assert card["fake_contrastive_weight"] == 1.0  # what the automatic weight was for these greyscale images
    assert len(card["data_fingerprint"]) == 64
    model = load_model(str(model_dir))
    assert model.model_id == result.model_id and model.model_config == tiny_model_config
    assert not model.generator.training


@pytest.mark.parametrize("critic", [False, True])
def test_resume_is_exact(image_folder, tmp_path, tiny_model_config, critic):
    tiny_model_config = dataclasses.replace(tiny_model_config, critic=critic)
    config = TrainConfig(steps=8, batch_size=8, log_every=1, checkpoint_every=4, sample_every=100,
                         diffaugment="color,translation,cutout", flip=True, finish_steps=0)  # test_finish resumes one
    straight = train(image_folder, str(tmp_path / "a"), tiny_model_config, config)

    def crash_after_step_5(row):
        if row["step"] == 5:
            raise KeyboardInterrupt  # a killed worker: the step-4 checkpoint is all that survives

    with pytest.raises(KeyboardInterrupt):
        train(image_folder, str(tmp_path / "b"), tiny_model_config, config, callback=crash_after_step_5)
    resumed = train(image_folder, str(tmp_path / "b"), tiny_model_config, config)
    assert resumed.resumed_from == 4 and resumed.steps == 8
    first, second = _state_of(straight.model_dir), _state_of(resumed.model_dir)
    for key in ("generator", "discriminator", "ema", "opt_g", "opt_d", "rng"):
        _assert_same_tensors(first[key], second[key], key)
    assert first["history"]["step"] == second["history"]["step"] == list(range(1, 9))
    for key in ("loss_d", "loss_g", "d_real", "d_fake"):
        assert first["history"][key] == second["history"][key], key


def test_incompatible_checkpoints_are_not_resumed(image_folder, tmp_path, tiny_model_config, tiny_train_config):
    out = str(tmp_path / "out")
    train(image_folder, out, tiny_model_config, tiny_train_config)
    wider = dataclasses.replace(tiny_model_config, ndf=12)
    result = train(image_folder, out, wider, tiny_train_config)
    assert result.resumed_from is None
    assert load_model(result.model_dir).model_config.ndf == 12


def test_non_finite_loss_rolls_back_and_lowers_lr(image_folder, tmp_path, tiny_model_config, nan_loss_at):
    nan_loss_at(step_module, 5)
    config = TrainConfig(steps=8, batch_size=8, log_every=2, checkpoint_every=4, sample_every=100, finish_steps=0)
    result = train(image_folder, str(tmp_path / "out"), tiny_model_config, config)
    assert result.steps == 8
    state = _state_of(result.model_dir)
    assert state["nan_rollbacks"] == 1
    assert state["opt_d"]["param_groups"][0]["lr"] == pytest.approx(config.d_lr * config.nan_lr_factor)
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(config.lr * config.nan_lr_factor)
    assert all(torch.isfinite(v).all() for v in state["generator"].values() if v.is_floating_point())
    assert json.loads(open(os.path.join(result.model_dir, "model.json")).read())["nan_rollbacks"] == 1


def test_repeated_divergence_stops_and_keeps_the_last_good_state(image_folder, tmp_path, tiny_model_config,
                                                                  monkeypatch):
    real_loss = step_module.discriminator_loss
    monkeypatch.setattr(step_module, "discriminator_loss", lambda *a: real_loss(*a) * float("nan"))
    config = TrainConfig(steps=8, batch_size=8, log_every=2, checkpoint_every=4, max_nan_rollbacks=2)
    with pytest.raises(TrainingDivergedError, match="diverged"):
        train(image_folder, str(tmp_path / "out"), tiny_model_config, config)
    model_dir = tmp_path / "out" / "blobs" / "model"
    assert not (model_dir / "model.pt").exists()  # no garbage model
    state = _state_of(str(model_dir))
    assert state["step"] == 0
    assert all(torch.isfinite(v).all() for v in state["discriminator"].values() if v.is_floating_point())


@pytest.mark.parametrize("loss", ["hinge", "wgan-gp"])
def test_other_losses_train(image_folder, tmp_path, tiny_model_config, loss):
    config = TrainConfig(steps=2, batch_size=8, loss=loss, d_steps=2, unrolled_steps=1, concat_real_fake=True,
                         contrastive_weight=0.5, log_every=1)
    result = train(image_folder, str(tmp_path / "out"), tiny_model_config, config)
    assert result.steps == 2 + 4  # and the automatic finish's 2 x 2, after these losses too
    assert all(torch.isfinite(torch.tensor(value)) for value in result.metrics.values())
    if loss == "wgan-gp":  # BatchNorm is swapped for a norm valid under the gradient penalty
        assert load_model(result.model_dir).model_config.d_norm == "layer"


def test_time_budget_stops_cleanly(image_folder, tmp_path, tiny_model_config):
    config = TrainConfig(steps=10_000, batch_size=8, max_seconds=0.5, log_every=5)
    result = train(image_folder, str(tmp_path / "out"), tiny_model_config, config)
    assert 0 < result.steps < 10_000
    assert os.path.isfile(os.path.join(result.model_dir, "model.pt"))


def test_step_budget_resolution():
    assert resolve_steps(TrainConfig(steps=7), 1000) == 7
    assert resolve_steps(TrainConfig(epochs=2, batch_size=100, d_steps=1), 1000) == 20
    assert resolve_steps(TrainConfig(epochs=2, batch_size=100, d_steps=2), 1000) == 10  # G steps
    assert resolve_steps(TrainConfig(batch_size=100, d_steps=1), 1000) == round(auto_epochs(1000) * 10)
    assert resolve_steps(TrainConfig(), 4000) == 1000  # the recipe on ~4,000 images: 2,000 D steps
    assert resolve_steps(TrainConfig(), 4000, image_size=16) == 1000  # small images: the same budget
    assert resolve_steps(TrainConfig(), 5000, image_size=64) == 250  # a quarter of the images seen at 64x64
    assert resolve_steps(TrainConfig(), 100_000, image_size=64) == 977  # at least 5 epochs


def test_device_selection():
    assert devices.select_device("cpu").type == "cpu"
    assert devices.select_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            devices.select_device("cuda")


@pytest.mark.parametrize("flags, units", [("fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile", "AMX"),
                                          ("fpu avx2 avx512f avx512_bf16", "AVX512-BF16"),
                                          ("fpu avx2 avx512f", None)])
def test_bf16_units_and_autocast_follow_the_cpu_flags(tmp_path, monkeypatch, flags, units):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(devices, "CPUINFO", str(cpuinfo))
    assert devices.cpu_bf16_units() == units
    assert devices.has_native_bf16(torch.device("cpu")) == (units is not None)


def test_a_cpu_without_cpuinfo_has_no_bf16_units(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "CPUINFO", str(tmp_path / "missing"))
    assert devices.cpu_bf16_units() is None
    assert not devices.has_native_bf16(torch.device("cpu"))


def test_empty_source_is_a_clear_error(tmp_path, tiny_model_config, tiny_train_config):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        train(str(tmp_path / "empty"), str(tmp_path / "out"), tiny_model_config, tiny_train_config)



def test_near_duplicates_are_left_out_on_request(image_folder, tmp_path, tiny_model_config, tiny_train_config, caplog):
    from gan_augment.curate.near_duplicates import NearDuplicates
    from gan_augment.layout import near_duplicates_url

    uri = f"file://{image_folder}/img-{{:03d}}.png".format
    # img-001 and img-002 copy img-000; img-004 copies img-099, which is not in the dataset.
    found = NearDuplicates([[uri(0), uri(1), uri(2)], [uri(99), uri(4)]], {uri(1): 3, uri(2): 5, uri(4): 2}, {},
                           hashed=24, unhashed=0, refined=False)
    skipping = dataclasses.replace(tiny_train_config, skip_near_duplicates=True)

    def card(out: str, config: TrainConfig, table: bool) -> dict:
        if table:
            found.write(near_duplicates_url(out, "blobs"))
        train(image_folder, out, tiny_model_config, config)
        return json.loads(open(os.path.join(out, "blobs", "model", "model.json")).read())

    with caplog.at_level("WARNING"):
        no_table = card(str(tmp_path / "a"), skipping, table=False)
    assert no_table["num_images"] == 24 and "no near-duplicate table" in caplog.text
    skipped = card(str(tmp_path / "b"), skipping, table=True)
    assert (skipped["num_images"], skipped["skipped_images"]) == (22, 2)
    assert skipped["train_config"]["skip_near_duplicates"] is True
    plain = card(str(tmp_path / "c"), tiny_train_config, table=True)
    assert plain["num_images"] == 24 and "skip_near_duplicates" not in plain["train_config"]


def test_a_critic_run_saves_its_ema_with_standing_statistics(image_folder, tmp_path, tiny_model_config):
    model_config = dataclasses.replace(tiny_model_config, critic=True)
    result = train(image_folder, str(tmp_path / "out"), model_config, TrainConfig(steps=2, batch_size=8,
                                                                                   sample_every=100))
    saved, last = load_model(result.model_dir).generator, _state_of(result.model_dir)["ema"]
    weights = {k for k, _ in saved.named_parameters()}
    assert all(torch.equal(v, last[k]) for k, v in saved.state_dict().items() if k in weights)
    means = [k for k in last if k.endswith("running_mean")]
    assert means and all(not torch.equal(saved.state_dict()[k], last[k]) for k in means)
    assert read_model_card(result.model_dir)["critic_head_weight"] == 1.0
