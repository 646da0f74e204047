"""One training step: `d_steps` updates of D, one update of G, and the EMA of G's weights."""

from __future__ import annotations

import torch
from torch import Tensor

from gan_augment.gan.augment import diff_augment, random_view
from gan_augment.gan.losses import (
    discriminator_loss,
    fake_contrastive,
    generator_loss,
    gradient_penalty,
    nt_xent,
    unrolled_generator_loss,
)
from gan_augment.gan.pixels import to_model_range
from gan_augment.training.batches import random_flip


class StepMixin:
    """The `Trainer`'s training step."""

    def _real_batch(self, index: int) -> Tensor:
        real = to_model_range(self.images[self.sampler.indices(index)]).to(self.device)  # (B, C, S, S)
        if self.tc.flip:
            real = random_flip(real, self.state.rng)
        return real.contiguous(memory_format=self.memory_format)

    def _augment(self, images: Tensor) -> Tensor:
        return diff_augment(images, self.policies, self.state.rng)

    def _discriminate(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        if self.tc.concat_real_fake:  # the seed's concatenation layer: one pass, shared BN stats
            logits = self.d_forward(torch.cat([real, fake]))
            return logits[: real.shape[0]], logits[real.shape[0]:]
        return self.d_forward(real), self.d_forward(fake)

    def _view(self, images: Tensor) -> Tensor:
        return random_view(images, self.state.rng)

    def _discriminate_contrastive(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The contrastive recipe's D pass: two random views of the real batch and one of the
        fakes go through D's trunk together; NT-Xent on the projections of the real views
        (with the fakes as extra negatives) and ContraD's loss on the fakes (all of them one
        class, apart from every real view) shape the trunk, and the real/fake logits come from
        the first real view and the fakes. Returns (contrastive loss, real logits, fake logits,
        real GAN input, fake GAN input)."""
        tc, batch = self.tc, real.shape[0]
        real_in, fake_in = self._augment(self._view(real)), self._augment(self._view(fake))
        trunk = self.state.discriminator.trunk(torch.cat([real_in, self._view(real), fake_in]))  # (2B + F, T)
        real_trunk, fake_trunk = trunk[: 2 * batch], trunk[2 * batch:]
        fake_projection = self.state.discriminator.project(fake_trunk) \
            if tc.fake_negatives or tc.fake_contrastive_weight else None
        real_projection = self.state.discriminator.project(real_trunk)
        first, second = real_projection.chunk(2)
        loss_con = nt_xent(first, second, tc.contrastive_temperature,
                           fake_projection if tc.fake_negatives else None)
        if tc.fake_contrastive_weight:
            loss_con = loss_con + tc.fake_contrastive_weight * fake_contrastive(
                real_projection, fake_projection, tc.contrastive_temperature)
        gan_real, gan_fake = real_trunk[:batch], fake_trunk
        if tc.detach_gan_head:
            gan_real, gan_fake = gan_real.detach(), gan_fake.detach()
        real_logits = self.state.discriminator.classifier(gan_real).squeeze(1)
        fake_logits = self.state.discriminator.classifier(gan_fake).squeeze(1)
        return loss_con, real_logits, fake_logits, real_in, fake_in

    def train_step(self) -> Tensor:
        """One G step (after `d_steps` D steps); returns (loss_d, loss_g, D(x), D(G(z)))."""
        tc, contrastive = self.tc, self.tc.contrastive_weight > 0
        # (1) Update D: maximise log D(x) + log(1 - D(G(z))) (or the hinge / critic objective),
        # plus the contrastive loss on D's trunk in the default recipe.
        for i in range(tc.d_steps):
            real = self._real_batch(self.state.step * tc.d_steps + i)
            z = torch.randn(tc.fakes_per_step, self.mc.latent_dim, device=self.device, generator=self.state.rng)
            with self.autocast():
                # Only the last D step's fakes feed G's update; earlier ones need no graph.
                with torch.set_grad_enabled(i == tc.d_steps - 1):
                    fake = self.g_forward(z)  # (F, C, S, S)
                if contrastive:
                    loss_con, real_logits, fake_logits, real_aug, fake_aug = self._discriminate_contrastive(
                        real, fake.detach())
                else:
                    real_aug, fake_aug = self._augment(real), self._augment(fake.detach())
                    real_logits, fake_logits = self._discriminate(real_aug, fake_aug)
                loss_d = discriminator_loss(tc.loss, real_logits, fake_logits)
                if tc.loss == "wgan-gp":
                    loss_d = loss_d + tc.gp_weight * gradient_penalty(
                        self.state.discriminator, real_aug, fake_aug, generator=self.state.rng)
                if contrastive:
                    loss_d = loss_d + tc.contrastive_weight * loss_con
            self.state.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.dist.average_gradients(self.state.discriminator)
            self.state.opt_d.step()

        # (2) Update G: maximise log D(G(z)) (non-saturating), optionally against an unrolled D.
        # D's weights are frozen for this backward: G needs the gradient through D, not D's own
        # weight gradients, which would cost a third of D's backward and be thrown away.
        # In the contrastive recipe G faces D in eval mode: BatchNorm then uses the running
        # statistics of mixed real+fake batches, not those of an all-fake batch, which G could
        # otherwise game as a whole.
        fake_in = self._augment(self._view(fake) if contrastive else fake)
        if contrastive:
            self.state.discriminator.eval()
        with self.autocast():
            if tc.unrolled_steps:
                loss_g = unrolled_generator_loss(tc.loss, self.state.discriminator, self.state.opt_d, real_aug,
                                                 fake_in, tc.unrolled_steps)
            else:
                self.state.discriminator.requires_grad_(False)
                loss_g = generator_loss(tc.loss, self.d_forward(fake_in))
        self.state.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.dist.average_gradients(self.state.generator)
        self.state.discriminator.requires_grad_(True).train()
        self.state.opt_g.step()

        # (3) EMA of G's weights for sampling; the warm-up lets early, short runs track G
        # (TensorFlow's ExponentialMovingAverage num_updates rule).
        decay = min(tc.ema_decay, (1 + self.state.step) / (10 + self.state.step))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.state.ema.parameters()), list(self.state.generator.parameters()),
                                 1 - decay)
            for ema_buffer, buffer in zip(self.state.ema.buffers(), self.state.generator.buffers()):
                ema_buffer.copy_(buffer)
        self.state.step += 1
        with torch.no_grad():
            return torch.stack([loss_d.float(), loss_g.float(), torch.sigmoid(real_logits.float()).mean(),
                                torch.sigmoid(fake_logits.float()).mean()])
