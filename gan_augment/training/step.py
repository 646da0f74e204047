"""One training step: `d_steps` updates of D, one update of G, and the EMA of G's weights.

What the networks learn from is decided here: which losses are combined, the augmentations,
the contrastive pass through D's trunk, and which network sees which images in which mode.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_augment.config import TrainConfig
from gan_augment.gan.augment import diff_augment, random_view
from gan_augment.gan.losses import (
    discriminator_loss,
    fake_contrastive,
    generator_loss,
    gradient_penalty,
    nt_xent,
    unrolled_generator_loss,
)
from gan_augment.training.batches import RealBatches
from gan_augment.training.distributed import DistributedContext
from gan_augment.training.finish import finish_step
from gan_augment.training.state import TrainingState


class ContrastivePass(NamedTuple):
    """D's pass over a real batch and fakes in the contrastive recipe."""

    loss: Tensor  # NT-Xent on the real views, plus ContraD's loss on the fakes when it is on
    real_logits: Tensor  # (B,)
    fake_logits: Tensor  # (F,)
    real_input: Tensor  # the reals as D's GAN loss saw them: (B, C, S, S)
    fake_input: Tensor  # the fakes as D's GAN loss saw them: (F, C, S, S)
    real_trunk: Tensor  # the trunk features the real logits came from: (B, T)


class DiscriminatorUpdate(NamedTuple):
    """What one update of D leaves for G's update and for the step's metrics."""

    loss: Tensor
    real_logits: Tensor  # (B,)
    fake_logits: Tensor  # (F,)
    fake: Tensor  # G's output, (F, C, S, S), with its graph when the update was asked to keep it
    real_input: Tensor  # the reals as D saw them, (B, C, S, S): the unrolled G loss replays them
    fake_labels: Tensor | None  # the classes G was asked for, (F,), in a class-conditional run
    real: Tensor  # the real batch as read, (B, C, S, S): a critic's share of the step's reals


class TrainingStep:
    """One G step on a `TrainingState`: `d_steps` updates of D, one update of G, the EMA.

    Args:
        state: the state the step updates in place (networks, optimisers, RNG, step count).
        batches: the real batches; the step reads batch `step * d_steps + i` for D update `i`.
        train_config: the losses, augmentations and recipe switches.
        device: the training device.
        amp: run the forward passes under bf16 autocast.
        distributed: this process's place in a data-parallel run; None is a single process.
        finish_from: the step from which each call is a finishing step (`training.finish`);
            None: never.

    Attributes:
        g_forward, d_forward: G's and D's forward passes, compiled when `train_config.compile`
            (D's trunk, projection head and classifier are called directly, uncompiled).
    """

    def __init__(
        self,
        state: TrainingState,
        batches: RealBatches,
        train_config: TrainConfig,
        *,
        device: torch.device,
        amp: bool = False,
        distributed: DistributedContext | None = None,
        finish_from: int | None = None,
    ) -> None:
        self.state, self.batches, self.tc, self.device = state, batches, train_config, device
        self.finish_from = finish_from
        self.dist = distributed or DistributedContext()
        self.latent_dim = state.generator.config.latent_dim
        self.policies = train_config.augment_policies
        self.contrastive = train_config.contrastive_weight > 0
        self.fake_contrastive_weight = train_config.fake_contrastive_weight_for(state.generator.config.channels)
        self.num_classes = state.generator.config.num_classes
        if self.num_classes and train_config.unrolled_steps:
            raise ValueError("unrolled_steps is not supported with a class-conditional model")
        self.autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else contextlib.nullcontext
        self.g_forward, self.d_forward = state.generator, state.discriminator
        if train_config.compile:
            self.g_forward, self.d_forward = torch.compile(self.g_forward), torch.compile(self.d_forward)
        self.critic = state.discriminator.critic
        if self.critic is not None and (not self.contrastive or train_config.unrolled_steps):
            raise ValueError("a critic (ModelConfig.critic) trains G in the contrastive recipe only: "
                             "contrastive_weight > 0, unrolled_steps 0")
        if self.critic is not None and train_config.critic_rounds > train_config.batch_size:
            raise ValueError(f"critic_rounds={train_config.critic_rounds} is more than the batch_size "
                             f"({train_config.batch_size}): every critic update needs real images of its own")

    def __call__(self) -> Tensor:
        """Run one G step and advance `state.step` by one.

        Returns:
            (4,) on the training device, from the last D update: loss_d, loss_g, D(x) and
            D(G(z)) as mean probabilities; left there so that a step never waits for the host.
        """
        tc, state = self.tc, self.state
        if self.finish_from is not None and state.step >= self.finish_from:
            return finish_step(self, self.finish_from)
        # (1) Update D, `d_steps` times, each on its own real batch and fresh fakes. Only the
        # last update's fakes feed G's update; the earlier ones need no graph.
        updates = [self.update_discriminator(state.step * tc.d_steps + i,
                                             keep_graph=i == tc.d_steps - 1 and self.critic is None)
                   for i in range(tc.d_steps)]
        d = updates[-1]
        # (2) Update G against the D just updated, on those last fakes; or, with a critic,
        # `critic_rounds` times against the critic, which learns between G's updates.
        if self.critic is None:
            loss_g = self.update_generator(d.fake, d.real_input, d.fake_labels)
            real_logits, fake_logits = d.real_logits, d.fake_logits
        else:
            loss_g, real_logits, fake_logits = self.critic_rounds(torch.cat([u.real for u in updates]))
        # (3) EMA of G's weights.
        self.update_ema()
        state.step += 1
        with torch.no_grad():
            return torch.stack([d.loss.float(), loss_g.float(), torch.sigmoid(real_logits.float()).mean(),
                                torch.sigmoid(fake_logits.float()).mean()])

    def critic_rounds(self, reals: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """`critic_rounds` x [`d_steps` updates of the critic, one update of G against it]: the
        plain GAN of the seed, on the step's real images shared out among the critic's updates
        (each seen at most once; the first `critic_batch` of each share when that is set) and
        fresh fakes. G faces the critic in train mode, as in the plain GAN, and D's real/fake
        head at `critic_head_weight` (`head_loss`). In a class-conditional run
        the critic judges realism alone; the classes asked for reach G through D's head.

        Returns:
            G's last loss, and the critic's last real (R,) and fake (F,) logits.
        """
        tc, state, critic = self.tc, self.state, self.critic
        shares = [share[:tc.critic_batch] for share in reals.tensor_split(tc.critic_rounds * tc.d_steps)]
        for round_ in range(tc.critic_rounds):
            for share in shares[round_ * tc.d_steps:(round_ + 1) * tc.d_steps]:
                with self.autocast():
                    with torch.no_grad():
                        fake, _ = self.fakes()  # (F, C, S, S)
                    real_logits = critic(self.augment(share)).squeeze(1)  # (R,)
                    fake_logits = critic(self.augment(fake)).squeeze(1)  # (F,)
                    loss = discriminator_loss(tc.loss, real_logits, fake_logits)
                state.opt_d.zero_grad(set_to_none=True)  # only the critic has gradients: Adam skips the rest
                loss.backward()
                self.dist.average_gradients(critic)
                state.opt_d.step()
            critic.requires_grad_(False)
            with self.autocast():
                fake, fake_labels = self.fakes()  # (F, C, S, S), (F,) or None
                loss_g = generator_loss(tc.loss, critic(self.augment(fake)).squeeze(1))
                if tc.critic_head_weight:
                    loss_g = loss_g + tc.critic_head_weight * self.head_loss(fake, fake_labels)
            state.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.dist.average_gradients(state.generator)
            state.discriminator.requires_grad_(True).train()  # the critic and, after `head_loss`, D
            state.opt_g.step()
        return loss_g, real_logits, fake_logits

    def head_loss(self, fake: Tensor, fake_labels: Tensor | None = None) -> Tensor:
        """G's loss against D's real/fake head (with the classes asked for in a class-conditional
        run). D is frozen: G needs the gradient through D, not D's weight gradients, which would
        cost a third of D's backward and be thrown away. In the contrastive recipe G sees D in
        eval mode, on a random view of `fake`. Beside a critic it keeps G adversarial to the
        trunk the features come from (BENCHMARKS.md, "Sample distance (SWD) of the recipes").
        The caller puts D back (`requires_grad_(True).train()`)."""
        self.state.discriminator.requires_grad_(False)
        fake_input = self.generator_input(fake)
        with self.autocast():
            if fake_labels is None:
                return generator_loss(self.tc.loss, self.d_logits(fake_input))
            return self.conditional_generator_loss(fake_input, fake_labels)

    def generator_input(self, fake: Tensor) -> Tensor:
        """What D sees of `fake` in G's update: in the contrastive recipe a random view, with D put
        in eval mode; then DiffAugment."""
        if self.contrastive:
            self.state.discriminator.eval()
            fake = self.view(fake)
        return self.augment(fake)

    def noise(self) -> Tensor:
        """A batch of G's input noise, (F, Z)."""
        return torch.randn(self.tc.fakes_per_step, self.latent_dim, device=self.device, generator=self.state.rng)

    def fakes(self) -> tuple[Tensor, Tensor | None]:
        """A batch of fakes, (F, C, S, S), with the graph when gradients are on; and in a
        class-conditional run the classes asked for, (F,): every class equally often."""
        z = self.noise()
        if not self.num_classes:
            return self.g_forward(z), None
        labels = torch.randint(self.num_classes, (self.tc.fakes_per_step,), device=self.device,
                               generator=self.state.rng)
        return self.g_forward(z, labels), labels

    def update_discriminator(self, index: int, keep_graph: bool = False) -> DiscriminatorUpdate:
        """One update of D on real batch `index` against fresh fakes: maximise
        log D(x) + log(1 - D(G(z))) (or the hinge / critic objective), plus the contrastive
        loss on D's trunk in the default recipe.

        Args:
            index: the real batch to read.
            keep_graph: keep the graph from the noise to the fakes, for G's update.
        """
        state = self.state
        real = self.batches(index)  # (B, C, S, S)
        real_labels = self.batches.labels(index, state.labels) if state.labels is not None else None  # (B,)
        with self.autocast():
            with torch.set_grad_enabled(keep_graph):
                fake, fake_labels = self.fakes()  # (F, C, S, S), (F,) or None
            loss, real_logits, fake_logits, real_input = self.d_loss(real, fake.detach(), real_labels, fake_labels)
        state.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.dist.average_gradients(state.discriminator)
        state.opt_d.step()
        return DiscriminatorUpdate(loss, real_logits, fake_logits, fake, real_input, fake_labels, real)

    def d_loss(self, real: Tensor, fake: Tensor, real_labels: Tensor | None = None,
               fake_labels: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """D's loss on a real batch and detached fakes: the GAN loss, the gradient penalty under
        wgan-gp, and the contrastive loss in the contrastive recipe. In a class-conditional run
        the logits are the projection discriminator's for the given classes (-1: unknown).

        Returns:
            (loss, real logits (B,), fake logits (F,), the reals as D saw them (B, C, S, S)).
        """
        tc = self.tc
        real_trunk = None
        if self.contrastive:
            loss_con, real_logits, fake_logits, real_input, fake_input, real_trunk = self.discriminate_contrastive(
                real, fake, real_labels, fake_labels)
        else:
            real_input, fake_input = self.augment(real), self.augment(fake)
            real_logits, fake_logits = self.discriminate(real_input, fake_input, real_labels, fake_labels)
        loss = discriminator_loss(tc.loss, real_logits, fake_logits)
        if self.num_classes and tc.class_weight:
            labelled = real_labels >= 0
            if bool(labelled.any()):
                if real_trunk is None:
                    real_trunk = self.state.discriminator.trunk(real_input)
                class_logits = self.state.discriminator.classify(real_trunk[labelled]).float()  # (L, K)
                loss = loss + tc.class_weight * F.cross_entropy(class_logits, real_labels[labelled])
        if tc.loss == "wgan-gp":
            loss = loss + tc.gp_weight * gradient_penalty(self.state.discriminator, real_input, fake_input,
                                                          generator=self.state.rng)
        if self.contrastive:
            loss = loss + tc.contrastive_weight * loss_con
        return loss, real_logits, fake_logits, real_input

    def update_generator(self, fake: Tensor, real_input: Tensor, fake_labels: Tensor | None = None) -> Tensor:
        """One update of G: maximise log D(G(z)) (non-saturating) against D's head (`head_loss`)
        or an unrolled D. In the contrastive recipe G faces D in eval mode: BatchNorm then uses
        the running statistics of mixed real+fake batches, not those of an all-fake batch, which
        G could otherwise game as a whole.

        Args:
            fake: G's output with its graph, (F, C, S, S).
            real_input: the reals of D's last update as D saw them, for the unrolled loss.

        Returns:
            G's loss.
        """
        tc, state = self.tc, self.state
        if tc.unrolled_steps:
            fake_input = self.generator_input(fake)
            with self.autocast():
                loss = unrolled_generator_loss(tc.loss, state.discriminator, state.opt_d, real_input, fake_input,
                                               tc.unrolled_steps)
        else:
            loss = self.head_loss(fake, fake_labels)
        state.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.dist.average_gradients(state.generator)
        state.discriminator.requires_grad_(True).train()
        state.opt_g.step()
        return loss

    def conditional_generator_loss(self, fake_input: Tensor, fake_labels: Tensor) -> Tensor:
        """G's loss in a class-conditional run: the projection discriminator's logits for the
        classes asked for, plus `class_weight` times the cross-entropy of D's class head on them
        (AC-GAN). The projection term alone did not condition the samples: after 800 steps with
        true labels for all 4,000 MNIST-5k pool images, a classifier trained on those images
        assigned 11.5% of the samples to the class asked for (chance: 10%)."""
        discriminator = self.state.discriminator
        trunk = discriminator.trunk(fake_input)  # (F, T)
        loss = generator_loss(self.tc.loss, discriminator.logits(trunk, fake_labels))
        if self.tc.class_weight:
            loss = loss + self.tc.class_weight * F.cross_entropy(discriminator.classify(trunk).float(), fake_labels)
        return loss

    def update_ema(self, since: int = 0) -> None:
        """Move the EMA of G's weights, which samples, towards G; the warm-up lets early, short
        runs track G (TensorFlow's ExponentialMovingAverage num_updates rule), counted from step
        `since`, where the EMA started."""
        state = self.state
        done = state.step - since
        decay = min(self.tc.ema_decay, (1 + done) / (10 + done))
        with torch.no_grad():
            torch._foreach_lerp_(list(state.ema.parameters()), list(state.generator.parameters()), 1 - decay)
            for ema_buffer, buffer in zip(state.ema.buffers(), state.generator.buffers()):
                ema_buffer.copy_(buffer)

    def augment(self, images: Tensor) -> Tensor:
        """DiffAugment with the configured policies (the identity when there are none)."""
        return diff_augment(images, self.policies, self.state.rng)

    def view(self, images: Tensor) -> Tensor:
        """A random view of each image (crop, rotation, shift, contrast, and a mirror with
        `view_flip`), for the contrastive loss."""
        return random_view(images, self.state.rng, flip=self.tc.view_flip)

    def discriminate(self, real: Tensor, fake: Tensor, real_labels: Tensor | None = None,
                     fake_labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """D's logits on a real batch and on fakes: (B,) and (F,)."""
        if self.tc.concat_real_fake:  # the seed's concatenation layer: one pass, shared BN stats
            labels = None if real_labels is None else torch.cat([real_labels, fake_labels])
            logits = self.d_logits(torch.cat([real, fake]), labels)  # (B + F,)
            return logits[: real.shape[0]], logits[real.shape[0]:]
        return self.d_logits(real, real_labels), self.d_logits(fake, fake_labels)

    def d_logits(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """D's forward on `images`, with their classes in a class-conditional run."""
        return self.d_forward(images) if labels is None else self.d_forward(images, labels)

    def discriminate_contrastive(self, real: Tensor, fake: Tensor, real_labels: Tensor | None = None,
                                 fake_labels: Tensor | None = None) -> ContrastivePass:
        """The contrastive recipe's D pass: two random views of the real batch and one of the
        fakes go through D's trunk together; NT-Xent on the projections of the real views
        (with the fakes as extra negatives) and ContraD's loss on the fakes (all of them one
        class, apart from every real view) shape the trunk, and the real/fake logits come from
        the first real view and the fakes.

        Args:
            real: the real batch, (B, C, S, S).
            fake: detached fakes, (F, C, S, S).
            real_labels, fake_labels: their classes in a class-conditional run, (B,) and (F,).
        """
        tc, discriminator, batch = self.tc, self.state.discriminator, real.shape[0]
        real_in, fake_in = self.augment(self.view(real)), self.augment(self.view(fake))
        trunk = discriminator.trunk(torch.cat([real_in, self.view(real), fake_in]))  # (2B + F, T)
        real_trunk, fake_trunk = trunk[: 2 * batch], trunk[2 * batch:]
        fake_projection = discriminator.project(fake_trunk) if tc.fake_negatives or self.fake_contrastive_weight \
            else None
        real_projection = discriminator.project(real_trunk)  # (2B, P)
        first, second = real_projection.chunk(2)
        loss = nt_xent(first, second, tc.contrastive_temperature, fake_projection if tc.fake_negatives else None)
        if self.fake_contrastive_weight:
            loss = loss + self.fake_contrastive_weight * fake_contrastive(
                real_projection, fake_projection, tc.contrastive_temperature)
        gan_real, gan_fake = real_trunk[:batch], fake_trunk
        if tc.detach_gan_head:
            gan_real, gan_fake = gan_real.detach(), gan_fake.detach()
        real_logits = discriminator.logits(gan_real, real_labels)
        fake_logits = discriminator.logits(gan_fake, fake_labels)
        return ContrastivePass(loss, real_logits, fake_logits, real_in, fake_in, gan_real)
