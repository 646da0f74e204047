"""The finish (`TrainConfig.finish_steps`): G steps after the recipe's in which G trains alone
against the finisher, a plain DCGAN discriminator that starts as a copy of D's real/fake path,
while D itself stays as the recipe left it.

The recipe's G learns against a D shaped by the contrastive losses, which buys the features
and costs the samples (BENCHMARKS.md, "Sample distance (SWD) of the recipes"). A short plain GAN
that starts where the recipe ends, from its G and a copy of its D, brings the samples close to
the data and leaves D, and so the exported features, exactly those of a run without it. A finisher
that starts from D rather than from fresh weights gives closer samples in the same steps
(docs/design.md, "A finish for the samples").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.gan.losses import discriminator_loss, generator_loss
from gan_augment.gan.models import build_critic

# Real images and fakes of each finishing step: the seed DCGAN's batch.
FINISH_BATCH = 64


def build_finisher(model_config: ModelConfig, train_config: TrainConfig, device: torch.device,
                   memory_format: torch.memory_format) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The finisher, whose weights `finish_step` sets from D's at the first finishing step, and
    its optimiser: Adam with G's settings (the seed DCGAN's: lr 2e-4, beta1 0.5). The global RNG
    is left as it was (building a layer draws from it), so that the recipe's steps draw exactly
    what they draw in a run without a finish."""
    with torch.random.fork_rng(devices=[]):
        finisher = build_critic(model_config)
    finisher.to(device, memory_format=memory_format).train()
    optimizer = torch.optim.Adam(finisher.parameters(), lr=train_config.lr,
                                 betas=(train_config.beta1, train_config.beta2))
    return finisher, optimizer


def finish_step(step: Any, start: int) -> Tensor:
    """One finishing step: one update of the finisher on `FINISH_BATCH` of the step's real images
    and as many fresh fakes, one update of G against it alone (the non-saturating loss), and G's
    EMA. At the first finishing step (`start`, the recipe's step count) the EMA restarts from G
    and the finisher's weights become a copy of D's real/fake path (`Discriminator.critic_weights`).
    `step` is the `training.step.TrainingStep` that calls it, typed loosely: the training state
    imports this module too, so it imports neither.

    Returns:
        (4,) like a recipe step: the finisher's loss, G's, and the finisher's mean probability
        on the reals and on the fakes.
    """
    state, finisher = step.state, step.state.finisher
    if state.step == start:
        state.ema.load_state_dict(state.generator.state_dict())
        finisher.load_state_dict(state.discriminator.critic_weights())
    real = step.batches(state.step * step.tc.d_steps)[:FINISH_BATCH]  # (R, C, S, S)
    with step.autocast():
        with torch.no_grad():
            fake = step.g_forward(_noise(step))  # (F, C, S, S)
        real_logits = finisher(step.augment(real)).squeeze(1)  # (R,)
        fake_logits = finisher(step.augment(fake)).squeeze(1)  # (F,)
        loss_d = discriminator_loss("bce", real_logits, fake_logits)
    state.opt_finisher.zero_grad(set_to_none=True)
    loss_d.backward()
    step.dist.average_gradients(finisher)
    state.opt_finisher.step()
    finisher.requires_grad_(False)  # G needs the gradient through the finisher, not its weights'
    with step.autocast():
        loss_g = generator_loss("bce", finisher(step.augment(step.g_forward(_noise(step)))).squeeze(1))
    state.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    step.dist.average_gradients(state.generator)
    finisher.requires_grad_(True)
    state.opt_g.step()
    step.update_ema(since=start)
    state.step += 1
    with torch.no_grad():
        return torch.stack([loss_d.float(), loss_g.float(), torch.sigmoid(real_logits.float()).mean(),
                            torch.sigmoid(fake_logits.float()).mean()])


def _noise(step: Any) -> Tensor:
    """(FINISH_BATCH, Z) of G's input noise from the run's generator."""
    return torch.randn(FINISH_BATCH, step.latent_dim, device=step.device, generator=step.state.rng)
