"""Frozen configuration dataclasses, one per stage, with a strict JSON round-trip.

`ModelConfig` describes the networks (it is all `gan/models.py` sees); `TrainConfig` describes one
training run. Both validate on construction, so an impossible value fails where it is written,
with the field's name in the message, instead of deep inside a training step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gan_augment.config_base import JsonConfig, background_rgb, check, check_choice, check_float, check_int

LOSSES = ("bce", "wgan-gp", "hinge")
UPSAMPLE_MODES = ("nearest", "transpose")
D_NORMS = ("batch", "layer", "none")
AUGMENT_POLICIES = ("color", "translation", "cutout")
DEVICES = ("auto", "cpu", "cuda", "mps")
FITS = ("crop", "pad")
POOLINGS = ("max", "avg")
# Measured on Wesnoth's sprites: BENCHMARKS.md "Transparency and fit on colour sprites".
DEFAULT_BACKGROUND, DEFAULT_FIT = "white", "crop"
LEGACY_DECODE = {"background": "black", "fit": "crop"}  # a model card's from before these options
# The automatic finish's G steps per recipe step: on MNIST-5k's three seeds 2,000 after the
# default's 1,000 brought the samples to 1.15-1.26x the SWD floor, 1,000 left two at 1.36x and
# 1.61x (BENCHMARKS.md, "Sample distance (SWD) of the recipes (MNIST-5k), finish_steps 2000");
# confirmed on Fashion-MNIST's three seeds, 1.11-1.28x ("... (Fashion-MNIST), finish_steps 2000").
FINISH_STEPS_PER_STEP = 2


@dataclass(frozen=True)
class ModelConfig(JsonConfig):
    """The DCGAN's shape.

    Attributes:
        image_size: side of the square images; a power of two from 16 to 256.
        channels: 1 (grayscale) or 3 (RGB).
        latent_dim: length of the noise vector z.
        ngf: generator width: the feature map after block i of N has ngf * 2**(N-i) channels,
            capped at 8 * ngf (the 4x4 base counts as block 0).
        ndf: discriminator width: block i of N (from 1) outputs ndf * 2**(i-1) channels,
            capped at 8 * ndf.
        upsample: "nearest" (Upsample x2 then Conv 3x3, the seed article's generator) or
            "transpose" (one ConvTranspose2d(4, 2, 1) per block, as pytorch/examples does).
        d_norm: normalisation in discriminator blocks after the first: "batch" (the seed),
            "layer" (valid under a gradient penalty) or "none".
        d_dropout: dropout probability in every discriminator block (the seed uses 0.25;
            it hurts the contrastive loss, so the default is 0).
        projection_dim: width of the discriminator's projection head for its auxiliary
            self-supervised loss; 0 builds no head.
        background: what transparent pixels (RGBA, LA, palettes with transparency) become, and
            what `fit="pad"` pads with: "black", "white" or "#rrggbb".
        fit: how a non-square image becomes square: "crop" (the centre square, losing the
            ends of the long side) or "pad" (the whole image, padded with `background`).
        num_classes: 0 for an unconditional model; K > 0 makes a class-conditional one:
            class-conditional BatchNorm in G and a projection discriminator (Miyato & Koyama
            2018). Training sets it from the labels it is given (`train(..., labels=...)`).
        critic: D also holds a critic, a plain DCGAN discriminator of its own (D's blocks, a
            linear logit) that G trains against in the contrastive recipe; D's trunk, whose
            features are exported, learns from the contrastive losses alone. Its samples come
            much closer to the data, at 1.7-2x the training time; with G also facing D's head
            (`TrainConfig.critic_head_weight`) the features held on MNIST-5k and Fashion-MNIST
            (0.8 points under at 10 labels), and the critic alone held them on Wesnoth's sprites
            and terrain tiles (BENCHMARKS.md, "Sample distance (SWD) of the recipes"). In a
            class-conditional model the critic judges realism alone; the classes reach G through
            D's head.

    `image_size`, `channels`, `background` and `fit` say how a stored image becomes the
    networks' input; training, feature extraction and evaluation all decode by them, so a
    model's features see images decoded exactly as its training did.

    The defaults are the recipe measured best for few-label features on small datasets
    (BENCHMARKS.md, "Few-label features"): a narrow generator (ngf=16), ndf=32, no dropout,
    a 128-wide projection head. `ModelConfig.seed_dcgan()` is the seed article's network.

    Examples:
        >>> config = ModelConfig(image_size=64, channels=3)
        >>> ModelConfig.from_json(config.to_json()) == config
        True
        >>> ModelConfig(image_size=48)
        Traceback (most recent call last):
        ...
        ValueError: ModelConfig.image_size=48 is invalid: expected a power of two from 16 to 256
    """

    image_size: int = 32
    channels: int = 3
    latent_dim: int = 100
    ngf: int = 16
    ndf: int = 32
    upsample: str = "nearest"
    d_norm: str = "batch"
    d_dropout: float = 0.0
    projection_dim: int = 128
    background: str = DEFAULT_BACKGROUND
    fit: str = DEFAULT_FIT
    num_classes: int = 0
    critic: bool = False

    _OMITTED_AT_DEFAULT = ("num_classes", "critic")

    @classmethod
    def seed_dcgan(cls, **overrides: Any) -> ModelConfig:
        """The seed article's DCGAN: ngf = ndf = 64, dropout 0.25, no projection head."""
        return cls(**{"ngf": 64, "ndf": 64, "d_dropout": 0.25, "projection_dim": 0, **overrides})

    def __post_init__(self) -> None:
        size = self.image_size
        ok = isinstance(size, int) and 16 <= size <= 256 and size & (size - 1) == 0
        check(ok, self, "image_size", size, "a power of two from 16 to 256")
        check(self.channels in (1, 3) and isinstance(self.channels, int), self, "channels",
              self.channels, "1 (grayscale) or 3 (RGB)")
        for name in ("latent_dim", "ngf", "ndf"):
            check_int(self, name, 1)
        check_int(self, "projection_dim", 0)
        check_int(self, "num_classes", 0)
        check(isinstance(self.critic, bool), self, "critic", self.critic, "a bool")
        check_choice(self, "upsample", UPSAMPLE_MODES)
        check_choice(self, "d_norm", D_NORMS)
        check_float(self, "d_dropout", 0.0, 0.9)
        check_choice(self, "fit", FITS)
        try:
            background_rgb(self.background)
        except ValueError:
            check(False, self, "background", self.background, "black, white or a colour #rrggbb")

    @property
    def decode_options(self) -> dict[str, str]:  # build_cache's decode keywords besides size and channels
        return {"background": self.background, "fit": self.fit}

    @property
    def num_blocks(self) -> int:
        """Up/down-sampling blocks between the 4x4 base and the image size."""
        return int(math.log2(self.image_size)) - 2


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """One training run.

    Attributes:
        steps: generator steps, each after `d_steps` discriminator steps; None derives them
            from `epochs`, or from the dataset size (`training.trainer.resolve_steps`).
        epochs: passes over the data, used when `steps` is None.
        max_seconds: stop early, cleanly (checkpoint, samples, model), once training has run
            this long; None is no limit. A run stopped this way is not reproducible.
        batch_size: real images per D step.
        fake_batch_size: generated images per D step; None is `batch_size`.
        lr, beta1, beta2: the generator's Adam settings (Radford et al. 2015: 2e-4, 0.5, 0.999).
        d_lr, d_beta1: the discriminator's Adam learning rate and first beta (its beta2 is
            `beta2`); the contrastive loss wants SimCLR's faster 1e-3 and 0.9.
        loss: "bce" (non-saturating), "wgan-gp" or "hinge".
        gp_weight: gradient-penalty weight for "wgan-gp" (Gulrajani et al. 2017: 10).
        d_steps: discriminator updates per generator update.
        unrolled_steps: look-ahead D updates seen by G's loss (Metz et al. 2016); 0 is off.
        concat_real_fake: pass real and fake through D as one batch (the seed's
            concatenation layer) instead of two.
        diffaugment: comma-separated DiffAugment policies applied to real and fake
            (Zhao et al. 2020), e.g. "color,translation,cutout"; "" is off.
        flip: random horizontal flips of real images.
        view_flip: the contrastive loss's views mirror half the images too (SimCLR's flip). Off:
            digits are not mirror-symmetric, and on Wesnoth's sprites and Fashion-MNIST it did not
            help (BENCHMARKS.md, "Few-label features (...), view flips").
        contrastive_weight: weight of the SimCLR-style loss on D's projection head over two
            random views of the real batch (ContraD, Jeong & Shin 2021); 0 is the plain GAN.
        contrastive_temperature: NT-Xent temperature.
        fake_negatives: with the contrastive loss, generated images join the negatives of
            every real view: the generator supplies ever harder near-misses of the data.
        detach_gan_head: with the contrastive loss, the real/fake loss trains only D's final
            linear layer on the (detached) trunk, so D's features are shaped by the contrastive
            loss alone (ContraD); the generator still learns through the whole D.
        fake_contrastive_weight: weight of ContraD's contrastive loss on generated images, 0 is
            off (`losses.fake_contrastive`: all fakes one class, the real views its negatives);
            None is automatic (`fake_contrastive_weight_for`): 1.0 on greyscale images, 0 on
            colour ones. The loss pays on greyscale digits and garments; on colour sprites and
            terrain tiles, whose samples are still blobs of colour at the automatic budget, the
            features scored higher without it (BENCHMARKS.md, "Sample distance (SWD) of the
            recipes").
        critic_rounds: with a critic (`ModelConfig.critic`), G updates per step, each after
            `d_steps` critic updates; the step's real images are shared out among the critic's.
        critic_batch: with a critic, the real images of each critic update, taken from its share
            of the step's reals; None takes the whole share (about 85 at the defaults). 32 cost
            0.8-1.0x the critic's time and brought MNIST-5k's samples closer, not Fashion-MNIST's
            (BENCHMARKS.md, "Sample distance (SWD) of the recipes (MNIST-5k), critic_batch 32").
        critic_head_weight: with a critic, G's loss adds its loss against D's real/fake head at
            this weight (0: the critic alone). On Fashion-MNIST both together brought the samples
            closer and the features higher than the critic alone; on MNIST-5k they held both
            (BENCHMARKS.md, "Sample distance (SWD) of the recipes").
        finish_steps: G steps after the recipe's in which G trains alone against a plain DCGAN
            discriminator that starts as a copy of D's real/fake path (the seed's losses and
            optimiser settings, 64 real images and 64 fakes a step) while D stays as the recipe
            left it: the features are those of the run without them, and the samples come from
            a plain GAN that continues the recipe's, with an EMA of their own. 0: none. None is
            automatic (`finish_steps_for`): twice the recipe's steps on greyscale images where
            the contrastive loss shapes D and G has no critic or classes, 0 otherwise. A number
            above 0 is refused beside `ModelConfig.critic` or in a class-conditional run. What
            2,000 steps after the default's 1,000 buy and cost: BENCHMARKS.md, "Sample distance
            (SWD) of the recipes (MNIST-5k), finish_steps 2000" (1.15-1.26x the floor, 1.49x the
            wall-clock, the features unchanged).
        ema_decay: decay of the generator's exponential moving average used for sampling.
        amp: bf16 autocast where the hardware runs bf16 natively (CUDA; CPUs with
            AVX512-BF16 or AMX); fp32 elsewhere.
        channels_last: channels-last memory format on CUDA and CPU (ignored on MPS).
        compile: wrap both networks in torch.compile.
        device: "auto" (cuda > mps > cpu), "cpu", "cuda" or "mps".
        seed: seeds every random draw of the run.
        log_every: steps between metrics rows and progress updates.
        checkpoint_every: steps between resumable checkpoints.
        sample_every: steps between sample grids and loss curves.
        keep_checkpoints: checkpoints kept besides the latest.
        nan_lr_factor: learning-rate multiplier applied after a non-finite loss rolls back.
        max_nan_rollbacks: rollbacks allowed before the run stops with an error.
        pseudo_label_at: in a class-conditional run with labels for only some images, the
            fraction of the steps after which a logistic regression on D's features labels the
            rest where it is confident; the others feed only D's unconditional term.
        pseudo_label_threshold: the class probability a pseudo-label needs.
        class_weight: in a class-conditional run, the weight of the auxiliary class loss (AC-GAN):
            D's class head learns the labelled reals, G is asked for fakes it assigns to their class.
        skip_near_duplicates: leave out the near-copies that `near_duplicates.parquet` lists
            (off: it moved the probe less than its spread, BENCHMARKS.md "Training without near-duplicates").

    The defaults are the recipe measured best for few-label features on small datasets
    (BENCHMARKS.md, "Few-label features"). `TrainConfig.seed_dcgan()` is the seed's plain GAN.
    """

    steps: int | None = None
    epochs: float | None = None
    max_seconds: float | None = None
    batch_size: int = 256
    fake_batch_size: int | None = 32
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    d_lr: float = 1e-3
    d_beta1: float = 0.9
    loss: str = "bce"
    gp_weight: float = 10.0
    d_steps: int = 2
    unrolled_steps: int = 0
    concat_real_fake: bool = False
    diffaugment: str = ""
    flip: bool = False
    view_flip: bool = False
    contrastive_weight: float = 1.0
    contrastive_temperature: float = 0.2
    fake_negatives: bool = True
    detach_gan_head: bool = True
    fake_contrastive_weight: float | None = None
    critic_rounds: int = 3
    critic_batch: int | None = None
    critic_head_weight: float = 1.0
    finish_steps: int | None = None
    ema_decay: float = 0.999
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    device: str = "auto"
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    sample_every: int = 500
    keep_checkpoints: int = 2
    nan_lr_factor: float = 0.5
    max_nan_rollbacks: int = 3
    pseudo_label_at: float = 0.5
    pseudo_label_threshold: float = 0.9
    class_weight: float = 1.0
    skip_near_duplicates: bool = False

    _OMITTED_AT_DEFAULT = ("pseudo_label_at", "pseudo_label_threshold", "class_weight", "skip_near_duplicates",
                           "critic_rounds", "critic_batch", "critic_head_weight")

    def __post_init__(self) -> None:
        if self.steps is not None:
            check_int(self, "steps", 1)
        if self.epochs is not None:
            check_float(self, "epochs", 0.0, 1e6, open_low=True)
        if self.max_seconds is not None:
            check_float(self, "max_seconds", 0.0, 1e9, open_low=True)
        if self.fake_batch_size is not None:
            check_int(self, "fake_batch_size", 1)
        if self.critic_batch is not None:
            check_int(self, "critic_batch", 1)
        for name in ("batch_size", "d_steps", "log_every", "checkpoint_every", "sample_every", "critic_rounds"):
            check_int(self, name, 1)
        for name in ("unrolled_steps", "keep_checkpoints", "max_nan_rollbacks", "seed"):
            check_int(self, name, 0)
        if self.finish_steps is not None:
            check_int(self, "finish_steps", 0)
        check_float(self, "lr", 0.0, 1.0, open_low=True)
        check_float(self, "d_lr", 0.0, 1.0, open_low=True)
        check_float(self, "beta1", 0.0, 0.9999)
        check_float(self, "d_beta1", 0.0, 0.9999)
        check_float(self, "beta2", 0.0, 0.9999)
        check_float(self, "gp_weight", 0.0, 1e6)
        check_float(self, "contrastive_weight", 0.0, 1e3)
        check_float(self, "critic_head_weight", 0.0, 1e3)
        check_float(self, "contrastive_temperature", 0.0, 10.0, open_low=True)
        if self.fake_contrastive_weight is not None:
            check_float(self, "fake_contrastive_weight", 0.0, 1e3)
        if self.fake_contrastive_weight != 0 and self.contrastive_weight:
            check(self.fakes_per_step >= 2, self, "fake_batch_size", self.fake_batch_size,
                  "at least 2 generated images per D step when fake_contrastive_weight is not 0 (each fake's "
                  "positives are the others)")
        check_float(self, "ema_decay", 0.0, 1.0)
        check_float(self, "nan_lr_factor", 0.0, 1.0, open_low=True)
        check_float(self, "pseudo_label_at", 0.0, 1.0)
        check_float(self, "pseudo_label_threshold", 0.0, 1.0)
        check_float(self, "class_weight", 0.0, math.inf)
        check_choice(self, "loss", LOSSES)
        check_choice(self, "device", DEVICES)
        for name in ("concat_real_fake", "flip", "view_flip", "fake_negatives", "detach_gan_head", "amp",
                     "channels_last", "compile", "skip_near_duplicates"):
            check(isinstance(getattr(self, name), bool), self, name, getattr(self, name), "a bool")
        unknown = [p for p in self.augment_policies if p not in AUGMENT_POLICIES]
        check(not unknown, self, "diffaugment", self.diffaugment,
              f"a comma-separated subset of {', '.join(AUGMENT_POLICIES)}")

    @classmethod
    def seed_dcgan(cls, **overrides: Any) -> TrainConfig:
        """The seed article's training: plain non-saturating GAN, batch 64, Adam 2e-4 (0.5, 0.999)
        for both networks, no contrastive loss."""
        return cls(**{"batch_size": 64, "fake_batch_size": None, "d_lr": 2e-4, "d_beta1": 0.5, "d_steps": 1,
                      "contrastive_weight": 0.0, **overrides})

    def fake_contrastive_weight_for(self, channels: int) -> float:
        """The weight of ContraD's loss on fakes that a run on `channels`-channel images uses:
        `fake_contrastive_weight`, or when it is None, 1.0 for greyscale and 0 for colour."""
        if self.fake_contrastive_weight is not None:
            return float(self.fake_contrastive_weight)
        return 1.0 if channels == 1 else 0.0

    def finish_steps_for(self, steps: int, model_config: ModelConfig) -> int:
        """The finishing steps of a run whose recipe trains `steps` G steps: `finish_steps`, or
        when it is None, `FINISH_STEPS_PER_STEP` x `steps` on greyscale images where the
        contrastive loss shapes D and G faces D alone, 0 otherwise: the seed's plain GAN needs no
        finish, a critic is a finisher of its own, the finish asks G for no class, and on colour
        images its time, given to the SimCLR peer too, puts the peer ahead at every label count
        (BENCHMARKS.md, "Few-label features (Wesnoth sprites, 64x64x3), finish_steps 500")."""
        if self.finish_steps is not None:
            return self.finish_steps
        if (self.contrastive_weight == 0 or model_config.critic or model_config.num_classes
                or model_config.channels != 1):
            return 0
        return FINISH_STEPS_PER_STEP * steps

    @property
    def fakes_per_step(self) -> int:
        return self.fake_batch_size or self.batch_size

    @property
    def augment_policies(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.diffaugment.split(",") if p.strip())


@dataclass(frozen=True)
class FeatureProtocol(JsonConfig):
    """How discriminator activations become one feature vector per image: the DCGAN paper's
    protocol (Radford et al. 2015, section 5.1) with a 2x2 grid instead of its 4x4, which gave
    the better few-label accuracy in every run (BENCHMARKS.md, "Few-label features").

    Attributes:
        blocks: the 1-based discriminator blocks to use, in order; empty is every block (the paper).
        grid: each block's activation is pooled to a grid x grid map (the paper: 4).
        pooling: "max" (the paper) or "avg".
    """

    blocks: tuple[int, ...] = ()
    grid: int = 2
    pooling: str = "max"

    def __post_init__(self) -> None:
        if isinstance(self.blocks, list):  # what a JSON round-trip gives back
            object.__setattr__(self, "blocks", tuple(self.blocks))
        check(isinstance(self.blocks, tuple) and all(isinstance(b, int) and b >= 1 for b in self.blocks),
              self, "blocks", self.blocks, "a tuple of 1-based block numbers")
        check_int(self, "grid", 1)
        check_choice(self, "pooling", POOLINGS)

    def block_numbers(self, model_config: ModelConfig) -> tuple[int, ...]:
        """The blocks used with a discriminator of `model_config`.

        Raises:
            ValueError: a block that this discriminator does not have, or one smaller than the grid.
        """
        blocks = self.blocks or tuple(range(1, model_config.num_blocks + 1))
        for block in blocks:
            if block > model_config.num_blocks:
                raise ValueError(f"feature block {block} does not exist: a {model_config.image_size}x"
                                 f"{model_config.image_size} discriminator has blocks 1..{model_config.num_blocks}")
            side = model_config.image_size >> block  # each block halves the map
            if side < self.grid:
                raise ValueError(f"feature block {block} is {side}x{side}, smaller than the "
                                 f"{self.grid}x{self.grid} pooling grid; use a smaller grid or another block")
        return blocks
