"""FID and KID of two image sets in the feature space of an extractor the caller provides: the
FID Inception loaded from a local weights file (`inception`), or any `nn.Module`. Only the FID
Inception's distances are called FID and KID; any other extractor's are FD and KD (a Frechet
and a kernel distance in its feature space), which no published FID can be compared with.
Nothing is downloaded at run time.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gan_augment.evaluate.inception import FD, FID, INCEPTION_HELP, load_inception
from gan_augment.evaluate.metrics import as_signed, check_images, frechet_distance, kernel_inception_distance
from gan_augment.gan.models import inference_copy


@dataclass(frozen=True)
class FidKid:
    """FID and KID of two image sets under one feature extractor.

    Attributes:
        fid: Frechet distance of the feature Gaussians; lower is closer.
        kid, kid_std: KID mean and spread over subsets.
        num_real, num_fake: images in each set.
        feature_dim: width of the extractor's features.
        extractor: what made the features (a weights file's name or the module's class).
        metric: "FID" when the extractor is the FID Inception (then `fid` and `kid` are FID and
            KID as published), else "FD" (a Frechet distance, and KD, in another feature space).
    """

    fid: float
    kid: float
    kid_std: float
    num_real: int
    num_fake: int
    feature_dim: int
    extractor: str
    metric: str

    @property
    def kid_name(self) -> str:
        """What `kid` is called: KID in the FID Inception's features, KD in any other."""
        return "KID" if self.metric == FID else "KD"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_extractor(
    extractor: nn.Module | str | os.PathLike[str] | None, storage_options: dict[str, Any] | None = None
) -> nn.Module:
    """`extractor` itself when it is a module, else the Inception-v3 in that weights file
    (`inception.load_inception`: the FID Inception, or torchvision's, reported as FD).

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
        extractor: the path/URL of the FID Inception weights (`pt_inception-2015-12-05-6726825d.pth`:
            FID as published), of torchvision's Inception-v3 weights (reported as FD), or an
            `nn.Module` mapping float32 images in [-1, 1] to (B, d) features (FD, unless the
            module has the attribute `metric = "FID"`).
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
                                 kid_subset_size=kid_subset_size, seed=seed, metric=extractor_metric(module))


def fid_kid_from_features(feats_real: np.ndarray, feats_fake: np.ndarray, extractor: str, *,
                          kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0,
                          metric: str = FD) -> FidKid:
    """`FidKid` of two (N, d) feature arrays already extracted (e.g. one reference set compared
    with several others); `metric` is "FID" only for the FID Inception's features
    (`extractor_metric`)."""
    fid = frechet_distance(feats_real.mean(0), np.cov(feats_real, rowvar=False),
                           feats_fake.mean(0), np.cov(feats_fake, rowvar=False))
    kid, kid_std = kernel_inception_distance(feats_real, feats_fake, subsets=kid_subsets,
                                             subset_size=kid_subset_size, seed=seed)
    return FidKid(fid, kid, kid_std, len(feats_real), len(feats_fake), feats_real.shape[1], extractor, metric)


def extractor_name(module: nn.Module) -> str:
    """How a feature extractor is recorded: its weights file's name, else its class name."""
    return getattr(module, "name", None) or type(module).__name__


def extractor_metric(module: nn.Module) -> str:
    """What an extractor's Frechet distance is called: FID for the FID Inception (a module whose
    `metric` attribute is "FID"), FD for any other, whose distances no published FID matches."""
    return FID if getattr(module, "metric", None) == FID else FD
