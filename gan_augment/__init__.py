"""gan-augment: DCGAN generators and discriminator features from unlabeled image stores.

The package is grouped by pipeline stage; an image's way reads top to bottom:

    io/        fsspec URLs, retries, atomic writes, Parquet plumbing, progress
    scan/      listing, header probes, manifests, `scan_store`, the decoded training cache
    gan/       Generator, Discriminator, losses, augmentation, checkpoints, sampling
    training/  the Trainer and its parts, `train`, `refresh_model`, DDP
    export/    `SyntheticDataset`, discriminator features, Parquet exports
    evaluate/  SWD, FID/KID, the few-label probe, `evaluate_model`

`config` and `layout` (the output paths) sit below them all, and `lazy` below those. The names below are the public
API; they are imported on first use (PEP 562), so that `import gan_augment` and a scan never
load torch.

Examples:
    >>> import gan_augment
    >>> gan_augment.ModelConfig(image_size=32, channels=1).image_size
    32
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gan_augment.lazy import lazy_exports

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "ModelConfig": "gan_augment.config",
    "TrainConfig": "gan_augment.config",
    "FeatureProtocol": "gan_augment.config",
    "ScanResult": "gan_augment.scan.manifest",
    "scan_store": "gan_augment.scan.store",
    "TrainedModel": "gan_augment.gan.checkpoint",
    "load_model": "gan_augment.gan.checkpoint",
    "TrainResult": "gan_augment.training.trainer",
    "train": "gan_augment.training.trainer",
    "SyntheticDataset": "gan_augment.export.synthetic",
    "BatchedConcatDataset": "gan_augment.export.concat",
    "Features": "gan_augment.export.features",
    "extract_features": "gan_augment.export.features",
    "ExportResult": "gan_augment.export.tables",
    "export_features": "gan_augment.export.tables",
    "export_samples": "gan_augment.export.tables",
}

__all__ = [
    "BatchedConcatDataset", "ExportResult", "FeatureProtocol", "Features", "ModelConfig", "ScanResult",
    "SyntheticDataset", "TrainConfig", "TrainResult", "TrainedModel", "__version__", "export_features",
    "export_samples", "extract_features", "load_model", "scan_store", "train",
]
assert set(__all__) == {"__version__", *_EXPORTS}

if TYPE_CHECKING:
    from gan_augment.config import FeatureProtocol, ModelConfig, TrainConfig
    from gan_augment.export.concat import BatchedConcatDataset
    from gan_augment.export.features import Features, extract_features
    from gan_augment.export.synthetic import SyntheticDataset
    from gan_augment.export.tables import ExportResult, export_features, export_samples
    from gan_augment.gan.checkpoint import TrainedModel, load_model
    from gan_augment.scan.manifest import ScanResult
    from gan_augment.scan.store import scan_store
    from gan_augment.training.trainer import TrainResult, train


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
