"""FID/KID through a given extractor module or a local Inception-v3 weights file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import blob_tensor
from torch import nn

from gan_augment.evaluate.fid import fid_kid, load_inception
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
    with pytest.raises(ValueError, match="inception_v3_google-0cc3c7bd.pth"):
        fid_kid(images, images, None)
    with pytest.raises(FileNotFoundError, match="no Inception-v3 weights at .*nothing is downloaded"):
        fid_kid(images, images, str(tmp_path / "missing.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(ValueError, match="not a state dict of torchvision's Inception-v3"):
        load_inception(wrong)
    with pytest.raises(ValueError, match="at least 2"):
        fid_kid(images[:1], images, MeanPool())


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory) -> str:
    """A state dict of a randomly initialised torchvision Inception-v3 (nothing is downloaded)."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("inception") / "inception_random.pth")
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    return path


def test_inception_weights_file_gives_torchvisions_pool3_features(inception_weights):
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
    assert result.feature_dim == 2048 and result.extractor == "inception_random.pth" and np.isfinite(result.fid)
