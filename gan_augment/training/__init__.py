"""Training one dataset into a model: the `Trainer` loop and its parts (the step, the
checkpointed state, the model card, the batches), `train` as users call it, `refresh_model`
(train only when the data or the configs changed) and data-parallel training under torchrun.
"""

from gan_augment.training.refresh import RefreshResult, refresh_model
from gan_augment.training.trainer import Trainer, TrainingDivergedError, TrainResult, resolve_steps, train

__all__ = ["RefreshResult", "TrainResult", "Trainer", "TrainingDivergedError", "refresh_model", "resolve_steps",
           "train"]
