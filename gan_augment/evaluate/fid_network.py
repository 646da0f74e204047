"""The FID Inception's network: torchvision's Inception-v3 with the blocks of the TensorFlow
graph that defines FID (pytorch-fid's `FIDInceptionA`, `FIDInceptionC`, `FIDInceptionE_1/2`;
torch-fidelity's `FeatureExtractorInceptionV3`). Separate from `inception` so that importing the
evaluate stage does not load torchvision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.inception import (
    BasicConv2d,
    Inception3,
    InceptionA,
    InceptionAux,
    InceptionB,
    InceptionC,
    InceptionD,
)
from torchvision.models.inception import InceptionE as _TorchvisionInceptionE

# The FID graph's classifier: 1008 classes (ImageNet's 1000 and 8 unused), the mark of its weights files.
FID_CLASSES = 1008


def _tf_avg_pool(x: Tensor) -> Tensor:
    # TensorFlow's SAME-padded average pool divides by the number of real pixels in the window.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _FidInceptionA(InceptionA):
    """torchvision's InceptionA with TensorFlow's average pool (pytorch-fid's FIDInceptionA)."""

    def _forward(self, x: Tensor) -> list[Tensor]:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return [self.branch1x1(x), branch5x5, branch3x3dbl, self.branch_pool(_tf_avg_pool(x))]


class _FidInceptionC(InceptionC):
    """torchvision's InceptionC with TensorFlow's average pool (pytorch-fid's FIDInceptionC)."""

    def _forward(self, x: Tensor) -> list[Tensor]:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            branch7x7dbl = layer(branch7x7dbl)
        return [self.branch1x1(x), branch7x7, branch7x7dbl, self.branch_pool(_tf_avg_pool(x))]


class _FidInceptionE(_TorchvisionInceptionE):
    """torchvision's InceptionE with TensorFlow's average pool, or, where `max_pool` is set (the
    last block, Mixed_7c), a 3x3 max pool: the FID graph has one there (pytorch-fid's
    FIDInceptionE_1 and FIDInceptionE_2)."""

    max_pool = False

    def _forward(self, x: Tensor) -> list[Tensor]:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        return [self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(pooled)]


def build_fid_inception() -> Inception3:
    """The FID Inception's network with uninitialised weights: the layout of `pt_inception-*.pth`
    (torchvision's parameter names, 1008 classes, no auxiliary head)."""
    network = Inception3(num_classes=FID_CLASSES, aux_logits=False, transform_input=False, init_weights=False,
                         inception_blocks=[BasicConv2d, _FidInceptionA, InceptionB, _FidInceptionC, InceptionD,
                                           _FidInceptionE, InceptionAux])
    network.Mixed_7c.max_pool = True
    return network
