import dataclasses
import os

import pytest
import torch

import gan_augment.training.finish as finish_module
from gan_augment.config import TrainConfig
from gan_augment.gan.checkpoint import load_latest_checkpoint, load_model, read_model_card
from gan_augment.scan.cache import build_cache
from gan_augment.training.batches import BatchSampler, RealBatches
from gan_augment.training.refresh import stale_reason
from gan_augment.training.state import TrainingState
from gan_augment.training.step import TrainingStep
from gan_augment.training.trainer import Trainer, effective_model_config, train

CPU = torch.device("cpu")


def _checkpoint(model_dir):
    return load_latest_checkpoint(os.path.join(model_dir, "checkpoints"))


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_finish_moves_g_alone_and_leaves_d_as_a_run_without_it(image_folder, tmp_path, tiny_model_config):
    recipe = TrainConfig(steps=4, batch_size=8, sample_every=100, finish_steps=0)
    plain = train(image_folder, str(tmp_path / "plain"), tiny_model_config, recipe)
    finished = train(image_folder, str(tmp_path / "finished"), tiny_model_config,
                     dataclasses.replace(recipe, finish_steps=3))
    assert (plain.steps, finished.steps) == (4, 7)
    a, b = _checkpoint(plain.model_dir), _checkpoint(finished.model_dir)
    # D, its optimiser and so the exported features are those of the run without a finish
    assert _same(a["discriminator"], b["discriminator"])
    assert torch.equal(a["opt_d"]["state"][0]["exp_avg"], b["opt_d"]["state"][0]["exp_avg"])
    assert not _same(a["generator"], b["generator"])
    assert "finisher" in b and "finisher" not in a
    assert _same(load_model(plain.model_dir).discriminator.state_dict(),
                 load_model(finished.model_dir).discriminator.state_dict())
    assert b["history"]["step"][-1] == 7 and all(v == v for v in b["history"]["loss_g"])  # finite, logged
    # 4 recipe steps of 2 x 8 real images, then 3 finishing steps of the batch's 8 (fewer than 64)
    assert read_model_card(finished.model_dir)["epochs"] == (4 * 16 + 3 * 8) / 24


def test_the_finish_resumes_exactly(image_folder, tmp_path, tiny_model_config):
    config = TrainConfig(steps=3, finish_steps=5, batch_size=8, log_every=1, checkpoint_every=3, sample_every=100)
    straight = train(image_folder, str(tmp_path / "a"), tiny_model_config, config)

    def crash_after_step_7(row):
        if row["step"] == 7:
            raise KeyboardInterrupt  # the step-6 checkpoint, in the finish, is all that survives

    with pytest.raises(KeyboardInterrupt):
        train(image_folder, str(tmp_path / "b"), tiny_model_config, config, callback=crash_after_step_7)
    resumed = train(image_folder, str(tmp_path / "b"), tiny_model_config, config)
    assert resumed.resumed_from == 6 and resumed.steps == 8
    first, second = _checkpoint(straight.model_dir), _checkpoint(resumed.model_dir)
    for key in ("generator", "discriminator", "ema", "finisher"):
        assert _same(first[key], second[key]), key
    assert first["history"]["loss_g"] == second["history"]["loss_g"]


def test_the_finish_starts_from_g_and_a_copy_of_d(image_folder, tiny_model_config):
    config = TrainConfig(batch_size=8, finish_steps=2)
    model_config = effective_model_config(tiny_model_config, config)
    cache = build_cache(image_folder, model_config.image_size, model_config.channels)
    state = TrainingState.initial(model_config, config, CPU)
    batches = RealBatches(cache.images, BatchSampler(len(cache), config.batch_size, config.seed), CPU)
    step = TrainingStep(state, batches, config, device=CPU, finish_from=0)
    before = {k: v.clone() for k, v in state.generator.state_dict().items()}
    with torch.no_grad():
        for p in state.ema.parameters():
            p.fill_(7.0)  # an EMA of the recipe's G, far from G
    trunk = [p.clone() for p in state.discriminator.parameters()]
    for group in state.opt_finisher.param_groups:
        group["lr"] = 0.0  # the finisher keeps the weights it starts from
    metrics = step()
    copied = state.discriminator.critic_weights()  # its norms' running statistics move in the step
    assert all(torch.equal(p, copied[name]) for name, p in state.finisher.named_parameters())
    after = state.generator.state_dict()
    for name, ema in state.ema.named_parameters():  # reset to G, then the warm-up's first move (decay 0.1)
        torch.testing.assert_close(ema, 0.1 * before[name] + 0.9 * after[name])
    assert all(torch.equal(a, b) for a, b in zip(trunk, state.discriminator.parameters()))
    assert state.step == 1 and bool(torch.isfinite(metrics).all())


def test_the_finish_is_refused_beside_a_critic_or_labels(image_folder, tiny_model_config):
    cache = build_cache(image_folder, tiny_model_config.image_size, tiny_model_config.channels)
    config = TrainConfig(steps=2, batch_size=8, finish_steps=2)
    with pytest.raises(ValueError, match="finish_steps"):
        Trainer(cache, "memory://finish/a", dataclasses.replace(tiny_model_config, critic=True), config,
                dataset="blobs")
    with pytest.raises(ValueError, match="finish_steps"):
        Trainer(cache, "memory://finish/b", tiny_model_config, config, dataset="blobs",
                labels=torch.zeros(len(cache), dtype=torch.long), classes=["a"])
    with pytest.raises(ValueError, match="finish_steps"):
        TrainConfig(finish_steps=-1)
    Trainer(cache, "memory://finish/c", dataclasses.replace(tiny_model_config, critic=True),
            dataclasses.replace(config, finish_steps=None), dataset="blobs")  # automatic: no finish


def test_the_automatic_finish_is_twice_the_recipes_steps_on_greyscale_where_contrast_shapes_d(tiny_model_config):
    automatic = TrainConfig()
    assert automatic.finish_steps is None and automatic.finish_steps_for(1000, tiny_model_config) == 2000
    assert TrainConfig(finish_steps=7).finish_steps_for(1000, tiny_model_config) == 7
    assert TrainConfig(finish_steps=0).finish_steps_for(1000, tiny_model_config) == 0
    assert TrainConfig.seed_dcgan().finish_steps_for(1000, tiny_model_config) == 0  # a plain GAN already
    for changed in ({"critic": True}, {"num_classes": 3}, {"channels": 3}):  # colour: not measured
        assert automatic.finish_steps_for(1000, dataclasses.replace(tiny_model_config, **changed)) == 0


def test_a_default_run_finishes_as_the_explicit_number_would_and_its_card_says_how_many_steps(
        image_folder, tmp_path, tiny_model_config):
    config = TrainConfig(steps=2, batch_size=8, sample_every=100)
    result = train(image_folder, str(tmp_path / "out"), tiny_model_config, config)
    card = read_model_card(result.model_dir)
    assert result.steps == 6 and card["finish_steps"] == 4 and card["train_config"]["finish_steps"] is None
    explicit = train(image_folder, str(tmp_path / "explicit"), tiny_model_config,
                     dataclasses.replace(config, finish_steps=4))
    assert explicit.model_id != result.model_id
    automatic, four = _checkpoint(result.model_dir), _checkpoint(explicit.model_dir)
    for key in ("generator", "discriminator", "ema", "finisher"):
        assert _same(automatic[key], four[key]), key


def test_a_model_trained_before_the_automatic_finish_is_retrained_where_it_now_finishes(tiny_model_config):
    config = TrainConfig()
    recorded = {"data_fingerprint": "f", "model_config": effective_model_config(tiny_model_config, config).to_dict(),
                "train_config": config.to_dict()}
    assert stale_reason(recorded, "f", tiny_model_config, config) is None
    before = {k: v for k, v in config.to_dict().items() if k != "finish_steps"}  # 0 was the default, left out
    assert stale_reason({**recorded, "train_config": before}, "f", tiny_model_config, config) \
        == "the training config changed"
    colour = dataclasses.replace(tiny_model_config, channels=3)  # where the automatic finish is 0 too
    old_colour = {**recorded, "model_config": effective_model_config(colour, config).to_dict(), "train_config": before}
    assert stale_reason(old_colour, "f", colour, config) is None
    assert stale_reason(old_colour, "f", colour, dataclasses.replace(config, finish_steps=5)) \
        == "the training config changed"


def test_a_non_finite_loss_in_the_finish_rolls_back_and_lowers_the_finishers_lr(image_folder, tmp_path,
                                                                                  tiny_model_config, nan_loss_at):
    nan_loss_at(finish_module, 3)  # the third finishing step
    config = TrainConfig(steps=2, finish_steps=4, batch_size=8, log_every=2, checkpoint_every=2, sample_every=100)
    result = train(image_folder, str(tmp_path / "out"), tiny_model_config, config)
    state = _checkpoint(result.model_dir)
    assert result.steps == 6 and state["nan_rollbacks"] == 1
    assert state["opt_finisher"]["param_groups"][0]["lr"] == pytest.approx(config.lr * config.nan_lr_factor)
    assert all(torch.isfinite(v).all() for v in state["finisher"].values() if v.is_floating_point())
