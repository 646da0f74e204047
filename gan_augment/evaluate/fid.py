"""FID and KID of two image sets in the feature space of an extractor the caller provides: any
`nn.Module`, or torchvision's Inception-v3 loaded from a local weights file. Nothing is
downloaded at run time.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_augment.evaluate.metrics import as_signed, check_images, frechet_distance, kernel_inception_distance
from gan_augment.gan.models import inference_copy
from gan_augment.io.fsio import read_bytes, redact_url


@dataclass(frozen=True)
class FidKid:
    """FID and KID of two image sets under one feature extractor.

    Attributes:
        fid: Frechet distance of the feature Gaussians; lower is closer.
        kid, kid_std: KID mean and spread over subsets.
        num_real, num_fake: images in each set.
        feature_dim: width of the extractor's features.
        extractor: what made the features (a weights file's name or the module's class).
    """

    fid: float
    kid: float
    kid_std: float
    num_real: int
    num_fake: int
    feature_dim: int
    extractor: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ImageNet statistics of torchvision's classification transforms.
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
INCEPTION_HELP = ("give a feature extractor: an nn.Module, or the local file of torchvision's Inception-v3 "
                  "ImageNet weights (inception_v3_google-0cc3c7bd.pth, from "
                  "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth); nothing is downloaded")


class InceptionFeatures(nn.Module):
    """torchvision's Inception-v3 as a feature extractor: images in [-1, 1] (1 or 3 channels, any
    size) -> the 2048-d pool3 features that FID uses.

    Images are resized to 299x299 (bilinear) and normalised with the ImageNet statistics, as
    torchvision's weights expect; `transform_input=True` then maps them back to the [-1, 1]
    input that the ported Google weights were trained on, exactly as torchvision does.
    """

    def __init__(self, network: nn.Module, name: str = "inception_v3") -> None:
        super().__init__()
        network.fc = nn.Identity()  # the pooled (B, 2048) features instead of the logits
        self.network, self.name = network, name
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images  # (B, 3, H, W)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)  # (B, 3, 299, 299)
        x = ((x + 1.0) / 2.0 - self.mean) / self.std
        return self.network(x)  # (B, 2048)


def load_inception(weights: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> InceptionFeatures:
    """torchvision's Inception-v3 with the state dict in `weights` (a local path or fsspec URL),
    loaded with `weights_only=True`; nothing is downloaded.

    Raises:
        FileNotFoundError: no file at `weights`.
        ValueError: the file is not an Inception-v3 state dict.
    """
    from torchvision.models import inception_v3

    url = os.fspath(weights)
    try:
        data = read_bytes(url, storage_options)
    except FileNotFoundError:
        raise FileNotFoundError(f"no Inception-v3 weights at {redact_url(url)}; {INCEPTION_HELP}") from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        # init_weights=False: the state dict overwrites every weight, so skip the slow init.
        network = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
        network.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - any failure here means "not these weights"
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(f"{redact_url(url)} is not a state dict of torchvision's Inception-v3 "
                         f"({type(exc).__name__}: {reason}); {INCEPTION_HELP}") from exc
    return InceptionFeatures(network.eval(), name=os.path.basename(url.rstrip("/")))


def resolve_extractor(
    extractor: nn.Module | str | os.PathLike[str] | None, storage_options: dict[str, Any] | None = None
) -> nn.Module:
    """`extractor` itself when it is a module, else Inception-v3 loaded from that weights file.

    Raises:
        ValueError: no extractor given (the message says how to give one).
    """
    if extractor is None:
        raise ValueError(f"FID/KID need a feature extractor: {INCEPTION_HELP}")
    if isinstance(extractor, nn.Module):
        return extractor
    return load_inception(extractor, storage_options)


@torch.no_grad()
def extract_image_features(extractor: nn.Module, images: Tensor, batch_size: int = 64,
                           device: str | torch.device = "cpu") -> np.ndarray:
    """(N, d) float64 features of (N, C, H, W) images (uint8, or float in [-1, 1]); the
    extractor runs in eval mode without grad and receives float32 images in [-1, 1]."""
    module = inference_copy(extractor, torch.device(device))
    out = [module(as_signed(images[start:start + batch_size]).to(device)).flatten(1).double().cpu()
           for start in range(0, len(images), batch_size)]  # [(B, d)]
    return torch.cat(out).numpy()


def fid_kid(
    real: Tensor,
    fake: Tensor,
    extractor: nn.Module | str | os.PathLike[str] | None,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    storage_options: dict[str, Any] | None = None,
) -> FidKid:
    """FID and KID between two image sets in the feature space of `extractor`.

    Args:
        real, fake: (N, C, H, W) images, uint8 or float in [-1, 1].
        extractor: an `nn.Module` mapping float32 images in [-1, 1] to (B, d) features, or the
            path/URL of torchvision's Inception-v3 weights (pool3 features, the usual FID).
        batch_size: images per extractor forward.
        device: where the extractor runs.
        kid_subsets, kid_subset_size, seed: see `kernel_inception_distance`.
        storage_options: fsspec options for a weights URL.

    Raises:
        ValueError: no extractor, bad weights, or fewer than 2 images in a set.
        FileNotFoundError: no weights file at the given path.
    """
    check_images(real, "real", min_count=2)
    check_images(fake, "fake", min_count=2)
    module = resolve_extractor(extractor, storage_options)
    feats_real, feats_fake = (extract_image_features(module, images, batch_size, device) for images in (real, fake))
    return fid_kid_from_features(feats_real, feats_fake, extractor_name(module), kid_subsets=kid_subsets,
                                 kid_subset_size=kid_subset_size, seed=seed)


def fid_kid_from_features(feats_real: np.ndarray, feats_fake: np.ndarray, extractor: str, *,
                          kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0) -> FidKid:
    """`FidKid` of two (N, d) feature arrays already extracted (e.g. one reference set compared
    with several others)."""
    fid = frechet_distance(feats_real.mean(0), np.cov(feats_real, rowvar=False),
                           feats_fake.mean(0), np.cov(feats_fake, rowvar=False))
    kid, kid_std = kernel_inception_distance(feats_real, feats_fake, subsets=kid_subsets,
                                             subset_size=kid_subset_size, seed=seed)
    return FidKid(fid, kid, kid_std, len(feats_real), len(feats_fake), feats_real.shape[1], extractor)


def extractor_name(module: nn.Module) -> str:
    """How a feature extractor is recorded: its weights file's name, else its class name."""
    return getattr(module, "name", None) or type(module).__name__
