"""The training loop: `Trainer.run` ties the parts of a run together (the step in step.py, the
state and its checkpoints in state.py, the real batches in batches.py, the samples and model card
in card.py), and `train()` builds the data cache and runs it."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.gan.checkpoint import save_model, write_model_card
from gan_augment.gan.devices import has_native_bf16, select_device
from gan_augment.gan.models import Generator, standing_statistics
from gan_augment.io.fsio import basename
from gan_augment.io.progress import Progress
from gan_augment.io.tables import read_near_copies
from gan_augment.layout import manifest_url, near_duplicates_url, validate_dataset_name
from gan_augment.layout import model_dir as model_dir_of
from gan_augment.scan.cache import ImageCache, build_cache
from gan_augment.training.batches import BatchSampler, RealBatches
from gan_augment.training.card import model_card, model_id, output_files, write_samples
from gan_augment.training.distributed import DistributedContext, ShardedBatchSampler
from gan_augment.training.finish import FINISH_BATCH
from gan_augment.training.labels import (
    UNLABELLED,
    cache_labels,
    discriminator_pool_features,
    labels_fingerprint,
    pseudo_labels,
)
from gan_augment.training.state import METRICS, Checkpoints, TrainingDivergedError, TrainingState
from gan_augment.training.step import TrainingStep

__all__ = ["Trainer", "TrainResult", "TrainingDivergedError", "auto_epochs", "effective_model_config",
           "resolve_steps", "train"]

log = logging.getLogger(__name__)


def auto_epochs(num_images: int, image_size: int = 32) -> float:
    """Training length when neither steps nor epochs is given, from the dataset's size and the
    image size: 512,000 real images seen at 32x32 and below (2,000 D steps of the default batch
    of 256, 1,000 G steps), (32 / image_size)**2 of that above (128,000 at 64x64: 500 D steps),
    and at least 5 passes over the data.

    A step's work grows with the pixel area (the convolutions; the channel count changes only
    the first and the last layer): one G step at 64x64x3 costs 5.7x the CPU time of one at
    32x32x1 (BENCHMARKS.md, "Automatic budget"), so at 64x64x3 the default training costs 1.4x
    the CPU time of 32x32x1's. For 4,000 images at 32x32 that is 128 epochs,
    where the few-label accuracy of D's features has flattened (BENCHMARKS.md). The budget is a
    step count, not a time: a GPU runs the same steps, and trains the same model, in seconds;
    pass `steps` or `epochs` to train longer there."""
    seen = 512_000 * min(1.0, (32 / image_size) ** 2)
    return max(5.0, seen / num_images)


def resolve_steps(config: TrainConfig, num_images: int, world_size: int = 1, image_size: int = 32) -> int:
    """Total G steps: `steps`, else `epochs` passes over the data, else `auto_epochs` for
    `num_images` images of `image_size` (a data-parallel step sees `world_size` batches, one
    per rank)."""
    if config.steps is not None:
        return config.steps
    epochs = config.epochs if config.epochs is not None else auto_epochs(num_images, image_size)
    return max(1, math.ceil(epochs * num_images / (config.batch_size * config.d_steps * world_size)))


def effective_model_config(model_config: ModelConfig, train_config: TrainConfig) -> ModelConfig:
    """The model config a run with `train_config` actually trains (and records in its card):
    wgan-gp swaps D's BatchNorm for LayerNorm, a contrastive loss adds a projection head."""
    if train_config.loss == "wgan-gp" and model_config.d_norm == "batch":
        # BatchNorm couples samples, which breaks the per-sample gradient penalty.
        log.info("loss wgan-gp: using d_norm='layer' instead of BatchNorm in D")
        model_config = dataclasses.replace(model_config, d_norm="layer")
    if train_config.contrastive_weight > 0 and model_config.projection_dim == 0:
        model_config = dataclasses.replace(model_config, projection_dim=128)
    return model_config


@dataclass
class TrainResult:
    """What a finished run returns.

    Attributes:
        model_dir: where model.pt, model.json, checkpoints/ and samples/ are.
        model_id: the model's id (`card.model_id`).
        dataset: the dataset name.
        steps: G steps trained in all, resumed ones included.
        num_images: images trained on.
        resumed_from: the step this run resumed from, or None.
        seconds: this run's training time.
        images_per_second: real images per second over this run's steps.
        metrics: the last metrics row (and seconds and img/s when this run trained).
        files: URLs of the outputs: samples, loss_curve, model, card.
    """

    model_dir: str
    model_id: str
    dataset: str
    steps: int
    num_images: int
    resumed_from: int | None
    seconds: float
    images_per_second: float
    metrics: dict[str, float]
    files: dict[str, str]


class Trainer:
    """Trains one DCGAN on a decoded image cache, writing everything under `model_dir`.

    Its parts: `state` (a `TrainingState`: what a run changes, and what a checkpoint holds),
    `checkpoints` (resume, save, roll back), `batches` (the real batches), `training_step`
    (a `TrainingStep`: one G step on the state); `run` is the loop that ties them together.

    With `labels` (one class index per cache image, -1 for an image without a label) and
    `classes` (their names), the model is class-conditional (`ModelConfig.num_classes`): G's
    BatchNorms are conditional, D is a projection discriminator, and once `pseudo_label_at` of
    the steps are done the unlabelled images get pseudo-labels (`labels.pseudo_labels`).
    """

    def __init__(
        self,
        cache: ImageCache,
        model_dir: str,
        model_config: ModelConfig,
        train_config: TrainConfig,
        *,
        dataset: str,
        source: str = "",
        storage_options: dict[str, Any] | None = None,
        callback: Callable[[dict[str, float]], None] | None = None,
        distributed: DistributedContext | None = None,
        labels: Tensor | None = None,
        classes: list[str] | None = None,
    ) -> None:
        if (labels is None) != (classes is None):
            raise ValueError("pass both labels (a class index per image) and classes (their names), or neither")
        if classes is not None:
            model_config = dataclasses.replace(model_config, num_classes=len(classes))
        elif model_config.num_classes:
            raise ValueError(f"num_classes={model_config.num_classes} needs labels: pass labels= (a labels file "
                             "with `--labels`)")
        model_config = effective_model_config(model_config, train_config)
        if train_config.finish_steps and (model_config.critic or model_config.num_classes):
            raise ValueError("finish_steps trains an unconditional G without a critic of its own: drop "
                             "ModelConfig.critic (or labels), or set finish_steps=0")
        self.classes, fingerprint = classes, cache.fingerprint
        if labels is not None:
            fingerprint = f"{cache.fingerprint}:{labels_fingerprint(classes, labels)}"
        # Data-parallel hooks (training/distributed.py); all of them are no-ops in one process.
        self.dist = distributed or DistributedContext()
        self.mc, self.tc, self.cache = model_config, train_config, cache
        self.model_dir, self.dataset, self.source = model_dir, dataset, source
        self.storage_options, self.callback = storage_options, callback
        self.model_id = model_id(dataset, fingerprint, model_config, train_config)
        self.device = select_device(train_config.device)
        # The recipe's steps, then those of the finish (training.finish), automatic by default.
        self.main_steps = resolve_steps(train_config, len(cache), self.dist.world_size, model_config.image_size)
        self.finish_steps = train_config.finish_steps_for(self.main_steps, model_config)
        self.total_steps = self.main_steps + self.finish_steps
        self.images_per_step = train_config.batch_size * train_config.d_steps * self.dist.world_size
        self.amp = train_config.amp and has_native_bf16(self.device)
        # oneDNN (CPU) and cuDNN both run convolutions fastest on NHWC tensors.
        channels_last = train_config.channels_last and self.device.type in ("cuda", "cpu")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

        resolved = dataclasses.replace(train_config, finish_steps=self.finish_steps)
        self.state = TrainingState.initial(model_config, resolved, self.device, self.memory_format)
        self.given_labels = labels
        if labels is not None:
            self.state.labels = labels.to(self.device).clone()
        self.checkpoints = Checkpoints(model_dir, model_config, train_config, fingerprint, dataset=dataset,
                                       device=self.device, storage_options=storage_options, distributed=self.dist)
        # The cache lives on the training device when it is a GPU, so a batch never crosses the bus.
        images = cache.images.to(self.device) if self.device.type == "cuda" else cache.images
        self.sampler = ShardedBatchSampler(len(cache), train_config.batch_size, train_config.seed, self.dist,
                                           images.device) if self.dist.enabled \
            else BatchSampler(len(cache), train_config.batch_size, train_config.seed, images.device)
        self.batches = RealBatches(images, self.sampler, self.device, memory_format=self.memory_format,
                                   flip_rng=self.state.rng if train_config.flip else None)
        self.training_step = TrainingStep(self.state, self.batches, train_config, device=self.device, amp=self.amp,
                                          distributed=self.dist,
                                          finish_from=self.main_steps if self.finish_steps else None)
        fixed = torch.Generator().manual_seed(train_config.seed + 1)
        # A conditional model's grid has one row of 8 samples per class, an unconditional one 8 x 8.
        rows = len(classes) if classes else 8
        self.fixed_noise = torch.randn(8 * rows, model_config.latent_dim, generator=fixed).to(self.device)  # (8R, Z)
        self.fixed_labels = torch.arange(rows, device=self.device).repeat_interleave(8) if classes else None
        self.pseudo_label_step = None
        if labels is not None and bool((labels == UNLABELLED).any()) and train_config.pseudo_label_at < 1.0:
            self.pseudo_label_step = round(train_config.pseudo_label_at * self.main_steps)
        self.resumed_from: int | None = None

    def run(self, resume: bool = True) -> TrainResult:
        """Train to `total_steps` (or the time budget), then write the samples, the model and its card.

        Args:
            resume: continue from the newest compatible checkpoint, if any.

        Raises:
            TrainingDivergedError: the losses stayed non-finite after every allowed rollback.
        """
        state, tc = self.state, self.tc
        self.resumed_from = self.checkpoints.resume(state, resume)
        state.start_ranks(self.dist, tc.seed)
        start_step, started = state.step, time.perf_counter()
        state.generator.train()
        state.discriminator.train()
        progress = Progress(f"train {self.dataset}", "step", total=self.total_steps, initial=state.step,
                            log_interval=0, enabled=self.dist.is_main)  # updated once per logging interval
        sums, count, window = torch.zeros(len(METRICS), device=self.device), 0, time.perf_counter()
        row = {key: values[-1] for key, values in state.history.items() if values}
        while state.step < self.total_steps:
            if state.step == self.pseudo_label_step:
                self.pseudo_label()
            sums += self.training_step()
            count += 1
            if tc.max_seconds is not None and self.dist.any(time.perf_counter() - started > tc.max_seconds,
                                                            self.device):  # all ranks stop together
                log.info("%s: time budget of %.0f s reached at step %d", self.dataset, tc.max_seconds, state.step)
                self.total_steps = state.step
            at_end = state.step == self.total_steps
            at_checkpoint = state.step % tc.checkpoint_every == 0 or at_end
            at_samples = state.step % tc.sample_every == 0 or at_end
            if not (state.step % tc.log_every == 0 or at_checkpoint or at_samples):
                continue
            new_row = self._record(sums, count, time.perf_counter() - window)
            if new_row is None or (at_checkpoint and not state.weights_finite()):
                self.checkpoints.roll_back(state)
                progress.update(state.step)
                sums.zero_()
                count, window = 0, time.perf_counter()
                continue
            row = new_row
            progress.update(state.step, postfix=(
                f"loss_d={row['loss_d']:.3f} loss_g={row['loss_g']:.3f} D(x)={row['d_real']:.2f} "
                f"D(G(z))={row['d_fake']:.2f} {row['images_per_second']:.0f} img/s"))
            if self.callback:
                self.callback(row)
            if at_checkpoint:
                self.checkpoints.save(state)
            if at_samples:
                self._write_samples(f"step-{state.step:08d}")
            sums.zero_()
            count, window = 0, time.perf_counter()
        progress.close()
        seconds = time.perf_counter() - started
        images_per_second = self._images(start_step, state.step) / max(seconds, 1e-9)
        return self._finish(row, seconds, images_per_second)

    def pseudo_label(self) -> None:
        """Give the unlabelled images the pseudo-labels of the current D's features (`labels`)."""
        state = self.state
        features = discriminator_pool_features(state.discriminator, self.cache.images, self.device)
        labels = pseudo_labels(features, self.given_labels, self.tc.pseudo_label_threshold, self.tc.seed)
        state.labels.copy_(labels.to(state.labels.device))
        log.info("%s: pseudo-labelled %d of %d unlabelled images at step %d", self.dataset,
                 int((labels >= 0).sum() - (self.given_labels >= 0).sum()), int((self.given_labels < 0).sum()),
                 state.step)

    def label_summary(self) -> dict[str, Any] | None:
        """What the model card records of a class-conditional run's labels."""
        if self.given_labels is None:
            return None
        current = self.state.labels.cpu()
        given = int((self.given_labels >= 0).sum())
        return {"classes": self.classes, "labelled": given, "pseudo_labelled": int((current >= 0).sum()) - given,
                "unlabelled": int((current < 0).sum()), "fingerprint": labels_fingerprint(self.classes,
                                                                                         self.given_labels),
                "pseudo_label_step": self.pseudo_label_step}

    def _record(self, sums: Tensor, count: int, seconds: float) -> dict[str, float] | None:
        """Turn the summed step metrics into one metrics row and append it to the history; None
        when any is non-finite."""
        values = self.dist.average(sums / count).tolist()  # the one host sync of a logging interval
        if not all(math.isfinite(v) for v in values):
            return None
        row = dict(zip(METRICS, values), step=self.state.step,
                   images_per_second=self._images(self.state.step - count, self.state.step) / max(seconds, 1e-9))
        for key, column in self.state.history.items():
            column.append(row[key])
        return row

    def _images(self, first: int, last: int) -> int:
        """Real images read from step `first` to step `last`; a finishing step reads at most FINISH_BATCH."""
        finishing = max(0, last - max(first, self.main_steps))
        per_finishing_step = min(FINISH_BATCH, self.tc.batch_size) * self.dist.world_size
        return (last - first - finishing) * self.images_per_step + finishing * per_finishing_step

    def _write_samples(self, name: str, generator: Generator | None = None) -> None:
        if self.dist.is_main:
            write_samples(self.model_dir, name, generator or self.state.ema, self.fixed_noise, self.state.history,
                          title=self.dataset, storage_options=self.storage_options, labels=self.fixed_labels)

    def _finish(self, row: dict[str, float], seconds: float, images_per_second: float) -> TrainResult:
        """Write the final samples, model.pt (the EMA of G, and D) and the model card."""
        state, files = self.state, output_files(self.model_dir)
        metrics = {k: v for k, v in row.items() if k != "step"}
        if self.resumed_from != state.step:
            metrics.update(seconds=seconds, images_per_second=images_per_second)
        # With a critic, G moves `critic_rounds` times a step, and in the finish it moves fast; the
        # EMA's copied BatchNorm statistics lag, so the saved G gets its own (BENCHMARKS.md,
        # "Sample distance (SWD) of the recipes").
        standing = self.mc.critic or (self.finish_steps and state.step > self.main_steps)
        sampler = standing_statistics(state.ema, seed=self.tc.seed) if standing else state.ema
        self._write_samples("final", sampler)
        if self.dist.is_main:
            extra = {"step": state.step, **({"classes": self.classes} if self.classes else {})}
            save_model(self.model_dir, sampler, state.discriminator, model_id=self.model_id,
                       dataset=self.dataset, extra=extra, storage_options=self.storage_options)
            card = model_card(self.cache, self.mc, self.tc, model_id=self.model_id, dataset=self.dataset,
                              source=self.source, steps=state.step,
                              images_per_step=self._images(0, state.step) / max(state.step, 1),
                              world_size=self.dist.world_size, resumed_from=self.resumed_from,
                              nan_rollbacks=state.nan_rollbacks, metrics=metrics, device=self.device, amp=self.amp,
                              files=files)
            if self.classes:
                card["labels"] = self.label_summary()
            if self.training_step.contrastive:  # what an automatic (None) weight resolved to
                card["fake_contrastive_weight"] = self.training_step.fake_contrastive_weight
            card["finish_steps"] = self.finish_steps  # what an automatic (None) finish resolved to
            if self.mc.critic:  # train_config leaves it out at its default
                card["critic_head_weight"] = self.tc.critic_head_weight
            write_model_card(self.model_dir, card, self.storage_options)
        return TrainResult(self.model_dir, self.model_id, self.dataset, state.step, len(self.cache),
                           self.resumed_from, seconds, images_per_second, metrics, files)


def train(
    source: str | ImageCache,
    out: str,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    *,
    dataset: str | None = None,
    storage_options: dict[str, Any] | None = None,
    resume: bool = True,
    callback: Callable[[dict[str, float]], None] | None = None,
    distributed: DistributedContext | None = None,
    labels: Mapping[str, Hashable] | None = None,
) -> TrainResult:
    """Train a DCGAN on one dataset and write it to `out/<dataset>/model/`.

    Args:
        source: a folder/prefix of images (any fsspec URL), or an `ImageCache` already built.
        out: the output root; the model lands in `out/<dataset>/model`.
        model_config, train_config: defaults when None.
        dataset: the dataset name; defaults to the last path component of `source`.
        storage_options: fsspec options for `source` and `out`.
        resume: continue from the newest compatible checkpoint, if any.
        callback: called with every metrics row (step, losses, D outputs, img/s).
        distributed: this process's place in a data-parallel run (`distributed.init_distributed`);
            None is a single process.
        labels: {image key: label} for some or all images (what `io.labels.read_labels` reads
            from a `uri,label` file; keys as there: the URI, or the path under `source`): trains a
            class-conditional model whose classes are the labels' (as strings); the images
            without a label get pseudo-labels partway through (`TrainConfig.pseudo_label_at`).

    Examples:
        >>> from gan_augment import ModelConfig, TrainConfig, load_model
        >>> tiny = ModelConfig(image_size=16, channels=1, ngf=8, ndf=8)
        >>> result = train(f"{store}/shapes", f"{out}/again", tiny, TrainConfig(steps=2, batch_size=8))
        >>> result.model_dir.endswith("again/shapes/model"), result.steps  # 2, then the automatic finish's 4
        (True, 6)
        >>> load_model(result.model_dir).dataset
        'shapes'
    """
    model_config, train_config = model_config or ModelConfig(), train_config or TrainConfig()
    if isinstance(source, ImageCache):
        if dataset is None:
            raise ValueError("pass dataset= when training from an ImageCache")
        cache, source_url = source, ""
    else:
        # The dataset's manifest, when a scan wrote one, spares reading objects it already rejected.
        manifest = manifest_url(out, dataset or basename(source))
        copies = (read_near_copies(near_duplicates_url(out, dataset or basename(source)), storage_options)
                  if train_config.skip_near_duplicates else None)
        with (distributed or DistributedContext()).main_first():  # rank 0 fills any shared decode cache
            cache = build_cache(source, model_config.image_size, model_config.channels, storage_options,
                                manifest=manifest, near_duplicates=copies, **model_config.decode_options)
        source_url = source
    dataset = validate_dataset_name(dataset or basename(source_url))
    model_dir = model_dir_of(out, dataset)
    classes, per_image = cache_labels(cache, labels, source_url, storage_options) if labels else (None, None)
    trainer = Trainer(cache, model_dir, model_config, train_config, dataset=dataset, source=source_url,
                      storage_options=storage_options, callback=callback, distributed=distributed,
                      labels=per_image, classes=classes)
    return trainer.run(resume=resume)
