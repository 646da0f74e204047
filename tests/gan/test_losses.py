import math

import pytest
import torch
from torch import nn

from gan_augment.gan.losses import (
    discriminator_loss,
    fake_contrastive,
    generator_loss,
    gradient_penalty,
    nt_xent,
    unrolled_generator_loss,
)


def test_bce_on_known_logits():
    zeros = torch.zeros(4)
    # D(x) = D(G(z)) = 1/2: -log(1/2) - log(1 - 1/2) = 2 log 2
    assert discriminator_loss("bce", zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert generator_loss("bce", zeros).item() == pytest.approx(math.log(2))
    real, fake = torch.tensor([2.0]), torch.tensor([-1.0])
    expected = -math.log(1 / (1 + math.exp(-2))) - math.log(1 - 1 / (1 + math.exp(1)))
    assert discriminator_loss("bce", real, fake).item() == pytest.approx(expected)
    # non-saturating: G's loss is -log D(G(z)), large when D confidently rejects the fake
    assert generator_loss("bce", torch.tensor([-10.0])).item() == pytest.approx(10.0, abs=1e-4)


def test_bce_is_stable_for_extreme_logits():
    loss = discriminator_loss("bce", torch.tensor([1e4]), torch.tensor([-1e4]))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.0)


def test_hinge_and_wasserstein_values():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # hinge: mean(relu(1 - r)) + mean(relu(1 + f)) = (0 + 0.5)/2 + (0 + 1)/2
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx(0.75)
    assert generator_loss("hinge", fake).item() == pytest.approx(1.0)
    assert discriminator_loss("wgan-gp", real, fake).item() == pytest.approx(-1.0 - 1.25)
    assert generator_loss("wgan-gp", fake).item() == pytest.approx(1.0)


def test_unknown_loss_is_a_value_error():
    with pytest.raises(ValueError, match="unknown loss"):
        generator_loss("mse", torch.zeros(1))


def test_gradient_penalty_of_a_linear_critic():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.copy_(torch.tensor([[3.0, 0.0, 4.0, 0.0]]))  # ||grad|| = 5 everywhere
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(16.0)  # (5 - 1)^2


def _tiny_d():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Flatten(0))


def test_unrolled_with_zero_steps_is_the_plain_loss():
    d = _tiny_d()
    optimizer = torch.optim.Adam(d.parameters(), lr=1e-2)
    real, fake = torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2)
    plain = generator_loss("bce", d(fake))
    assert unrolled_generator_loss("bce", d, optimizer, real, fake, 0).item() == pytest.approx(plain.item())


def test_unrolled_look_ahead_changes_the_loss_and_leaves_d_untouched():
    d = _tiny_d()
    optimizer = torch.optim.Adam(d.parameters(), lr=1e-1)
    before = [p.clone() for p in d.parameters()]
    real = torch.randn(6, 1, 2, 2)
    source = torch.randn(6, 1, 2, 2, requires_grad=True)  # stands in for G's output
    plain = generator_loss("bce", d(source)).item()
    unrolled = unrolled_generator_loss("bce", d, optimizer, real, source, 3)
    # the look-ahead D has learned to reject these fakes: G's loss is higher
    assert unrolled.item() > plain
    unrolled.backward()
    assert source.grad is not None and torch.count_nonzero(source.grad) > 0
    assert all(torch.equal(a, b) for a, b in zip(before, d.parameters()))
    assert not optimizer.state  # no optimiser step was taken


def test_nt_xent_prefers_aligned_views():
    torch.manual_seed(0)
    z = torch.randn(8, 16)
    aligned = nt_xent(z, z + 0.01 * torch.randn(8, 16), temperature=0.2)
    shuffled = nt_xent(z, z[torch.randperm(8)], temperature=0.2)
    assert aligned.item() < shuffled.item()
    # lower bound: positives at similarity 1/t, all negatives far below -> loss near 0
    assert aligned.item() < 1.0


def test_nt_xent_negatives_are_extra_columns_of_the_softmax():
    torch.manual_seed(0)
    z1, z2, negatives = torch.randn(4, 8), torch.randn(4, 8), torch.randn(3, 8)
    z = nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    n = nn.functional.normalize(negatives, dim=1)
    logits = torch.cat([z @ z.t(), z @ n.t()], 1) / 0.5
    logits[torch.arange(8), torch.arange(8)] = float("-inf")
    expected = nn.functional.cross_entropy(logits, torch.tensor([4, 5, 6, 7, 0, 1, 2, 3]))
    assert nt_xent(z1, z2, 0.5, negatives).item() == pytest.approx(expected.item(), rel=1e-6)
    # a negative identical to an anchor's positive makes the task harder
    assert nt_xent(z1, z2, 0.5, z2).item() > nt_xent(z1, z2, 0.5).item()


def test_nt_xent_runs_in_fp32_under_autocast():
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = nt_xent(z1.bfloat16(), z2.bfloat16(), 0.2)
    assert loss.dtype == torch.float32


def test_fake_contrastive_is_supervised_contrastive_with_fakes_as_one_class():
    torch.manual_seed(0)
    real, fake = torch.randn(6, 8), torch.randn(3, 8)
    r, f = nn.functional.normalize(real, dim=1), nn.functional.normalize(fake, dim=1)
    expected = 0.0
    for i in range(3):  # Khosla et al. 2020, L_out: average log-probability of each positive
        others = [j for j in range(3) if j != i]
        logits = torch.cat([f[i] @ f[others].t(), f[i] @ r.t()]) / 0.5
        expected -= torch.log_softmax(logits, 0)[: len(others)].mean() / 3
    assert fake_contrastive(real, fake, 0.5).item() == pytest.approx(expected.item(), rel=1e-5)


def test_fake_contrastive_is_low_when_fakes_cluster_apart_from_reals():
    torch.manual_seed(0)
    direction = torch.randn(1, 8)
    clustered = fake_contrastive(-direction + 0.01 * torch.randn(6, 8), direction + 0.01 * torch.randn(4, 8), 0.2)
    mixed = fake_contrastive(torch.randn(6, 8), torch.randn(4, 8), 0.2)
    assert clustered.item() < mixed.item()
    assert clustered.item() == pytest.approx(math.log(3), abs=1e-2)  # 3 equal positives, no real competes


def test_fake_contrastive_runs_in_fp32_under_autocast():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = fake_contrastive(torch.randn(4, 8).bfloat16(), torch.randn(3, 8).bfloat16(), 0.2)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_gradient_penalty_pairs_batches_of_different_sizes():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    penalty = gradient_penalty(critic, torch.randn(8, 3, 2, 2), torch.randn(3, 3, 2, 2))
    assert penalty.ndim == 0 and torch.isfinite(penalty)
