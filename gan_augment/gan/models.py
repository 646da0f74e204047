"""The DCGAN of the seed article (Radford et al. 2015, "Unsupervised Representation Learning
with Deep Convolutional Generative Adversarial Networks"), block for block (docs/design.md).

This module knows nothing of training, storage or orchestration: it maps a `ModelConfig` to two
`nn.Module`s and an initialiser.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_augment.config import ModelConfig


def _generator_width(config: ModelConfig, level: int) -> int:
    """Channels of the generator's feature map at `level` (0 = the 4x4 base)."""
    return min(config.ngf * 2 ** (config.num_blocks - level), 8 * config.ngf)


def _discriminator_width(config: ModelConfig, block: int) -> int:
    """Channels out of discriminator block `block` (1-based)."""
    return min(config.ndf * 2 ** (block - 1), 8 * config.ndf)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up per class (de Vries et al. 2017; the
    generator of Miyato & Koyama 2018): the normalisation is shared, the affine part is not."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        self.reset_affine()

    @torch.no_grad()
    def reset_affine(self) -> None:
        """DCGAN's initialisation of a norm's affine part: scales N(1, 0.02), shifts 0."""
        nn.init.normal_(self.scale.weight, 1.0, 0.02)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        scale, shift = self.scale(labels)[:, :, None, None], self.shift(labels)[:, :, None, None]  # (B, C, 1, 1)
        return self.norm(x) * scale + shift


def _g_norm(config: ModelConfig, channels: int) -> nn.Module:
    return ConditionalBatchNorm2d(channels, config.num_classes) if config.num_classes else nn.BatchNorm2d(channels)


class Generator(nn.Module):
    """z ~ N(0, I) -> image in [-1, 1].

    Linear -> reshape to (C0, 4, 4) -> BatchNorm -> N x [Upsample x2 -> Conv 3x3 -> BatchNorm ->
    ReLU] -> Conv 3x3 to image channels -> Tanh. With `upsample="transpose"` each block's
    Upsample + Conv becomes one ConvTranspose2d(4, stride 2, pad 1). A class-conditional
    generator (`num_classes > 0`) takes the class of each sample too, one-hot beside the noise,
    and every BatchNorm is a `ConditionalBatchNorm2d`; the unconditional one's modules and
    weights are unchanged.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        base = _generator_width(config, 0)
        # A class-conditional G reads its class twice: one-hot beside the noise (Mirza & Osindero
        # 2014), which lets the first layer draw each class's own 4x4 layout, and in every
        # BatchNorm. With the BatchNorms alone the samples ignored their class (BENCHMARKS.md,
        # "Class-conditional samples from few labels").
        self.project = nn.Linear(config.latent_dim + config.num_classes, base * 4 * 4, bias=False)
        self.base_norm = _g_norm(config, base)
        blocks: list[nn.Module] = []
        for level in range(1, config.num_blocks + 1):
            c_in, c_out = _generator_width(config, level - 1), _generator_width(config, level)
            if config.upsample == "transpose":
                resample: nn.Module = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)
            else:
                # Upsample + 3x3 conv instead of a strided transpose avoids checkerboard
                # artefacts (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").
                resample = UpsampleConv2d(c_in, c_out, bias=False)
            blocks.append(nn.Sequential(resample, _g_norm(config, c_out), nn.ReLU(inplace=True)))
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Sequential(
            nn.Conv2d(_generator_width(config, config.num_blocks), config.channels, 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images of noise `z` (B, Z); a class-conditional generator needs `labels` (B,), class
        indices in [0, num_classes)."""
        if not self.config.num_classes:
            h = self.project(z).view(z.shape[0], -1, 4, 4)  # (B, C0, 4, 4)
            return self.to_image(self.blocks(self.base_norm(h)))  # (B, channels, S, S)
        if labels is None:
            raise ValueError(f"this generator is class-conditional ({self.config.num_classes} classes): "
                             "pass the class index of every sample")
        one_hot = F.one_hot(labels, self.config.num_classes).to(z.dtype)  # (B, K)
        h = self.project(torch.cat([z, one_hot], 1)).view(z.shape[0], -1, 4, 4)  # (B, C0, 4, 4)
        h = self.base_norm(h, labels)
        for resample, norm, activation in self.blocks:
            h = activation(norm(resample(h), labels))
        return self.to_image(h)  # (B, channels, S, S)


class UpsampleConv2d(nn.Conv2d):
    """Nearest-neighbour upsampling x2 followed by this 3x3 convolution (padding 1).

    Computed as one stride-2 transposed convolution whose 4x4 kernel is folded from the 3x3
    one: every output pixel of a 2x2 phase reads the same 2x2 input pixels either way, so the
    result is identical (to float rounding) at 4/9 of the multiply-adds, and the upsampled
    tensor is never materialised. Parameters and state dict are those of the plain Conv2d.
    """

    # Row r of the fold maps the 3 taps of the 3x3 kernel onto tap r of the 4x4 kernel:
    # output row 2i reads input rows i-1 (tap 0) and i (taps 1+2); row 2i+1 reads i (0+1), i+1 (2).
    _FOLD = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        fold = self._FOLD.to(self.weight)
        kernel = torch.einsum("ky,oiyx,lx->iokl", fold, self.weight, fold)  # (C_in, C_out, 4, 4)
        return F.conv_transpose2d(x, kernel, self.bias, stride=2, padding=1)  # (B, C_out, 2H, 2W)


def _d_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        # LayerNorm over (C, H, W): per-sample, so it keeps the gradient penalty's
        # per-sample gradients valid (Gulrajani et al. 2017, section 4).
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def _discriminator_blocks(config: ModelConfig) -> list[nn.Module]:
    """N x [Conv 4x4 stride 2 -> LeakyReLU(0.2) -> Dropout -> Norm (not in the first block)]."""
    blocks: list[nn.Module] = []
    c_in = config.channels
    for block in range(1, config.num_blocks + 1):
        c_out = _discriminator_width(config, block)
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
                                   nn.Dropout(config.d_dropout)]
        if block > 1:  # Radford et al.: no normalisation on D's input layer
            layers.append(_d_norm(config.d_norm, c_out))
        blocks.append(nn.Sequential(*layers))
        c_in = c_out
    return blocks


def build_critic(config: ModelConfig) -> nn.Module:
    """A plain DCGAN discriminator of D's shape, for G to train against: D's blocks -> Flatten ->
    Linear logit. Freshly built, not initialised (`init_weights`)."""
    return nn.Sequential(*_discriminator_blocks(config), nn.Flatten(),
                         nn.Linear(_discriminator_width(config, config.num_blocks) * 4 * 4, 1))


class Discriminator(nn.Module):
    """Image -> one logit per image (no sigmoid; losses work on logits).

    N x [Conv 4x4 stride 2 -> LeakyReLU(0.2) -> Dropout -> Norm (not in the first block)] ->
    Flatten -> Linear. `trunk` exposes the flattened last block for auxiliary heads and
    `block_activations` every block's output for feature extraction. A class-conditional
    discriminator (`num_classes > 0`) is a projection discriminator (Miyato & Koyama 2018): the
    logit of an image of class y adds <embed(y), trunk> to the unconditional one; an image whose
    class is unknown (label -1) gets the unconditional logit alone. It also has a linear class
    head on the trunk (`classify`), the auxiliary classifier of AC-GAN (Odena et al. 2017).
    With `config.critic`, it also holds `critic`: the same blocks with weights of their own and
    a linear logit, the discriminator G faces (`training.step`); features never come from it.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleList(_discriminator_blocks(config))
        self.trunk_dim = _discriminator_width(config, config.num_blocks) * 4 * 4
        self.classifier = nn.Linear(self.trunk_dim, 1)
        # The critic shares nothing with the trunk: its gradients must not shape the features.
        self.critic: nn.Module | None = build_critic(config) if config.critic else None
        self.projection: nn.Module | None = None
        if config.projection_dim:
            # SimCLR's two-layer MLP head (Chen et al. 2020); only the auxiliary loss uses it.
            self.projection = nn.Sequential(
                nn.Linear(self.trunk_dim, 512),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Linear(512, config.projection_dim),
            )
        self.embed: nn.Embedding | None = nn.Embedding(config.num_classes, self.trunk_dim) \
            if config.num_classes else None
        self.class_head: nn.Linear | None = nn.Linear(self.trunk_dim, config.num_classes) \
            if config.num_classes else None

    def block_activations(self, x: Tensor) -> list[Tensor]:
        """Every block's output: [(B, ndf, S/2, S/2), (B, 2 ndf, S/4, S/4), ..., (B, C, 4, 4)]."""
        activations = []
        for block in self.blocks:
            x = block(x)
            activations.append(x)
        return activations

    def trunk(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x.flatten(1)  # (B, C * 4 * 4)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.logits(self.trunk(x), labels)  # (B,)

    def logits(self, trunk: Tensor, labels: Tensor | None = None) -> Tensor:
        """The real/fake logit (B,) of trunk features (B, T); with `labels` (B,) and a
        class-conditional D, plus the projection term of every image whose label is >= 0."""
        logits = self.classifier(trunk).squeeze(1)  # (B,)
        if self.embed is None or labels is None:
            return logits
        known = labels >= 0
        projection = (self.embed(labels.clamp(min=0)) * trunk).sum(1)  # (B,)
        return logits + torch.where(known, projection, torch.zeros_like(projection))

    def classify(self, trunk: Tensor) -> Tensor:
        """Class logits (B, K) of trunk features (B, T) (a class-conditional D only)."""
        if self.class_head is None:
            raise ValueError("this discriminator has no class head (num_classes=0)")
        return self.class_head(trunk)

    def critic_weights(self) -> dict[str, Tensor]:
        """D's blocks and real/fake logit as the weights of a `build_critic` network: a plain
        discriminator that computes D's unconditional logit, without D's other heads."""
        weights = dict(self.blocks.state_dict())  # build_critic's first modules are D's blocks
        head = len(self.blocks) + 1  # after the Flatten
        weights.update({f"{head}.{name}": value for name, value in self.classifier.state_dict().items()})
        return weights

    def project(self, trunk: Tensor) -> Tensor:
        """Projection-head output for the trunk features of a batch."""
        if self.projection is None:
            raise ValueError("this discriminator has no projection head (projection_dim=0)")
        return self.projection(trunk)


@torch.no_grad()
def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2015, section 4): weights N(0, 0.02), norm scales
    N(1, 0.02), biases 0. Use as `model.apply(init_weights)`."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):  # the projection discriminator's class embedding
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, ConditionalBatchNorm2d):  # after its embeddings: `apply` visits children first
        module.reset_affine()


@torch.no_grad()
def standing_statistics(generator: Generator, *, batches: int = 20, batch_size: int = 256, seed: int = 0) -> Generator:
    """An eval-mode copy of `generator` whose BatchNorm running statistics are recomputed from
    its own weights: the mean over `batches` batches of fresh noise (the "standing statistics" of
    Brock et al. 2019, BigGAN). An EMA generator's copied statistics are those of the newest
    weights, not of the averaged ones it samples with; the gap grows with G's updates per step.
    A class-conditional generator is asked for every class equally often, as in training.
    """
    device = next(generator.parameters()).device
    fixed = copy.deepcopy(generator).train()
    norms = [m for m in fixed.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative mean over the batches, not a moving one
    rng = torch.Generator(device).manual_seed(seed)
    num_classes = generator.config.num_classes
    for _ in range(batches):
        z = torch.randn(batch_size, generator.config.latent_dim, device=device, generator=rng)
        if num_classes:
            fixed(z, torch.randint(num_classes, (batch_size,), device=device, generator=rng))
        else:
            fixed(z)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    return fixed.eval()


def build_models(config: ModelConfig) -> tuple[Generator, Discriminator]:
    """A freshly initialised generator and discriminator for `config`."""
    generator, discriminator = Generator(config), Discriminator(config)
    generator.apply(init_weights)
    discriminator.apply(init_weights)
    return generator, discriminator


def inference_copy(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` itself when it is already in eval mode on `device`, else an eval-mode copy there,
    so that sampling or feature extraction never changes the caller's model."""
    first = next(module.parameters(), None)
    if not module.training and (first is None or first.device == device):
        return module
    return copy.deepcopy(module).eval().to(device)
