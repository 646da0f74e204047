import dataclasses

import pytest
import torch

from gan_augment.config import TrainConfig
from gan_augment.gan.checkpoint import list_checkpoints, save_checkpoint
from gan_augment.training.state import Checkpoints, TrainingDivergedError, TrainingState

CPU = torch.device("cpu")


def _checkpoints(tmp_path, model_config, train_config, fingerprint="data-v1"):
    return Checkpoints(str(tmp_path / "model"), model_config, train_config, fingerprint, dataset="blobs", device=CPU)


def _advance(state, steps=3):
    """Move `state` away from its start: different weights, optimiser moments, RNG and counters."""
    for _ in range(steps):
        z = torch.randn(4, state.generator.config.latent_dim, generator=state.rng)
        state.opt_g.zero_grad()
        state.discriminator(state.generator(z)).mean().backward()
        state.opt_g.step()
        state.step += 1
        state.history["step"].append(state.step)


def test_a_state_dict_restores_weights_optimisers_and_random_streams(tiny_model_config):
    config = TrainConfig(seed=0)
    state = TrainingState.initial(tiny_model_config, config, CPU)
    _advance(state)
    saved = state.state_dict()
    other = TrainingState.initial(tiny_model_config, dataclasses.replace(config, seed=1), CPU)
    other.load_state_dict(saved)
    assert other.step == 3 and other.history["step"] == [1, 2, 3]
    for a, b in zip(state.generator.state_dict().values(), other.generator.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(torch.randn(5, generator=state.rng), torch.randn(5, generator=other.rng))
    assert other.opt_g.state_dict()["state"][0]["step"] == 3


def test_weights_finite_sees_one_nan(tiny_model_config):
    state = TrainingState.initial(tiny_model_config, TrainConfig(), CPU)
    assert state.weights_finite()
    with torch.no_grad():
        next(state.discriminator.parameters()).view(-1)[0] = float("nan")
    assert not state.weights_finite()


def test_only_checkpoints_of_the_same_model_and_data_are_compatible(tmp_path, tiny_model_config):
    config = TrainConfig()
    state = TrainingState.initial(tiny_model_config, config, CPU)
    checkpoint = _checkpoints(tmp_path, tiny_model_config, config).checkpoint(state)
    assert _checkpoints(tmp_path, tiny_model_config, config).incompatibility(checkpoint) is None
    longer = dataclasses.replace(config, steps=99)  # the train config may change: a longer run resumes
    assert _checkpoints(tmp_path, tiny_model_config, longer).incompatibility(checkpoint) is None
    wider = dataclasses.replace(tiny_model_config, ndf=12)
    assert "model config" in _checkpoints(tmp_path, wider, config).incompatibility(checkpoint)
    assert "data changed" in _checkpoints(tmp_path, tiny_model_config, config, "data-v2").incompatibility(checkpoint)


def test_resume_starts_over_then_continues_from_the_newest_checkpoint(tmp_path, tiny_model_config):
    config = TrainConfig(keep_checkpoints=1)
    checkpoints = _checkpoints(tmp_path, tiny_model_config, config)
    state = TrainingState.initial(tiny_model_config, config, CPU)
    assert checkpoints.resume(state) is None  # nothing to resume: the step-0 state is checkpointed
    assert [step for step, _ in list_checkpoints(checkpoints.url)] == [0]
    _advance(state)
    checkpoints.save(state)
    again = TrainingState.initial(tiny_model_config, config, CPU)
    assert checkpoints.resume(again) == 3 and again.step == 3
    fresh = TrainingState.initial(tiny_model_config, config, CPU)
    assert checkpoints.resume(fresh, resume=False) is None and fresh.step == 0
    assert [step for step, _ in list_checkpoints(checkpoints.url)] == [0]


def test_roll_back_returns_to_the_last_checkpoint_with_lower_learning_rates(tmp_path, tiny_model_config):
    config = TrainConfig(max_nan_rollbacks=1, nan_lr_factor=0.5)
    checkpoints = _checkpoints(tmp_path, tiny_model_config, config)
    state = TrainingState.initial(tiny_model_config, config, CPU)
    checkpoints.resume(state)
    _advance(state)
    checkpoints.roll_back(state)
    assert state.step == 0 and state.nan_rollbacks == 1 and state.history["step"] == []
    assert state.opt_g.param_groups[0]["lr"] == pytest.approx(config.lr * 0.5)
    assert state.opt_d.param_groups[0]["lr"] == pytest.approx(config.d_lr * 0.5)
    with pytest.raises(TrainingDivergedError, match="diverged"):
        checkpoints.roll_back(state)



def test_a_checkpoint_of_other_layers_under_the_same_config_starts_over(tmp_path, tiny_model_config):
    """A checkpoint of an earlier version of a network (same config, another layer's shape) is
    not loaded half-way: the run starts over from its own fresh weights."""
    config = TrainConfig(keep_checkpoints=1)
    checkpoints = _checkpoints(tmp_path, tiny_model_config, config)
    state = TrainingState.initial(tiny_model_config, config, CPU)
    checkpoints.resume(state)
    _advance(state)
    old = checkpoints.checkpoint(state)
    old["generator"]["project.weight"] = old["generator"]["project.weight"][:, :-1]  # one input fewer
    save_checkpoint(checkpoints.url, old, keep=1)
    fresh = TrainingState.initial(tiny_model_config, config, CPU)
    before = [v.clone() for v in fresh.generator.state_dict().values()]
    assert checkpoints.resume(fresh) is None and fresh.step == 0
    assert all(torch.equal(a, b) for a, b in zip(before, fresh.generator.state_dict().values()))
