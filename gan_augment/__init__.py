"""gan-augment: DCGAN generators and discriminator features from unlabeled image stores."""

__version__ = "0.1.0"

from gan_augment.checkpoint import TrainedModel, load_model  # noqa: E402
from gan_augment.config import ModelConfig, TrainConfig  # noqa: E402
from gan_augment.store import ScanResult, scan_store  # noqa: E402
from gan_augment.train import TrainResult, train  # noqa: E402

__all__ = ["ModelConfig", "ScanResult", "TrainConfig", "TrainResult", "TrainedModel", "load_model", "scan_store",
           "train", "__version__"]
