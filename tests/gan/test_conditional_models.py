"""The class-conditional networks: conditional BatchNorm in G, the projection discriminator, and
an unconditional model left exactly as it was."""

from __future__ import annotations

import pytest
import torch

from gan_augment.config import ModelConfig
from gan_augment.gan.models import ConditionalBatchNorm2d, build_models
from gan_augment.gan.sampling import generate_block

TINY = dict(image_size=16, channels=1, latent_dim=16, ngf=8, ndf=8)


def test_unconditional_config_and_weights_are_unchanged_by_the_conditional_option():
    assert "num_classes" not in ModelConfig(**TINY).to_dict()  # ids, cards, checkpoints of old runs stay valid
    torch.manual_seed(0)
    generator, discriminator = build_models(ModelConfig(**TINY))
    assert not any(isinstance(m, ConditionalBatchNorm2d) for m in generator.modules())
    assert discriminator.embed is None
    assert "base_norm.weight" in generator.state_dict() and "blocks.0.1.running_mean" in generator.state_dict()
    assert ModelConfig.from_dict(ModelConfig(**TINY, num_classes=3).to_dict()).num_classes == 3


def test_conditional_generator_makes_each_class_from_the_same_noise_differently():
    torch.manual_seed(0)
    generator, _ = build_models(ModelConfig(**TINY, num_classes=3))
    generator.eval()
    with torch.no_grad():
        for norm in (m for m in generator.modules() if isinstance(m, ConditionalBatchNorm2d)):
            norm.shift.weight.normal_()  # distinct classes, as training makes them
        z = torch.randn(1, 16).expand(3, -1)
        images = generator(z, torch.tensor([0, 1, 2]))
    assert images.shape == (3, 1, 16, 16)
    assert not torch.allclose(images[0], images[1]) and not torch.allclose(images[1], images[2])
    with pytest.raises(ValueError, match="class-conditional"):
        generator(z)


def test_projection_discriminator_adds_the_class_term_only_for_known_labels():
    torch.manual_seed(0)
    _, discriminator = build_models(ModelConfig(**TINY, num_classes=2))
    discriminator.eval()
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        plain = discriminator(x)
        labelled = discriminator(x, torch.tensor([-1, 0, 1]))
        trunk = discriminator.trunk(x)
        expected = plain[1:] + (discriminator.embed(torch.tensor([0, 1])) * trunk[1:]).sum(1)
    assert torch.equal(labelled[0], plain[0])  # -1: class unknown, the unconditional logit
    assert torch.allclose(labelled[1:], expected, atol=1e-6)


def test_generate_block_of_a_class_is_deterministic_and_checks_the_class():
    torch.manual_seed(0)
    generator = build_models(ModelConfig(**TINY, num_classes=2))[0].eval()
    first = generate_block(generator, seed=3, block=0, block_size=4, class_index=1)
    assert torch.equal(first, generate_block(generator, seed=3, block=0, block_size=4, class_index=1))
    for bad in (None, 2, -1):
        with pytest.raises(ValueError, match="class index"):
            generate_block(generator, seed=3, block=0, block_size=4, class_index=bad)
    unconditional = build_models(ModelConfig(**TINY))[0].eval()
    with pytest.raises(ValueError, match="class index"):
        generate_block(unconditional, seed=3, block=0, block_size=4, class_index=0)
