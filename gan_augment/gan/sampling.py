"""The determinism rule of synthetic samples, shared by `SyntheticDataset` and the Parquet export.

- Sample `index` of a run with `seed` has the per-sample seed `seed * 2**32 + index`
  (`sample_seed`; the `seed` column of the synthetic table), and its noise is
  `numpy.random.Generator(numpy.random.Philox(key=sample_seed)).standard_normal(latent_dim,
  dtype=float32)` (`sample_noise`).
- Images are generated in fixed, aligned blocks: block `b` holds indices
  `[b * block_size, (b + 1) * block_size)` and always goes through the EMA generator (eval mode,
  no grad) as one batch, whatever is asked of it (`generate_block`).
- A class-conditional generator gets the class index of the block's label for every sample
  of the block: sample `index` of class `k` has the noise of sample `index` (any class) and
  class `k`, so a sample is a function of (model, seed, index, label).
- The output in [-1, 1] is quantised to uint8 exactly as a PNG export stores it
  (`visualize.images_to_uint8`).
- Fresh samples per epoch (`SyntheticDataset.set_epoch`) change only the run's seed: epoch `e`
  of a run with `seed` is the run with `epoch_seed(seed, e)` (epoch 0: `seed` itself), so a
  sample is a pure function of (model, seed, epoch, index) and the `seed` column of its row
  still regenerates it alone.

A convolution's result for one sample can differ in the last bits with the batch it is computed
in, so the fixed blocks are what make a sample identical across processes, DataLoader workers,
repeated calls and the exported row (for one `block_size` and one kind of device).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from gan_augment.gan.models import Generator
from gan_augment.gan.pixels import images_to_uint8

BLOCK_SIZE = 256
_INDEX_BITS = 32


def sample_seed(seed: int, index: int) -> int:
    """The per-sample seed of sample `index` of a run with `seed`: `seed * 2**32 + index`.

    It is invertible (`divmod(sample_seed, 2**32) == (seed, index)`), so a `seed` value of the
    synthetic table alone names its run, its index and therefore its exact block.
    """
    if not 0 <= seed < 2 ** (63 - _INDEX_BITS):
        raise ValueError(f"seed={seed} is out of range: use an integer in [0, 2**31)")
    if not 0 <= index < 2**_INDEX_BITS:
        raise ValueError(f"index={index} is out of range: at most 2**32 samples per seed")
    return (seed << _INDEX_BITS) | index


def epoch_seed(seed: int, epoch: int) -> int:
    """The run seed of epoch `epoch` of a run with `seed`: `seed` itself for epoch 0, else
    `int(numpy.random.SeedSequence([seed, epoch]).generate_state(1, numpy.uint32)[0]) >> 1`, a
    seed in [0, 2**31) like any other (SeedSequence hashes its entropy, so neighbouring seeds
    and epochs give unrelated runs).

    Examples:
        >>> epoch_seed(7, 0)
        7
        >>> epoch_seed(7, 1) == epoch_seed(7, 1) != epoch_seed(7, 2)
        True
    """
    sample_seed(seed, 0)  # validates the seed
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(f"epoch={epoch!r} must be an integer >= 0")
    if epoch == 0:
        return seed
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint32)[0]) >> 1


def sample_noise(sample_seeds: Sequence[int], latent_dim: int) -> Tensor:
    """The noise of each sample: Philox keyed by its sample seed, standard normal float32.

    Why not `torch.Generator`: its CPU generator (mt19937) keeps only the low 32 bits of a
    seed, so sample seeds 2**32 apart would repeat their noise. Philox is counter-based and
    keyed (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"), so consecutive
    keys give independent streams.

    Returns:
        (B, latent_dim) float32 tensor on the CPU.
    """
    noise = np.empty((len(sample_seeds), latent_dim), dtype=np.float32)
    for row, key in enumerate(sample_seeds):
        noise[row] = np.random.Generator(np.random.Philox(key=key)).standard_normal(latent_dim, dtype=np.float32)
    return torch.from_numpy(noise)


@torch.no_grad()
def generate_block(generator: Generator, seed: int, block: int, block_size: int = BLOCK_SIZE,
                   class_index: int | None = None) -> Tensor:
    """Block `block` of the run with `seed`: indices [block * block_size, (block + 1) * block_size),
    all of class `class_index` for a class-conditional generator (which needs one).

    `generator` must be in eval mode (BatchNorm on running statistics), so each sample depends
    only on its own noise (and class).

    Returns:
        (block_size, C, S, S) uint8 tensor on the CPU.
    """
    assert not generator.training, "generate with the generator in eval mode"
    start = block * block_size
    seeds = [sample_seed(seed, index) for index in range(start, start + block_size)]
    device = next(generator.parameters()).device
    z = sample_noise(seeds, generator.config.latent_dim).to(device)  # (block_size, latent_dim)
    num_classes = generator.config.num_classes
    if (class_index is not None) != bool(num_classes) or not 0 <= (class_index or 0) < max(num_classes, 1):
        raise ValueError(f"class_index={class_index!r} for a generator with {num_classes} classes: a "
                         "class-conditional generator needs a class index in [0, num_classes), another none")
    labels = None if class_index is None else torch.full((block_size,), class_index, dtype=torch.int64, device=device)
    return images_to_uint8(generator(z, labels)).cpu()  # (block_size, C, S, S)
