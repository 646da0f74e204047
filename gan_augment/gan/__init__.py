"""The DCGAN and what acts on its tensors, knowing nothing of stores or training loops: the
networks (`models`), their losses (`losses`), DiffAugment and contrastive views (`augment`),
the pixel convention (`pixels`), checkpoints, models and model cards on disk (`checkpoint`),
the determinism rule of synthetic samples (`sampling`), devices and PNG renderings.
"""

from gan_augment.gan.checkpoint import TrainedModel, load_model, read_model_card
from gan_augment.gan.devices import select_device
from gan_augment.gan.models import Discriminator, Generator, build_models
from gan_augment.gan.pixels import images_to_uint8, to_model_range
from gan_augment.gan.sampling import epoch_seed, generate_block, sample_seed

__all__ = ["Discriminator", "Generator", "TrainedModel", "build_models", "epoch_seed", "generate_block",
           "images_to_uint8", "load_model", "read_model_card", "sample_seed", "select_device", "to_model_range"]
