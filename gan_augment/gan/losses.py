"""Adversarial and auxiliary losses. Every loss takes logits, never probabilities.

- "bce": the seed's loss. D maximises log D(x) + log(1 - D(G(z))); G maximises log D(G(z)),
  the non-saturating form (Goodfellow et al. 2014, section 3).
- "hinge": Lim & Ye 2017 / Miyato et al. 2018.
- "wgan-gp": Wasserstein critic with gradient penalty (Gulrajani et al. 2017).
- Unrolled GAN (Metz et al. 2016): G's loss is taken against D after k look-ahead updates.
- NT-Xent (Chen et al. 2020, SimCLR) for the discriminator's auxiliary contrastive loss, and
  ContraD's supervised contrastive loss on generated images (Jeong & Shin 2021).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call


def discriminator_loss(kind: str, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The discriminator's (critic's) loss to minimise, without any gradient penalty."""
    if kind == "bce":
        # -log sigmoid(r) - log(1 - sigmoid(f)) == softplus(-r) + softplus(f), stable in logits.
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    if kind == "wgan-gp":
        return fake_logits.mean() - real_logits.mean()
    raise ValueError(f"unknown loss {kind!r}; expected bce, hinge or wgan-gp")


def generator_loss(kind: str, fake_logits: Tensor) -> Tensor:
    """The generator's loss to minimise."""
    if kind == "bce":
        return F.softplus(-fake_logits).mean()  # -log sigmoid(f): non-saturating
    if kind in ("hinge", "wgan-gp"):
        return -fake_logits.mean()
    raise ValueError(f"unknown loss {kind!r}; expected bce, hinge or wgan-gp")


def gradient_penalty(
    discriminator: nn.Module, real: Tensor, fake: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates of real and fake
    (Gulrajani et al. 2017, eq. 3). Multiply by the penalty weight outside. When the batches
    differ in size, the first rows of the larger one are paired with the smaller one."""
    pairs = min(real.shape[0], fake.shape[0])
    real, fake = real[:pairs], fake[:pairs]
    alpha = torch.rand(pairs, 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def unrolled_generator_loss(
    kind: str,
    discriminator: nn.Module,
    optimizer: torch.optim.Adam,
    real: Tensor,
    fake: Tensor,
    steps: int,
) -> Tensor:
    """G's loss against D unrolled `steps` Adam updates ahead (Metz et al. 2016, eq. 6-7).

    The look-ahead is differentiable: the gradient reaches G both through D(G(z)) and through
    the look-ahead updates that G's samples cause, which is what discourages mode collapse.
    The Adam update is unrolled from the optimiser's current moments with the second moment
    held constant (no gradient through it), as the paper's implementation does. D's real
    parameters, buffers and optimiser state are left untouched. The gradient penalty is not
    part of the look-ahead.
    """
    params = dict(discriminator.named_parameters())
    # Clone buffers so BatchNorm's running statistics of the real D are not moved.
    buffers = {k: v.clone() for k, v in discriminator.named_buffers()}
    group = optimizer.param_groups[0]
    lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
    moments, start_step = {}, {}
    for name, p in params.items():
        state = optimizer.state.get(p, {})
        moments[name] = (state.get("exp_avg", torch.zeros_like(p)).detach(),
                         state.get("exp_avg_sq", torch.zeros_like(p)).detach())
        start_step[name] = int(state["step"]) if "step" in state else 0
    current = dict(params)
    for k in range(steps):
        real_logits = functional_call(discriminator, (current, buffers), (real,))
        fake_logits = functional_call(discriminator, (current, buffers), (fake,))
        loss = discriminator_loss(kind, real_logits, fake_logits)
        # allow_unused: parameters outside the logit path (a projection head) stay as they are.
        grads = torch.autograd.grad(loss, list(current.values()), create_graph=True, allow_unused=True)
        updated = {}
        for (name, p), g in zip(current.items(), grads):
            if g is None:
                updated[name] = p
                continue
            m, v = moments[name]
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g.detach() ** 2
            moments[name] = (m, v)
            t = start_step[name] + k + 1  # Adam's bias correction continues from its own count
            updated[name] = p - lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps)
        current = updated
    return generator_loss(kind, functional_call(discriminator, (current, buffers), (fake,)))


def nt_xent(z1: Tensor, z2: Tensor, temperature: float, negatives: Tensor | None = None) -> Tensor:
    """SimCLR's normalised-temperature cross entropy for two views (B, D) of one batch:
    each view's positive is its twin, the other 2B - 2 views are negatives, and so is every
    row of `negatives` (N, D) when given (generated images, in the contrastive recipe)."""
    # In fp32 even under autocast: bf16's 8-bit mantissa would blur similarities / temperature.
    with torch.autocast(z1.device.type, enabled=False):
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2B, D)
        similarity = z @ z.t() / temperature  # (2B, 2B)
        similarity.fill_diagonal_(float("-inf"))
        if negatives is not None:
            against = F.normalize(negatives.float(), dim=1)
            similarity = torch.cat([similarity, z @ against.t() / temperature], 1)  # (2B, 2B + N)
        batch = z1.shape[0]
        targets = torch.cat([torch.arange(batch, 2 * batch), torch.arange(0, batch)]).to(z.device)
        return F.cross_entropy(similarity, targets)


def fake_contrastive(real: Tensor, fake: Tensor, temperature: float) -> Tensor:
    """ContraD's loss on generated images (Jeong & Shin 2021, L_con^-), a supervised
    contrastive loss in which "generated" is one class: each fake projection (F, D) has every
    other fake as a positive and every real projection (R, D) as a negative."""
    with torch.autocast(real.device.type, enabled=False):
        fake, real = F.normalize(fake.float(), dim=1), F.normalize(real.float(), dim=1)
        count = fake.shape[0]
        self_pairs = torch.eye(count, dtype=torch.bool, device=fake.device)
        logits = torch.cat([(fake @ fake.t() / temperature).masked_fill(self_pairs, float("-inf")),
                            fake @ real.t() / temperature], 1)  # (F, F + R)
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        return -(log_prob[:, :count].masked_fill(self_pairs, 0.0).sum(1) / (count - 1)).mean()
