"""gan-augment: DCGAN generators and discriminator features from unlabeled image stores."""

__version__ = "0.1.0"

from gan_augment.config import FeatureProtocol, ModelConfig, TrainConfig  # noqa: E402
from gan_augment.export.features import Features, extract_features  # noqa: E402
from gan_augment.export.synthetic import SyntheticDataset  # noqa: E402
from gan_augment.export.tables import ExportResult, export_features, export_samples  # noqa: E402
from gan_augment.gan.checkpoint import TrainedModel, load_model  # noqa: E402
from gan_augment.scan.store import ScanResult, scan_store  # noqa: E402
from gan_augment.training.trainer import TrainResult, train  # noqa: E402

__all__ = [
    "ExportResult", "FeatureProtocol", "Features", "ModelConfig", "ScanResult", "SyntheticDataset", "TrainConfig",
    "TrainResult", "TrainedModel", "__version__", "export_features", "export_samples", "extract_features",
    "load_model", "scan_store", "train",
]
