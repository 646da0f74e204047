"""The training loop: one `Trainer` with numbered phases, checkpoints, exact resume and a NaN
guard, and `train()`, which builds the data cache and runs it."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import logging
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch
from torch import Tensor

from gan_augment import __version__
from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.gan.augment import diff_augment, random_view
from gan_augment.gan.checkpoint import (
    list_checkpoints,
    load_latest_checkpoint,
    save_checkpoint,
    save_model,
    write_model_card,
)
from gan_augment.gan.devices import has_native_bf16, select_device
from gan_augment.gan.losses import (
    discriminator_loss,
    fake_contrastive,
    generator_loss,
    gradient_penalty,
    nt_xent,
    unrolled_generator_loss,
)
from gan_augment.gan.models import build_models
from gan_augment.gan.pixels import to_model_range
from gan_augment.gan.visualize import loss_curve_png, sample_grid_png
from gan_augment.io.fsio import atomic_write_bytes, basename, redact_url, remove
from gan_augment.io.progress import Progress
from gan_augment.layout import (
    SAMPLES_DIR,
    card_file,
    checkpoints_dir,
    manifest_url,
    model_file,
    samples_file,
    validate_dataset_name,
)
from gan_augment.layout import model_dir as model_dir_of
from gan_augment.scan.cache import ImageCache, build_cache
from gan_augment.training.batches import BatchSampler, random_flip
from gan_augment.training.distributed import DistributedContext, ShardedBatchSampler

log = logging.getLogger(__name__)
METRICS = ("loss_d", "loss_g", "d_real", "d_fake")


class TrainingDivergedError(RuntimeError):
    """Losses stayed non-finite after every allowed rollback."""


def auto_epochs(num_images: int) -> float:
    """Training length when neither steps nor epochs is given: 512,000 real images seen
    (2,000 D steps of the default batch of 256, 1,000 G steps), and at least 5 passes over the
    data. For 4,000 images that is 128 epochs, where the few-label accuracy of D's features has
    flattened (BENCHMARKS.md), in under 10 minutes on 2 CPU cores; a dataset of 100,000 images
    gets its 5 epochs (about 2,000 D steps), which a GPU runs in minutes."""
    return max(5.0, 512_000 / num_images)


def resolve_steps(config: TrainConfig, num_images: int, world_size: int = 1) -> int:
    """Total G steps: `steps`, else `epochs` passes over the data, else `auto_epochs`
    (a data-parallel step sees `world_size` batches, one per rank)."""
    if config.steps is not None:
        return config.steps
    epochs = config.epochs if config.epochs is not None else auto_epochs(num_images)
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
    """Trains one DCGAN on a decoded image cache, writing everything under `model_dir`."""

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
    ) -> None:
        model_config = effective_model_config(model_config, train_config)
        # Data-parallel hooks (gan_augment/distributed.py); all of them are no-ops in one process.
        self.dist = distributed or DistributedContext()
        self.mc, self.tc, self.cache = model_config, train_config, cache
        self.model_dir, self.dataset, self.source = model_dir, dataset, source
        self.storage_options, self.callback = storage_options, callback
        self.checkpoint_dir = checkpoints_dir(model_dir)
        self.device = select_device(train_config.device)
        self.total_steps = resolve_steps(train_config, len(cache), self.dist.world_size)
        self.images_per_step = train_config.batch_size * train_config.d_steps * self.dist.world_size
        self.policies = train_config.augment_policies
        cuda = self.device.type == "cuda"
        self.amp = train_config.amp and has_native_bf16(self.device)
        self.autocast = (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)) if self.amp \
            else contextlib.nullcontext
        # oneDNN (CPU) and cuDNN both run convolutions fastest on NHWC tensors.
        channels_last = train_config.channels_last and self.device.type in ("cuda", "cpu")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

        torch.manual_seed(train_config.seed)  # weight init and dropout draw from the global RNG
        self.generator, self.discriminator = build_models(model_config)
        self.ema = copy.deepcopy(self.generator).requires_grad_(False).eval()
        for module in (self.generator, self.discriminator, self.ema):
            module.to(self.device, memory_format=self.memory_format)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=train_config.lr,
                                      betas=(train_config.beta1, train_config.beta2))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=train_config.d_lr,
                                      betas=(train_config.d_beta1, train_config.beta2))
        self.g_forward, self.d_forward = self.generator, self.discriminator
        if train_config.compile:
            self.g_forward, self.d_forward = torch.compile(self.generator), torch.compile(self.discriminator)
        self.rng = torch.Generator(self.device).manual_seed(train_config.seed)
        # The cache lives on the training device when it is a GPU, so a batch never crosses the bus.
        self.images = cache.images.to(self.device) if cuda else cache.images
        self.sampler = ShardedBatchSampler(len(cache), train_config.batch_size, train_config.seed, self.dist,
                                           self.images.device) if self.dist.enabled \
            else BatchSampler(len(cache), train_config.batch_size, train_config.seed, self.images.device)
        fixed = torch.Generator().manual_seed(train_config.seed + 1)
        self.fixed_noise = torch.randn(64, model_config.latent_dim, generator=fixed).to(self.device)
        self.step, self.nan_rollbacks, self.resumed_from = 0, 0, None
        self.history: dict[str, list[float]] = {k: [] for k in ("step", *METRICS, "images_per_second")}
        self.model_id = f"{dataset}-" + hashlib.sha256(
            f"{cache.fingerprint}\0{model_config.to_json()}\0{train_config.to_json()}".encode()).hexdigest()[:12]

    # -- one step ---------------------------------------------------------------------------

    def _real_batch(self, index: int) -> Tensor:
        real = to_model_range(self.images[self.sampler.indices(index)]).to(self.device)  # (B, C, S, S)
        if self.tc.flip:
            real = random_flip(real, self.rng)
        return real.contiguous(memory_format=self.memory_format)

    def _augment(self, images: Tensor) -> Tensor:
        return diff_augment(images, self.policies, self.rng)

    def _discriminate(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        if self.tc.concat_real_fake:  # the seed's concatenation layer: one pass, shared BN stats
            logits = self.d_forward(torch.cat([real, fake]))
            return logits[: real.shape[0]], logits[real.shape[0]:]
        return self.d_forward(real), self.d_forward(fake)

    def _view(self, images: Tensor) -> Tensor:
        return random_view(images, self.rng)

    def _discriminate_contrastive(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The contrastive recipe's D pass: two random views of the real batch and one of the
        fakes go through D's trunk together; NT-Xent on the projections of the real views
        (with the fakes as extra negatives) and ContraD's loss on the fakes (all of them one
        class, apart from every real view) shape the trunk, and the real/fake logits come from
        the first real view and the fakes. Returns (contrastive loss, real logits, fake logits,
        real GAN input, fake GAN input)."""
        tc, batch = self.tc, real.shape[0]
        real_in, fake_in = self._augment(self._view(real)), self._augment(self._view(fake))
        trunk = self.discriminator.trunk(torch.cat([real_in, self._view(real), fake_in]))  # (2B + F, T)
        real_trunk, fake_trunk = trunk[: 2 * batch], trunk[2 * batch:]
        fake_projection = self.discriminator.project(fake_trunk) \
            if tc.fake_negatives or tc.fake_contrastive_weight else None
        real_projection = self.discriminator.project(real_trunk)
        first, second = real_projection.chunk(2)
        loss_con = nt_xent(first, second, tc.contrastive_temperature,
                           fake_projection if tc.fake_negatives else None)
        if tc.fake_contrastive_weight:
            loss_con = loss_con + tc.fake_contrastive_weight * fake_contrastive(
                real_projection, fake_projection, tc.contrastive_temperature)
        gan_real, gan_fake = real_trunk[:batch], fake_trunk
        if tc.detach_gan_head:
            gan_real, gan_fake = gan_real.detach(), gan_fake.detach()
        real_logits = self.discriminator.classifier(gan_real).squeeze(1)
        fake_logits = self.discriminator.classifier(gan_fake).squeeze(1)
        return loss_con, real_logits, fake_logits, real_in, fake_in

    def train_step(self) -> Tensor:
        """One G step (after `d_steps` D steps); returns (loss_d, loss_g, D(x), D(G(z)))."""
        tc, contrastive = self.tc, self.tc.contrastive_weight > 0
        # (1) Update D: maximise log D(x) + log(1 - D(G(z))) (or the hinge / critic objective),
        # plus the contrastive loss on D's trunk in the default recipe.
        for i in range(tc.d_steps):
            real = self._real_batch(self.step * tc.d_steps + i)
            z = torch.randn(tc.fakes_per_step, self.mc.latent_dim, device=self.device, generator=self.rng)
            with self.autocast():
                # Only the last D step's fakes feed G's update; earlier ones need no graph.
                with torch.set_grad_enabled(i == tc.d_steps - 1):
                    fake = self.g_forward(z)  # (F, C, S, S)
                if contrastive:
                    loss_con, real_logits, fake_logits, real_aug, fake_aug = self._discriminate_contrastive(
                        real, fake.detach())
                else:
                    real_aug, fake_aug = self._augment(real), self._augment(fake.detach())
                    real_logits, fake_logits = self._discriminate(real_aug, fake_aug)
                loss_d = discriminator_loss(tc.loss, real_logits, fake_logits)
                if tc.loss == "wgan-gp":
                    loss_d = loss_d + tc.gp_weight * gradient_penalty(
                        self.discriminator, real_aug, fake_aug, generator=self.rng)
                if contrastive:
                    loss_d = loss_d + tc.contrastive_weight * loss_con
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.dist.average_gradients(self.discriminator)
            self.opt_d.step()

        # (2) Update G: maximise log D(G(z)) (non-saturating), optionally against an unrolled D.
        # D's weights are frozen for this backward: G needs the gradient through D, not D's own
        # weight gradients, which would cost a third of D's backward and be thrown away.
        # In the contrastive recipe G faces D in eval mode: BatchNorm then uses the running
        # statistics of mixed real+fake batches, not those of an all-fake batch, which G could
        # otherwise game as a whole.
        fake_in = self._augment(self._view(fake) if contrastive else fake)
        if contrastive:
            self.discriminator.eval()
        with self.autocast():
            if tc.unrolled_steps:
                loss_g = unrolled_generator_loss(tc.loss, self.discriminator, self.opt_d, real_aug,
                                                 fake_in, tc.unrolled_steps)
            else:
                self.discriminator.requires_grad_(False)
                loss_g = generator_loss(tc.loss, self.d_forward(fake_in))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.dist.average_gradients(self.generator)
        self.discriminator.requires_grad_(True).train()
        self.opt_g.step()

        # (3) EMA of G's weights for sampling; the warm-up lets early, short runs track G
        # (TensorFlow's ExponentialMovingAverage num_updates rule).
        decay = min(tc.ema_decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.ema.parameters()), list(self.generator.parameters()), 1 - decay)
            for ema_buffer, buffer in zip(self.ema.buffers(), self.generator.buffers()):
                ema_buffer.copy_(buffer)
        self.step += 1
        with torch.no_grad():
            return torch.stack([loss_d.float(), loss_g.float(), torch.sigmoid(real_logits.float()).mean(),
                                torch.sigmoid(fake_logits.float()).mean()])

    # -- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit for bit (weights and plain values)."""
        return {
            "step": self.step,
            "model_config": self.mc.to_dict(),
            "train_config": self.tc.to_dict(),
            "data_fingerprint": self.cache.fingerprint,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": {
                "train": self.rng.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            },
            "history": self.history,
            "nan_rollbacks": self.nan_rollbacks,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.rng.set_state(state["rng"]["train"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.nan_rollbacks = state["nan_rollbacks"]

    def _compatible(self, state: dict[str, Any]) -> str | None:
        """Why a checkpoint cannot be resumed here, or None if it can."""
        if state["model_config"] != self.mc.to_dict():
            return "it was made with another model config"
        if state["data_fingerprint"] != self.cache.fingerprint:
            return "the data changed since"
        return None

    def _delete_checkpoints(self) -> None:
        if not self.dist.is_main:
            return
        for _, url in list_checkpoints(self.checkpoint_dir, self.storage_options):
            remove(url, self.storage_options)

    def _resume(self, resume: bool) -> None:
        state = load_latest_checkpoint(self.checkpoint_dir, self.storage_options, self.device) if resume else None
        reason = self._compatible(state) if state is not None else None
        self.dist.barrier()  # every rank has read the same checkpoints before rank 0 may delete them
        if state is not None and reason is None:
            self.load_state_dict(state)
            self.resumed_from = self.step
            log.info("resumed %s from its checkpoint at step %d", self.dataset, self.step)
            return
        if reason:
            log.warning("not resuming from %s: %s; starting over", redact_url(self.checkpoint_dir), reason)
        self._delete_checkpoints()
        self._save_checkpoint()  # step 0: the NaN guard always has a good state to return to

    def _start_ranks(self) -> None:
        """Data-parallel start: rank 0's weights everywhere, and per-rank noise, augmentation
        and dropout streams (a checkpoint holds rank 0's RNG states only)."""
        if not self.dist.enabled:
            return
        self.dist.broadcast_modules(self.generator, self.discriminator, self.ema)
        seed = self.dist.rank_seed(self.tc.seed, self.step)
        self.rng.manual_seed(seed)
        torch.manual_seed(seed)

    def _save_checkpoint(self) -> None:
        if self.dist.is_main:
            save_checkpoint(self.checkpoint_dir, self.state_dict(), self.tc.keep_checkpoints, self.storage_options)
        self.dist.barrier()  # no rank may roll back to a checkpoint that is still being written

    def _weights_finite(self) -> bool:
        params = [p for m in (self.generator, self.discriminator) for p in m.parameters()]
        return bool(torch.stack(torch._foreach_norm(params)).isfinite().all())

    def _roll_back(self) -> None:
        """Return to the last good checkpoint with a smaller learning rate, or give up."""
        self.nan_rollbacks += 1
        if self.nan_rollbacks > self.tc.max_nan_rollbacks:
            raise TrainingDivergedError(
                f"training of {self.dataset} diverged (non-finite loss) {self.nan_rollbacks} times; "
                f"the last good checkpoint stays in {redact_url(self.checkpoint_dir)}. Try a lower --lr "
                "or another --loss."
            )
        rollbacks = self.nan_rollbacks
        state = load_latest_checkpoint(self.checkpoint_dir, self.storage_options, self.device)
        assert state is not None, "the step-0 checkpoint is written before training starts"
        self.load_state_dict(state)
        self.nan_rollbacks = rollbacks
        for optimizer in (self.opt_g, self.opt_d):
            for group in optimizer.param_groups:
                group["lr"] *= self.tc.nan_lr_factor
        log.warning("non-finite loss in %s: rolled back to step %d, learning rate now %.3g (rollback %d of %d)",
                    self.dataset, self.step, self.opt_d.param_groups[0]["lr"], rollbacks, self.tc.max_nan_rollbacks)
        self._start_ranks()

    # -- outputs ----------------------------------------------------------------------------

    @torch.no_grad()
    def _write_samples(self, name: str) -> str:
        url = samples_file(self.model_dir, f"{name}.png")
        if not self.dist.is_main:
            return url
        images = self.ema(self.fixed_noise)  # (64, C, S, S)
        atomic_write_bytes(url, sample_grid_png(images), self.storage_options)
        atomic_write_bytes(samples_file(self.model_dir, "loss_curve.png"),
                           loss_curve_png(self.history, title=self.dataset), self.storage_options)
        return url

    def _record(self, sums: Tensor, count: int, seconds: float) -> dict[str, float] | None:
        """Turn the summed step metrics into one metrics row; None when any is non-finite."""
        values = self.dist.average(sums / count).tolist()  # the one host sync of a logging interval
        if not all(math.isfinite(v) for v in values):
            return None
        row = dict(zip(METRICS, values), step=self.step,
                   images_per_second=count * self.images_per_step / max(seconds, 1e-9))
        for key in self.history:
            self.history[key].append(row[key])
        return row

    # -- the loop ---------------------------------------------------------------------------

    def run(self, resume: bool = True) -> TrainResult:
        self._resume(resume)
        self._start_ranks()
        tc, start_step, started = self.tc, self.step, time.perf_counter()
        self.generator.train()
        self.discriminator.train()
        progress = Progress(f"train {self.dataset}", "step", total=self.total_steps, initial=self.step,
                            log_interval=0, enabled=self.dist.is_main)  # updated once per logging interval
        sums, count, window = torch.zeros(len(METRICS), device=self.device), 0, time.perf_counter()
        row = {key: values[-1] for key, values in self.history.items() if values}
        while self.step < self.total_steps:
            sums += self.train_step()
            count += 1
            if tc.max_seconds is not None and self.dist.any(time.perf_counter() - started > tc.max_seconds,
                                                            self.device):  # all ranks stop together
                log.info("%s: time budget of %.0f s reached at step %d", self.dataset, tc.max_seconds, self.step)
                self.total_steps = self.step
            at_end = self.step == self.total_steps
            at_checkpoint = self.step % tc.checkpoint_every == 0 or at_end
            at_samples = self.step % tc.sample_every == 0 or at_end
            if not (self.step % tc.log_every == 0 or at_checkpoint or at_samples):
                continue
            new_row = self._record(sums, count, time.perf_counter() - window)
            if new_row is None or (at_checkpoint and not self._weights_finite()):
                self._roll_back()
                progress.update(self.step)
                sums.zero_()
                count, window = 0, time.perf_counter()
                continue
            row = new_row
            progress.update(self.step, postfix=(
                f"loss_d={row['loss_d']:.3f} loss_g={row['loss_g']:.3f} D(x)={row['d_real']:.2f} "
                f"D(G(z))={row['d_fake']:.2f} {row['images_per_second']:.0f} img/s"))
            if self.callback:
                self.callback(row)
            if at_checkpoint:
                self._save_checkpoint()
            if at_samples:
                self._write_samples(f"step-{self.step:08d}")
            sums.zero_()
            count, window = 0, time.perf_counter()
        progress.close()
        seconds = time.perf_counter() - started
        images_per_second = (self.step - start_step) * self.images_per_step / max(seconds, 1e-9)
        return self._finish(row, seconds, images_per_second)

    def _finish(self, row: dict[str, float], seconds: float, images_per_second: float) -> TrainResult:
        files = {"samples": self._write_samples("final"), "loss_curve": samples_file(self.model_dir, "loss_curve.png"),
                 "model": model_file(self.model_dir), "card": card_file(self.model_dir)}
        metrics = {k: v for k, v in row.items() if k != "step"}
        if self.resumed_from != self.step:
            metrics.update(seconds=seconds, images_per_second=images_per_second)
        result = TrainResult(self.model_dir, self.model_id, self.dataset, self.step, len(self.cache),
                             self.resumed_from, seconds, images_per_second, metrics, files)
        if not self.dist.is_main:
            return result
        save_model(self.model_dir, self.ema, self.discriminator, model_id=self.model_id,
                   dataset=self.dataset, extra={"step": self.step}, storage_options=self.storage_options)
        card = {
            "format": "gan-augment/model-card",
            "model_id": self.model_id,
            "dataset": self.dataset,
            "source": redact_url(self.source),
            "data_fingerprint": self.cache.fingerprint,
            "num_images": len(self.cache),
            "skipped_images": len(self.cache.skipped),
            "model_config": self.mc.to_dict(),
            "train_config": self.tc.to_dict(),
            "steps": self.step,
            "epochs": self.step * self.images_per_step / len(self.cache),
            "world_size": self.dist.world_size,
            "resumed_from": self.resumed_from,
            "nan_rollbacks": self.nan_rollbacks,
            "metrics": metrics,
            "device": str(self.device),
            "precision": "bf16 autocast" if self.amp else "fp32",
            "versions": {"gan_augment": __version__, "torch": torch.__version__, "python": platform.python_version()},
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": {k: basename(v) if k == "model" else f"{SAMPLES_DIR}/{basename(v)}" for k, v in files.items()
                      if k != "card"},
        }
        write_model_card(self.model_dir, card, self.storage_options)
        return result


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
    """
    model_config, train_config = model_config or ModelConfig(), train_config or TrainConfig()
    if isinstance(source, ImageCache):
        if dataset is None:
            raise ValueError("pass dataset= when training from an ImageCache")
        cache, source_url = source, ""
    else:
        # The dataset's manifest, when a scan wrote one, spares reading objects it already rejected.
        manifest = manifest_url(out, dataset or basename(source))
        with (distributed or DistributedContext()).main_first():  # rank 0 fills any shared decode cache
            cache = build_cache(source, model_config.image_size, model_config.channels, storage_options,
                                manifest=manifest)
        source_url = source
    dataset = validate_dataset_name(dataset or basename(source_url))
    model_dir = model_dir_of(out, dataset)
    trainer = Trainer(cache, model_dir, model_config, train_config, dataset=dataset, source=source_url,
                      storage_options=storage_options, callback=callback, distributed=distributed)
    return trainer.run(resume=resume)
