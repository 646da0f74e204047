import pytest
import torch

from gan_augment.gan.augment import color, cutout, diff_augment, random_view, translation


def _images():
    return torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.mark.parametrize("policies", [(), ("color",), ("translation",), ("cutout",), ("color", "translation", "cutout")])
def test_shape_and_determinism(policies):
    x = _images()
    first = diff_augment(x, policies, torch.Generator().manual_seed(0))
    second = diff_augment(x, policies, torch.Generator().manual_seed(0))
    assert first.shape == x.shape and torch.equal(first, second)


def test_empty_policy_is_identity():
    x = _images()
    assert diff_augment(x, ()) is x


def test_translation_shifts_content_and_pads_with_zeros():
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 6:10, 6:10] = 1.0
    shifted = translation(x, torch.Generator().manual_seed(0))
    assert torch.allclose(shifted.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))  # the square stays inside
    moved = (shifted != x).flatten(1).any(dim=1)
    assert moved.float().mean() > 0.5  # most of 64 images moved (shift 0 has probability 1/25)
    edge = translation(torch.ones(64, 1, 16, 16), torch.Generator().manual_seed(0))
    assert (edge == 0).any() and set(edge.unique().tolist()) <= {0.0, 1.0}


def test_cutout_zeroes_a_half_side_square():
    x = torch.ones(32, 1, 16, 16)
    out = cutout(x, torch.Generator().manual_seed(0))
    zeroed = (out == 0).flatten(1).sum(dim=1)
    assert zeroed.max() <= 64 and zeroed.min() >= 16  # 8x8 square, clipped at the border


def test_color_is_per_sample():
    x = torch.zeros(16, 3, 8, 8)
    out = color(x, torch.Generator().manual_seed(0))
    means = out.mean(dim=(1, 2, 3))
    assert means.std() > 0.05 and means.abs().max() <= 0.5


def test_gradients_flow_through_every_policy():
    x = _images().requires_grad_(True)
    diff_augment(x, ("color", "translation", "cutout"), torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None and torch.count_nonzero(x.grad) > 0


def test_random_view_is_seeded_bounded_and_differentiable():
    images = _images().requires_grad_(True)
    first = random_view(images, torch.Generator().manual_seed(3))
    again = random_view(images, torch.Generator().manual_seed(3))
    other = random_view(images, torch.Generator().manual_seed(4))
    assert first.shape == images.shape and torch.equal(first, again) and not torch.equal(first, other)
    assert first.min() >= -1 and first.max() <= 1
    first.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_random_view_keeps_a_digit_recognisable_and_fills_with_background():
    # A bright square in the middle of a dark image stays mostly inside the view (crops keep at
    # least half the area), and what comes in from outside the image is the darkest value.
    images = torch.full((64, 1, 16, 16), -1.0)
    images[:, :, 6:10, 6:10] = 1.0
    views = random_view(images, torch.Generator().manual_seed(0))
    bright = (views > 0).flatten(1).sum(1)
    assert (bright > 0).float().mean() >= 0.9
    assert views.min() == -1.0


def test_a_flipped_view_is_the_same_view_mirrored_and_leaves_the_others_as_they_were():
    # The flip's draw comes after the view's own, so with the same generator each flipped view is
    # the unflipped one mirrored left to right, and about half the views are flipped.
    images = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    plain = random_view(images, torch.Generator().manual_seed(5))
    flipped = random_view(images, torch.Generator().manual_seed(5), flip=True)
    mirrored = torch.tensor([torch.allclose(f, p.flip(-1), atol=1e-5) for f, p in zip(flipped, plain)])
    same = torch.tensor([torch.equal(f, p) for f, p in zip(flipped, plain)])
    assert bool((mirrored ^ same).all())
    assert 16 <= int(mirrored.sum()) <= 48
