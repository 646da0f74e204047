"""Inception-v3 feature extractors for FID/KID, loaded from a local weights file; nothing is
downloaded.

FID is defined by one network: the TensorFlow Inception graph of 2015-12-05 that Heusel et al.
(2017) published with their FID code. Its PyTorch port, `pt_inception-2015-12-05-6726825d.pth`
(pytorch-fid; torch-fidelity's `weights-inception-2015-12-05-6726825d.pth` has the same layout
and is what torchmetrics loads), is torchvision's Inception-v3 in shape, but not in function:

- the pooling branches of the Mixed_5*, Mixed_6b-e and Mixed_7b blocks average without the
  padded zeros (TensorFlow's `avg_pool`), and Mixed_7c's pooling branch takes a max;
- its classifier has 1008 classes, not 1000;
- it takes pixel values `(x - 128) / 128`, resized to 299x299 by TensorFlow 1.x's bilinear resize
  (no half-pixel offset, no antialiasing), not ImageNet-normalised images.

`load_inception` tells the two files apart by the classifier's shape. Only the FID Inception's
distances are called FID; torchvision's ImageNet classifier (`inception_v3_google-*.pth`)
remains available as an extractor whose distances are reported as FD ("Frechet distance") and
KD, since they cannot be compared with any published FID.
"""

from __future__ import annotations

import io
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_augment.io.fsio import read_bytes, redact_url

FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
TORCHVISION_WEIGHTS = "inception_v3_google-0cc3c7bd.pth"
INCEPTION_HELP = (f"give a feature extractor: an nn.Module, or a local file of the FID Inception weights "
                  f"({FID_WEIGHTS}, from pytorch-fid's releases on GitHub, or torch-fidelity's "
                  f"weights-inception-2015-12-05-6726825d.pth; the torch hub cache holds it where pytorch-fid or "
                  f"torchmetrics ran before: ~/.cache/torch/hub/checkpoints/); torchvision's ImageNet weights "
                  f"({TORCHVISION_WEIGHTS}) are accepted too, reported as FD/KD, not FID; nothing is downloaded")

# The metric names a FidKid reports: FID/KID only in the FID Inception's feature space.
FID, FD = "FID", "FD"
IMAGENET_CLASSES = 1000
# ImageNet statistics of torchvision's classification transforms.
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def resize_like_tensorflow1(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize as TensorFlow 1.x's `resize_bilinear(align_corners=False)`, the resize in
    the original FID graph: output pixel i samples input coordinate i * in / out (no half-pixel
    offset, no antialiasing), neighbours clamped at the border.

    Args:
        images: (B, C, H, W) float images.
        size: (height, width) of the output.

    Returns:
        (B, C, height, width) images of the same dtype.
    """

    def source(in_size: int, out_size: int) -> tuple[Tensor, Tensor, Tensor]:
        # float32 coordinates, as TensorFlow computes them (resize_bilinear_op.cc)
        position = torch.arange(out_size, dtype=torch.float32, device=images.device) * (in_size / out_size)
        low = position.floor().long().clamp(max=in_size - 1)
        return low, (low + 1).clamp(max=in_size - 1), (position - low).to(images.dtype)

    y0, y1, fy = source(images.shape[2], size[0])
    x0, x1, fx = source(images.shape[3], size[1])
    top, bottom = images[:, :, y0], images[:, :, y1]  # (B, C, height, W)
    rows = top + (bottom - top) * fy.view(1, 1, -1, 1)
    left, right = rows[..., x0], rows[..., x1]  # (B, C, height, width)
    return left + (right - left) * fx


class FidInceptionFeatures(nn.Module):
    """The FID Inception as a feature extractor: images in [-1, 1] (1 or 3 channels, any size) ->
    the 2048-d pool3 features that FID is defined on.

    The preprocessing is the FID graph's: pixel values in [0, 255], TensorFlow 1.x's bilinear
    resize to 299x299, then (x - 128) / 128 (as torch-fidelity and torchmetrics'
    `FrechetInceptionDistance(antialias=False)` do). Grey images are repeated over 3 channels.
    """

    metric = FID

    def __init__(self, network: nn.Module, name: str = FID_WEIGHTS) -> None:
        super().__init__()
        network.fc = nn.Identity()  # the pooled (B, 2048) features instead of the logits
        self.network, self.name = network, name

    def forward(self, images: Tensor) -> Tensor:
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images  # (B, 3, H, W)
        x = (x.float() + 1.0) * 127.5  # back to the pixel values the graph was fed
        x = resize_like_tensorflow1(x, (299, 299))
        return self.network((x - 128.0) / 128.0)  # (B, 2048)


class TorchvisionInceptionFeatures(nn.Module):
    """torchvision's Inception-v3 ImageNet classifier as a feature extractor: images in [-1, 1]
    -> its 2048-d pooled features. Distances in this space are not FID (see the module's
    docstring); they are reported as FD/KD.

    Images are resized to 299x299 (bilinear) and normalised with the ImageNet statistics, as
    torchvision's weights expect; `transform_input=True` then maps them back to the [-1, 1]
    input that the ported Google weights were trained on, exactly as torchvision does.
    """

    metric = FD

    def __init__(self, network: nn.Module, name: str = TORCHVISION_WEIGHTS) -> None:
        super().__init__()
        network.fc = nn.Identity()
        self.network, self.name = network, f"torchvision Inception-v3 ImageNet, {name}"
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images  # (B, 3, H, W)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)  # (B, 3, 299, 299)
        x = ((x + 1.0) / 2.0 - self.mean) / self.std
        return self.network(x)  # (B, 2048)


def load_inception(weights: str | os.PathLike[str],
                   storage_options: dict[str, Any] | None = None) -> FidInceptionFeatures | TorchvisionInceptionFeatures:
    """The Inception-v3 feature extractor whose state dict is in `weights` (a local path or an
    fsspec URL), loaded with `weights_only=True`; nothing is downloaded.

    A file with a 1008-class head (`pt_inception-2015-12-05-6726825d.pth` or torch-fidelity's
    copy) gives the FID Inception; one with torchvision's 1000-class head
    (`inception_v3_google-0cc3c7bd.pth`) gives `TorchvisionInceptionFeatures`, reported as FD.

    Raises:
        FileNotFoundError: no file at `weights`.
        ValueError: the file is neither of the two state dicts.
    """
    url = os.fspath(weights)
    name = os.path.basename(url.rstrip("/"))
    try:
        data = read_bytes(url, storage_options)
    except FileNotFoundError:
        raise FileNotFoundError(f"no Inception-v3 weights at {redact_url(url)}; {INCEPTION_HELP}") from None
    # torchvision is imported here, where an Inception is built, not with the evaluate stage
    from torchvision.models import inception_v3

    from gan_augment.evaluate.fid_network import FID_CLASSES, build_fid_inception

    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        head = state.get("fc.weight") if isinstance(state, dict) else None
        classes = head.shape[0] if isinstance(head, Tensor) and head.ndim == 2 else None
        if classes == FID_CLASSES:
            network = build_fid_inception()
            network.load_state_dict(state)
            return FidInceptionFeatures(network.eval(), name=name)
        if classes != IMAGENET_CLASSES:
            raise ValueError(f"its classifier fc.weight has {classes} classes, expected {FID_CLASSES} (the FID "
                             f"Inception) or {IMAGENET_CLASSES} (torchvision's ImageNet Inception-v3)")
        # init_weights=False: the state dict overwrites every weight, so skip the slow init.
        network = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
        network.load_state_dict(state)
        return TorchvisionInceptionFeatures(network.eval(), name=name)
    except Exception as exc:  # noqa: BLE001 - any failure here means "not these weights"
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(f"{redact_url(url)} is not a state dict of an Inception-v3 for FID "
                         f"({type(exc).__name__}: {reason}); {INCEPTION_HELP}") from exc
