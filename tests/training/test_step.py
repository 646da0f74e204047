import dataclasses

import pytest
import torch

import gan_augment.training.step as step_module
from gan_augment.config import TrainConfig
from gan_augment.scan.cache import build_cache
from gan_augment.training.batches import BatchSampler, RealBatches
from gan_augment.training.state import TrainingState
from gan_augment.training.step import TrainingStep
from gan_augment.training.trainer import effective_model_config

CPU = torch.device("cpu")


def _step(image_folder, model_config, **train):
    config = TrainConfig(batch_size=8, **train)
    model_config = effective_model_config(model_config, config)
    cache = build_cache(image_folder, model_config.image_size, model_config.channels)
    state = TrainingState.initial(model_config, config, CPU)
    batches = RealBatches(cache.images, BatchSampler(len(cache), config.batch_size, config.seed), CPU)
    return TrainingStep(state, batches, config, device=CPU)


def test_a_step_reads_its_own_batches_and_advances_the_count(image_folder, tiny_model_config):
    step = _step(image_folder, tiny_model_config, d_steps=2, fake_batch_size=4)
    read, batches = [], step.batches
    step.batches = lambda index: (read.append(index), batches(index))[1]
    metrics = step()
    step()
    assert read == [0, 1, 2, 3] and step.state.step == 2  # batch step * d_steps + i: none seen twice
    assert metrics.shape == (4,) and bool(torch.isfinite(metrics).all())
    assert 0 < metrics[2] < 1 and 0 < metrics[3] < 1  # D(x) and D(G(z)) are probabilities


def test_the_ema_warms_up_from_g(image_folder, tiny_model_config):
    step = _step(image_folder, tiny_model_config)
    generator, ema = step.state.generator, step.state.ema
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(1.0)
    before = [p.clone() for p in ema.parameters()]
    step.update_ema()  # at step 0 the decay is 1/10, not ema_decay
    for old, new, target in zip(before, ema.parameters(), generator.parameters()):
        torch.testing.assert_close(new, old + 0.9 * (target - old))


def test_the_gan_loss_trains_only_the_head_on_a_detached_trunk(image_folder, tiny_model_config):
    step = _step(image_folder, tiny_model_config, fake_batch_size=4)
    real = step.batches(0)
    fake = step.state.generator(torch.randn(4, tiny_model_config.latent_dim))
    _, real_logits, fake_logits, *_ = step.discriminate_contrastive(real, fake.detach())
    (real_logits.sum() + fake_logits.sum()).backward()
    d = step.state.discriminator
    assert d.classifier.weight.grad is not None and d.classifier.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in d.blocks.parameters())


def test_fakes_are_negatives_and_g_sees_d_in_eval_mode(image_folder, tiny_model_config, monkeypatch):
    negatives, real_nt_xent = [], step_module.nt_xent

    def spy(z1, z2, temperature, fakes=None):
        negatives.append(None if fakes is None else fakes.shape[0])
        return real_nt_xent(z1, z2, temperature, fakes)

    monkeypatch.setattr(step_module, "nt_xent", spy)
    step = _step(image_folder, tiny_model_config, fake_batch_size=4)
    modes, d = [], step.state.discriminator
    step.d_forward = lambda x: (modes.append(d.training), d(x))[1]
    step()
    assert negatives == [4, 4]  # two D steps (the default d_steps), then one G step
    assert modes == [False] and step.state.discriminator.training  # eval for G's loss, then back to train
    no_fakes = _step(image_folder, tiny_model_config, fake_negatives=False, d_steps=1)
    no_fakes()
    assert negatives == [4, 4, None]


def test_contrad_loss_on_fakes_sees_both_real_views_and_every_fake(image_folder, tiny_model_config, monkeypatch):
    calls, real_fake_contrastive = [], step_module.fake_contrastive

    def spy(real, fake, temperature):
        calls.append((real.shape[0], fake.shape[0]))
        return real_fake_contrastive(real, fake, temperature)

    monkeypatch.setattr(step_module, "fake_contrastive", spy)
    step = _step(image_folder, tiny_model_config, fake_batch_size=4, d_steps=1)
    real = step.batches(0)
    fake = step.state.generator(torch.randn(4, tiny_model_config.latent_dim)).detach()
    step.discriminate_contrastive(real, fake)
    assert calls == [(2 * real.shape[0], 4)]
    off = _step(image_folder, tiny_model_config, fake_batch_size=4, fake_contrastive_weight=0.0)
    off.discriminate_contrastive(real, fake)
    assert len(calls) == 1
    # the automatic weight: 1.0 on greyscale (above), 0 on colour, where the loss cost the features
    colour = _step(image_folder, dataclasses.replace(tiny_model_config, channels=3), fake_batch_size=4)
    assert (step.fake_contrastive_weight, colour.fake_contrastive_weight) == (1.0, 0.0)
    noise = torch.randn(4, tiny_model_config.latent_dim)
    colour.discriminate_contrastive(colour.batches(0), colour.state.generator(noise).detach())
    assert len(calls) == 1


def test_a_critic_trains_g_on_every_real_once_and_leaves_the_trunk_to_the_contrastive_losses(
        image_folder, tiny_model_config):
    model_config = dataclasses.replace(tiny_model_config, critic=True)
    step = _step(image_folder, model_config, fake_batch_size=5, d_steps=2, critic_rounds=3)
    d, critic = step.state.discriminator, step.state.discriminator.critic
    seen, faced, g_updates = [], [], []
    forward, g_step = critic.forward, step.state.opt_g.step
    critic.forward = lambda x: (seen.append(x.shape[0]), forward(x))[1]
    step.d_forward = lambda x: (faced.append(x.shape[0]), d(x))[1]
    step.state.opt_g.step = lambda: (g_updates.append(1), g_step())[1]
    trunk_before = [p.clone() for p in d.blocks.parameters()]
    metrics = step()
    assert len(g_updates) == 3 and faced == [5, 5, 5]  # G faced the critic and D's head three times
    assert seen.count(5) == 3 * 2 + 3  # fakes: two critic updates and one G update a round
    assert sum(n for n in seen if n != 5) == 2 * 8  # the step's two batches of 8, each real once
    assert all(not torch.equal(a, b) for a, b in zip(trunk_before, d.blocks.parameters()))  # D still learns
    assert bool(torch.isfinite(metrics).all()) and 0 < metrics[2] < 1 and 0 < metrics[3] < 1


def test_critic_batch_caps_the_reals_of_each_critic_update(image_folder, tiny_model_config):
    model_config = dataclasses.replace(tiny_model_config, critic=True)
    step = _step(image_folder, model_config, fake_batch_size=5, d_steps=2, critic_rounds=1, critic_batch=3)
    critic, seen = step.state.discriminator.critic, []
    forward = critic.forward
    critic.forward = lambda x: (seen.append(x.shape[0]), forward(x))[1]
    step()
    # one round: two critic updates, each on 3 of its share of 8 reals and on 5 fakes; then G's update
    assert seen == [3, 5, 3, 5, 5]
    with pytest.raises(ValueError, match="critic_batch"):
        TrainConfig(critic_batch=0)


def test_with_a_critic_g_also_faces_ds_head_in_eval_mode_unless_its_weight_is_0(image_folder, tiny_model_config):
    model_config = dataclasses.replace(tiny_model_config, critic=True)
    step = _step(image_folder, model_config, fake_batch_size=4, d_steps=1, critic_rounds=2)
    d, modes = step.state.discriminator, []
    step.d_forward = lambda x: (modes.append((d.training, d.critic.training)), d(x))[1]
    step()
    assert modes == [(False, False)] * 2 and d.training and d.critic.training  # eval for G, then back
    assert all(p.requires_grad for p in d.parameters())
    alone = _step(image_folder, model_config, fake_batch_size=4, d_steps=1, critic_rounds=2, critic_head_weight=0.0)
    alone.d_forward = lambda x: (modes.append("alone"), d(x))[1]
    alone()
    assert "alone" not in modes
    # the term reaches G through a frozen D
    fake = step.state.generator(torch.randn(4, tiny_model_config.latent_dim))
    head = step.head_loss(fake)
    assert head.requires_grad and not any(p.requires_grad for p in d.blocks.parameters())


def test_the_critics_gradients_never_reach_the_trunk(image_folder, tiny_model_config):
    step = _step(image_folder, dataclasses.replace(tiny_model_config, critic=True), fake_batch_size=4, d_steps=1,
                 critic_rounds=1)
    d = step.state.discriminator
    step.state.opt_d.step = lambda: None  # keep the gradients of the critic's update for inspection
    step.critic_rounds(step.batches(0))
    assert all(p.grad is None for p in d.blocks.parameters())
    assert all(p.grad is not None for p in d.critic.parameters())


def test_a_critic_needs_the_contrastive_recipe(image_folder, tiny_model_config):
    model_config = dataclasses.replace(tiny_model_config, critic=True)
    with pytest.raises(ValueError, match="contrastive"):
        _step(image_folder, model_config, contrastive_weight=0.0)
    with pytest.raises(ValueError, match="contrastive"):
        _step(image_folder, model_config, unrolled_steps=1)
    with pytest.raises(ValueError, match="critic_rounds"):
        _step(image_folder, model_config, critic_rounds=9)  # a batch of 8 cannot feed 9 critic updates


def test_view_flip_mirrors_the_contrastive_views(image_folder, tiny_model_config):
    plain, flipped = (_step(image_folder, tiny_model_config, view_flip=flip) for flip in (False, True))
    images = plain.batches(0)
    a, b = plain.view(images), flipped.view(images)  # both generators are seeded alike
    assert a.shape == b.shape and not torch.equal(a, b)
    assert all(torch.equal(x, y) or torch.allclose(x, y.flip(-1), atol=1e-5) for x, y in zip(b, a))
