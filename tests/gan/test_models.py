import dataclasses

import pytest
import torch
import torch.nn.functional as F

from gan_augment.config import ModelConfig
from gan_augment.gan.models import (
    Discriminator,
    Generator,
    UpsampleConv2d,
    build_critic,
    build_models,
    init_weights,
    standing_statistics,
)


@pytest.mark.parametrize("size", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("upsample", ["nearest", "transpose"])
def test_shapes_for_every_size_and_channel_count(size, channels, upsample):
    config = ModelConfig(image_size=size, channels=channels, latent_dim=8, ngf=4, ndf=4, upsample=upsample)
    generator, discriminator = build_models(config)
    images = generator(torch.randn(2, 8))
    assert images.shape == (2, channels, size, size)
    assert images.abs().max() <= 1.0  # tanh range
    assert discriminator(images).shape == (2,)
    activations = discriminator.block_activations(images)
    assert len(activations) == config.num_blocks
    assert activations[-1].shape[-2:] == (4, 4)
    assert [a.shape[-1] for a in activations] == [size // 2 ** (i + 1) for i in range(config.num_blocks)]


def test_generator_follows_the_seed_architecture():
    generator = Generator(ModelConfig(image_size=32, channels=1, ngf=8))
    first_block = generator.blocks[0]
    kinds = [type(m).__name__ for m in first_block]
    assert kinds == ["UpsampleConv2d", "BatchNorm2d", "ReLU"]
    assert first_block[0].kernel_size == (3, 3) and first_block[0].stride == (1, 1)
    assert isinstance(generator.to_image[-1], torch.nn.Tanh)
    transpose = Generator(ModelConfig(image_size=32, channels=1, ngf=8, upsample="transpose"))
    assert [type(m).__name__ for m in transpose.blocks[0]] == ["ConvTranspose2d", "BatchNorm2d", "ReLU"]


def test_discriminator_has_no_norm_in_first_block_and_layer_norm_option():
    disc = Discriminator(ModelConfig(image_size=32, channels=1, ndf=8, d_dropout=0.25))
    assert [type(m).__name__ for m in disc.blocks[0]] == ["Conv2d", "LeakyReLU", "Dropout"]
    assert [type(m).__name__ for m in disc.blocks[1]] == ["Conv2d", "LeakyReLU", "Dropout", "BatchNorm2d"]
    assert disc.blocks[0][1].negative_slope == 0.2 and disc.blocks[0][2].p == 0.25
    layer = Discriminator(ModelConfig(image_size=32, channels=1, ndf=8, d_norm="layer"))
    assert type(layer.blocks[1][-1]).__name__ == "GroupNorm" and layer.blocks[1][-1].num_groups == 1


def test_init_weights_matches_dcgan_statistics():
    torch.manual_seed(0)
    generator, discriminator = build_models(ModelConfig(image_size=64, channels=3))
    convs = [m.weight for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    weights = torch.cat([w.flatten() for w in convs])
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    scales = torch.cat([m.weight for m in norms])
    assert scales.mean().item() == pytest.approx(1.0, abs=0.01)
    assert all(torch.count_nonzero(m.bias) == 0 for m in norms)


def test_projection_head_only_when_asked():
    plain = Discriminator(ModelConfig(image_size=16, channels=1, ndf=4, projection_dim=0))
    with pytest.raises(ValueError, match="projection_dim"):
        plain.project(torch.zeros(2, plain.trunk_dim))
    head = Discriminator(ModelConfig(image_size=16, channels=1, ndf=4, projection_dim=16))
    x = torch.randn(3, 1, 16, 16)
    assert head.project(head.trunk(x)).shape == (3, 16)


def test_init_is_explicitly_applied():
    layer = torch.nn.Conv2d(1, 1, 3)
    init_weights(layer)
    assert torch.count_nonzero(layer.bias) == 0


def test_folded_upsample_conv_equals_upsample_then_conv():
    torch.manual_seed(0)
    layer = UpsampleConv2d(5, 4).double()
    x = torch.randn(2, 5, 7, 6, dtype=torch.float64)
    expected = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), layer.weight, layer.bias, padding=1)
    assert torch.allclose(layer(x), expected, atol=1e-12)
    assert set(layer.state_dict()) == {"weight", "bias"} and layer.weight.shape == (4, 5, 3, 3)


@pytest.mark.parametrize("num_classes", [0, 3])
def test_standing_statistics_recompute_the_batch_norms_of_a_copy(tiny_model_config, num_classes):
    generator, _ = build_models(dataclasses.replace(tiny_model_config, num_classes=num_classes))
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:  # statistics of other weights: what an EMA's copied buffers are
        norm.running_mean.fill_(5.0)
        norm.running_var.fill_(0.01)
    fixed = standing_statistics(generator, batches=4, batch_size=64, seed=0)
    assert all(float(n.running_mean[0]) == 5.0 for n in norms)  # the original is left as it was
    z = torch.randn(256, tiny_model_config.latent_dim, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(256) % num_classes if num_classes else None  # every class equally often
    with torch.no_grad():
        batch_stats = generator.train()(z, labels)
        torch.testing.assert_close(fixed(z, labels), batch_stats, atol=0.05, rtol=0.0)  # eval matches the batch's
        assert (generator.eval()(z, labels) - batch_stats).abs().mean() > 0.3
    assert not fixed.training
    again = standing_statistics(generator, batches=4, batch_size=64, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(fixed.buffers(), again.buffers()))  # seeded


def test_a_critic_with_ds_critic_weights_computes_ds_logit(tiny_model_config):
    torch.manual_seed(0)
    _, discriminator = build_models(tiny_model_config)
    discriminator.apply(init_weights)
    critic = build_critic(tiny_model_config)
    critic.load_state_dict(discriminator.critic_weights())
    discriminator.eval()  # dropout off, the norms' running statistics
    critic.eval()
    images = torch.randn(5, tiny_model_config.channels, tiny_model_config.image_size, tiny_model_config.image_size)
    torch.testing.assert_close(critic(images).squeeze(1), discriminator(images), rtol=0, atol=0)
