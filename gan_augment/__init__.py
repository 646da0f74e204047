"""gan-augment: DCGAN generators and discriminator features from unlabeled image stores."""

__version__ = "0.1.0"

from gan_augment.checkpoint import TrainedModel, load_model  # noqa: E402
from gan_augment.config import FeatureProtocol, ModelConfig, TrainConfig  # noqa: E402
from gan_augment.export import ExportResult, export_features, export_samples  # noqa: E402
from gan_augment.features import Features, extract_features  # noqa: E402
from gan_augment.store import ScanResult, scan_store  # noqa: E402
from gan_augment.synthetic import SyntheticDataset  # noqa: E402
from gan_augment.train import TrainResult, train  # noqa: E402

__all__ = [
    "ExportResult", "FeatureProtocol", "Features", "ModelConfig", "ScanResult", "SyntheticDataset", "TrainConfig",
    "TrainResult", "TrainedModel", "__version__", "export_features", "export_samples", "extract_features",
    "load_model", "scan_store", "train",
]
