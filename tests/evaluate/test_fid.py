"""FID/KID through a given extractor module or a local Inception weights file: the FID
Inception's FID equals torchmetrics' (and so torch-fidelity's), anything else is named FD/KD."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import blob_tensor
from torch import nn

from gan_augment.evaluate.fid import extract_image_features, fid_kid, fid_kid_from_features
from gan_augment.evaluate.inception import FID_WEIGHTS, load_inception, resize_like_tensorflow1
from gan_augment.gan.pixels import to_model_range


class MeanPool(nn.Module):
    """A toy extractor: 4x4 average-pooled pixels, which records the input range it receives."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen = (float(images.min()), float(images.max()), images.dtype)
        return F.adaptive_avg_pool2d(images, 4).flatten(1)


def test_fid_kid_with_a_module_extractor():
    real, other = blob_tensor(80, seed=6), blob_tensor(80, seed=7)
    extractor = MeanPool().train()
    same = fid_kid(real, real, extractor, kid_subset_size=40)
    assert abs(same.fid) < 1e-8 and same.feature_dim == 16 and same.extractor == "MeanPool"
    assert (same.metric, same.kid_name) == ("FD", "KD")  # not the FID Inception: not called FID
    assert extractor.training  # the caller's module is left as it was
    near = fid_kid(real, other, extractor, kid_subset_size=40)
    far = fid_kid(real, (other.int() + 40).clamp(0, 255).to(torch.uint8), extractor, kid_subset_size=40)
    assert 0 < near.fid < far.fid and near.kid < far.kid and (far.num_real, far.num_fake) == (80, 80)
    assert fid_kid(to_model_range(real), to_model_range(other), extractor, kid_subset_size=40) == near
    probe = MeanPool().eval()  # in eval mode and on the device already: used as it is
    fid_kid(real[:4], other[:4], probe)
    low, high, dtype = probe.seen
    assert -1.0 <= low < high <= 1.0 and dtype == torch.float32  # images in [-1, 1], float32


def test_fid_without_an_extractor_says_how_to_give_one(tmp_path):
    images = blob_tensor(4)
    with pytest.raises(ValueError, match="FID Inception weights .pt_inception-2015-12-05-6726825d.pth"):
        fid_kid(images, images, None)
    with pytest.raises(FileNotFoundError, match="no Inception-v3 weights at .*nothing is downloaded"):
        fid_kid(images, images, str(tmp_path / "missing.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(ValueError, match="not a state dict of an Inception-v3 for FID .*has 2 classes, expected 1008"):
        load_inception(wrong)
    with pytest.raises(ValueError, match="at least 2"):
        fid_kid(images[:1], images, MeanPool())


def test_resize_like_tensorflow1_samples_at_i_times_in_over_out():
    row = torch.tensor([0.0, 10.0, 30.0]).view(1, 1, 1, 3)
    # out pixel i samples x = i * 3 / 6 = 0, .5, 1, 1.5, 2, 2.5 (the last clamps to the border)
    out = resize_like_tensorflow1(row.expand(1, 1, 2, 3), (4, 6))
    assert out.shape == (1, 1, 4, 6)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([0.0, 5.0, 10.0, 20.0, 30.0, 30.0]))
    assert torch.equal(out[0, 0, 0], out[0, 0, 3])  # constant along y
    same = torch.rand(2, 3, 5, 7)
    assert torch.equal(resize_like_tensorflow1(same, (5, 7)), same)


def write_random_inception(path: str, classes: int, aux_logits: bool, seed: int = 0) -> str:
    """A state dict of the given Inception-v3 layout with random values (nothing downloaded):
    He-scaled convolutions keep activations near 1 through the 90-odd layers, and random
    batch-norm statistics make every normalisation count."""
    from torchvision.models import inception_v3

    g = torch.Generator().manual_seed(seed)
    state = inception_v3(weights=None, num_classes=classes, aux_logits=aux_logits, init_weights=False).state_dict()
    for name, value in state.items():
        if name.endswith("conv.weight") or name.startswith("fc.") or name.endswith("fc.weight"):
            fan_in = value[0].numel() if value.ndim > 1 else 1
            value.copy_(torch.randn(value.shape, generator=g) * math.sqrt(2.0 / fan_in))
        elif name.endswith(("bn.weight", "bn.running_var")):
            value.copy_(torch.rand(value.shape, generator=g) + 0.5)
        elif name.endswith(("bn.bias", "bn.running_mean")):
            value.copy_(torch.randn(value.shape, generator=g) * 0.1)
    torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def fid_inception_weights(tmp_path_factory) -> str:
    """A file in the layout of pytorch-fid's pt_inception-2015-12-05 (1008 classes, no auxiliary
    head), random values."""
    return write_random_inception(str(tmp_path_factory.mktemp("fid") / "pt_inception_random.pth"), 1008, False)


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory) -> str:
    """A state dict of a randomly initialised torchvision Inception-v3 (nothing is downloaded)."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("inception") / "inception_random.pth")
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    return path


def check_fid_equals_torchmetrics(weights: str, real: torch.Tensor, fake: torch.Tensor) -> None:
    """Our FID of uint8 `real` and `fake` with the FID Inception in `weights` equals torchmetrics'
    FrechetInceptionDistance with the same file, to 1e-3 relative; the features themselves agree
    to float32 rounding. antialias=False is torchmetrics' resize of the original FID (its default,
    antialiased resize is its own variant)."""
    fid_module = pytest.importorskip("torchmetrics.image.fid", reason="torchmetrics is not installed")
    pytest.importorskip("torch_fidelity", reason="torch-fidelity (torchmetrics' Inception) is not installed")
    extractor = load_inception(weights)
    assert extractor.metric == "FID" and extractor.name == os.path.basename(weights)
    ours_real, ours_fake = (extract_image_features(extractor, images) for images in (real, fake))
    ours = fid_kid_from_features(ours_real, ours_fake, extractor.name, kid_subset_size=len(real), metric="FID")
    metric = fid_module.FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=weights, antialias=False)
    with torch.no_grad():
        theirs_real = metric.inception(real[:2]).double().numpy()
    np.testing.assert_allclose(ours_real[:2], theirs_real, rtol=1e-4, atol=1e-4 * np.abs(theirs_real).max())
    metric.update(real, real=True)
    metric.update(fake, real=False)
    theirs = float(metric.compute())
    assert ours.metric == "FID" and ours.fid > 0
    assert abs(ours.fid - theirs) <= 1e-3 * abs(theirs), (ours.fid, theirs)


def test_fid_inception_layout_gives_the_fid_of_torchmetrics(fid_inception_weights):
    real = blob_tensor(4, channels=3, seed=10)
    fake = (blob_tensor(4, channels=3, seed=11).int() + 30).clamp(0, 255).to(torch.uint8)
    check_fid_equals_torchmetrics(fid_inception_weights, real, fake)


def real_fid_weights() -> str | None:
    """The real FID Inception file: $GAN_AUGMENT_FID_WEIGHTS, or where pytorch-fid or torchmetrics
    left it in the torch hub cache; None when absent (it is never downloaded)."""
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    for path in (os.environ.get("GAN_AUGMENT_FID_WEIGHTS"), os.path.join(folder, FID_WEIGHTS),
                 os.path.join(folder, "weights-inception-2015-12-05-6726825d.pth")):
        if path and os.path.isfile(path):
            return path
    return None


@pytest.mark.skipif(real_fid_weights() is None,
                    reason=f"the FID Inception weights file is absent (set GAN_AUGMENT_FID_WEIGHTS to {FID_WEIGHTS}, "
                           "or keep it in the torch hub cache); nothing is downloaded")
def test_real_fid_inception_weights_give_the_fid_of_torchmetrics():
    real = blob_tensor(6, channels=3, seed=12)
    fake = (blob_tensor(6, channels=3, seed=13).int() + 30).clamp(0, 255).to(torch.uint8)
    check_fid_equals_torchmetrics(real_fid_weights(), real, fake)


def test_torchvision_weights_give_its_pool3_features_named_fd_not_fid(inception_weights):
    from torchvision.models import inception_v3
    from torchvision.transforms import v2

    images = blob_tensor(3, channels=3, seed=8)
    extractor = load_inception(inception_weights)
    with torch.no_grad():
        ours = extractor(to_model_range(images))
        # torchvision's own pipeline: [0, 1] -> 299x299 -> ImageNet normalisation -> the network
        # with transform_input=True (as its pretrained weights set), up to the pooled features.
        network = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
        network.load_state_dict(torch.load(inception_weights, weights_only=True))
        network.fc = nn.Identity()
        prepare = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Resize((299, 299), antialias=False),
                              v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        expected = network.eval()(prepare(images))
    assert ours.shape == (3, 2048)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)
    result = fid_kid(images[:2], blob_tensor(2, channels=1, seed=9).expand(-1, 3, -1, -1), inception_weights)
    assert result.feature_dim == 2048 and np.isfinite(result.fid)
    assert (result.metric, result.kid_name) == ("FD", "KD")
    assert result.extractor == "torchvision Inception-v3 ImageNet, inception_random.pth"
