"""Evaluate a trained model: how close its samples are to the real images (SWD, and FID/KID when
a feature extractor is given), each against the real-vs-real floor, and, with labels, how well
its discriminator's features serve a few-label classifier. Results go into the model card.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gan_augment.config import FeatureProtocol
from gan_augment.evaluate.fid import (
    FidKid,
    extract_image_features,
    extractor_metric,
    extractor_name,
    fid_kid_from_features,
    resolve_extractor,
)
from gan_augment.evaluate.metrics import SlicedWasserstein, sliced_wasserstein
from gan_augment.evaluate.probe import ProbeResult, compare_features
from gan_augment.export.synthetic import SyntheticDataset
from gan_augment.gan.checkpoint import (
    TrainedModel,
    as_trained_model,
    read_model_card,
    resolve_model_location,
    write_model_card,
)
from gan_augment.io.fsio import redact_url
from gan_augment.io.labels import match_labels
from gan_augment.scan.cache import build_cache

CARD_KEY = "evaluation"
# Labelled images per class the probe tries when not told: those every class's pool can give.
DEFAULT_LABELLED_PER_CLASS = (1, 5, 10)

log = logging.getLogger("gan_augment")


@dataclass
class Evaluation:
    """What `evaluate_model` measured. Each distance compares a set with the same reference half
    of the real images: `*_real` uses the other, disjoint half, which is the floor that a perfect
    generator would reach with this many images.

    Attributes:
        model_id, dataset: the model evaluated.
        source: the real images' URL (credentials removed).
        num_images: images per compared set (real reference, generated, real floor).
        seed: seeds the split, the samples and the metrics' random draws.
        swd, swd_real: sliced Wasserstein distance of generated and of real images.
        fid, fid_real: FID/KID of the same sets, when a feature extractor was given.
        probes: {"pixels" | "random D" | "trained D": {k: ProbeResult}} with labels, else empty.
    """

    model_id: str
    dataset: str
    source: str
    num_images: int
    seed: int
    swd: SlicedWasserstein
    swd_real: SlicedWasserstein
    fid: FidKid | None = None
    fid_real: FidKid | None = None
    probes: dict[str, dict[int, ProbeResult]] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values, as stored under `evaluation` in the model card."""
        return {
            "model_id": self.model_id, "dataset": self.dataset, "source": self.source,
            "num_images": self.num_images, "seed": self.seed, "created_at": self.created_at,
            "swd": self.swd.to_dict(), "swd_real": self.swd_real.to_dict(),
            "fid": self.fid.to_dict() if self.fid else None,
            "fid_real": self.fid_real.to_dict() if self.fid_real else None,
            "probes": {name: {str(k): r.to_dict() for k, r in by_k.items()} for name, by_k in self.probes.items()},
        }


@dataclass(frozen=True)
class ComparedSets:
    """The image sets a model's samples are measured on: two disjoint halves of a seeded random
    subset of the real images, and as many generated samples.

    Attributes:
        reference: (n, C, S, S) real images, the reference of every distance.
        holdout: (n, C, S, S) the other real half; its distance to `reference` is the floor.
        generated: (n, C, S, S) uint8 samples, `SyntheticDataset(model, num_samples=n, seed=seed)`.
    """

    reference: Tensor
    holdout: Tensor
    generated: Tensor

    @property
    def num_images(self) -> int:
        """Images per set."""
        return len(self.reference)


def compared_sets(model: TrainedModel, images: Tensor, *, max_images: int = 10_000, seed: int = 0,
                  device: str | torch.device = "cpu") -> ComparedSets:
    """Split at most `max_images` real images (a seeded random subset) into a reference and a
    holdout half, and draw as many samples from `model`.

    The subset is random, not the first rows: images listed in an order that follows their
    content (files named by class, say) would otherwise give a floor measured on a few classes
    against all of them.

    Args:
        model: the trained model whose samples are compared.
        images: (N, C, S, S) real images, uint8 or float in [-1, 1].
        max_images: at most this many real images, both halves together.
        seed: seeds the subset, the halves and the samples.
        device: where the generator runs.

    Raises:
        ValueError: fewer than 4 real images (two halves of at least 2) once capped.
    """
    if min(len(images), max_images) < 4:
        raise ValueError(f"{min(len(images), max_images)} real image(s) to compare; the two halves need at least 4")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:max_images]
    half = len(order) // 2
    generated = SyntheticDataset(model, num_samples=half, seed=seed, output="uint8",
                                 device=device).images(range(half))
    return ComparedSets(images[order[:half]], images[order[half:2 * half]], generated)


@dataclass(frozen=True)
class SwdWithFloor:
    """SWD of a model's samples next to its real-vs-real floor, both against the same reference.

    Attributes:
        samples: SWD between the reference half and the generated samples.
        floor: SWD between the reference half and the holdout half: what samples as close to the
            data as other real images would reach with this many images.
    """

    samples: SlicedWasserstein
    floor: SlicedWasserstein

    @property
    def ratio(self) -> float:
        """The samples' mean distance over the floor's: 1 for samples as close as real images."""
        return self.samples.mean / self.floor.mean


def swd_with_floor(sets: ComparedSets, *, seed: int = 0) -> SwdWithFloor:
    """SWD of the generated samples and of the holdout half, each against the reference half;
    what `evaluate_model` (and `gan-augment evaluate`) reports as SWD and its floor.

    Args:
        sets: the compared images, from `compared_sets`.
        seed: seeds the metric's patch positions and directions (the same for both distances).

    Returns:
        `SwdWithFloor`.
    """
    return SwdWithFloor(samples=sliced_wasserstein(sets.reference, sets.generated, seed=seed),
                        floor=sliced_wasserstein(sets.reference, sets.holdout, seed=seed))


def _split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pool, test) positions: `test_fraction` of each class goes to the test split."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction} must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    pool, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = int(round(len(members) * test_fraction))
        test.extend(members[:cut])
        pool.extend(members[cut:])
    return np.sort(np.asarray(pool, dtype=int)), np.sort(np.asarray(test, dtype=int))


def _probe_split(
    labels: Mapping[str, Hashable] | Sequence[Hashable], num_images: int, uris: Sequence[str] | None,
    source: str | Tensor, labelled_per_class: Sequence[int] | None, test_fraction: float, seed: int,
    storage_options: dict[str, Any] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """(pool rows, pool labels, test rows, test labels, labelled per class) of the labelled
    images: `test_fraction` of each class is test, and every class keeps at least
    max(`labelled_per_class`) in the pool. None takes those of `DEFAULT_LABELLED_PER_CLASS` that
    every class can give (1 at least): a few picks labelled by hand probe without a flag."""
    if isinstance(labels, Mapping):
        if uris is None or not isinstance(source, str):
            raise ValueError("labels by URI need real_source as a URL; give one label per image for a tensor")
        rows, found = match_labels(uris, labels, source, storage_options)
    else:
        rows, found = np.arange(num_images), np.asarray(list(labels))
        if len(found) != num_images:
            raise ValueError(f"{len(found)} labels for {num_images} images: give one per image")
    pool, test = _split(found, test_fraction, seed)
    classes, counts = np.unique(found[pool], return_counts=True)
    if labelled_per_class is None:
        fewest = int(counts.min()) if len(counts) else 1
        labelled_per_class = tuple(k for k in DEFAULT_LABELLED_PER_CLASS if k <= fewest) or (1,)
    if len(classes) and counts.min() < max(labelled_per_class, default=1):
        raise ValueError(f"class {classes.tolist()[counts.argmin()]!r} has {counts.min()} labelled images left "
                         f"for the probe's pool after the test split; label more images or lower "
                         f"labelled_per_class (up to {max(labelled_per_class)} now)")
    if len(test) == 0:
        raise ValueError("the probe's test split is empty; label more images or raise test_fraction")
    return rows[pool], found[pool], rows[test], found[test], tuple(labelled_per_class)


def evaluate_model(
    model: str | TrainedModel,
    real_source: str | Tensor,
    *,
    extractor: nn.Module | str | None = None,
    labels: Mapping[str, Hashable] | Sequence[Hashable] | None = None,
    labelled_per_class: Sequence[int] | None = None,
    draws: int = 5,
    test_fraction: float = 0.5,
    protocol: FeatureProtocol | None = None,
    max_images: int = 10_000,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    write_card: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> Evaluation:
    """Sample quality of a trained model and, with labels, the few-label probe of its features.

    The real images (at most `max_images`, a seeded random subset) are split into two disjoint
    halves: a reference half, compared with as many generated samples (`SyntheticDataset` with
    `seed`) and with the other half, whose distance is the floor for this sample size
    (`compared_sets` and `swd_with_floor`, which give the same SWD when called directly).

    Args:
        model: a model directory `OUT/<dataset>/model` (any fsspec URL) or a `TrainedModel`.
        real_source: the real images: a folder/prefix URL (decoded at the model's size by the
            training path) or an (N, C, S, S) tensor, uint8 or float in [-1, 1].
        extractor: for FID/KID, the FID Inception weights file (`pt_inception-2015-12-05-6726825d.pth`);
            torchvision's Inception-v3 weights file or an `nn.Module` give FD/KD instead (see
            `fid.fid_kid`); None skips them.
        labels: {image URI or path under `real_source`: label}, or one label per image of a
            tensor; runs `probe.compare_features` on a stratified pool/test split of the labelled
            images (`test_fraction` of each class is test).
        labelled_per_class: labelled images per class the probe draws; None: those of 1, 5 and
            10 that every class's pool can give (1 at least).
        draws, protocol: passed to the probe.
        max_images: at most this many real images for the distances (a seeded random subset).
        seed: seeds the subset, the halves, the samples, the metrics and the label draws.
        batch_size: images per discriminator forward in the probe.
        device: where the generator, the discriminators and the extractor run.
        write_card: store the results under "evaluation" in the model card (model directory
            given as a URL only).
        storage_options: fsspec options for every URL.

    Raises:
        FileNotFoundError: no model, no images, or no weights file.
        ValueError: fewer than 4 real images, labels that match no image or leave a class too
            small, or a bad extractor.
    """
    if max_images < 4:
        raise ValueError(f"max_images={max_images} must be >= 4 (two halves of at least 2 images)")
    if labels is not None and (draws < 1 or (labelled_per_class is not None and (
            not labelled_per_class or min(labelled_per_class) < 1))):
        raise ValueError(f"the probe needs draws >= 1 and labelled_per_class values >= 1; got draws={draws}, "
                         f"labelled_per_class={labelled_per_class}")
    trained = as_trained_model(model, device=device, storage_options=storage_options)
    config = trained.model_config
    if isinstance(real_source, str):
        cache = build_cache(real_source, config.image_size, config.channels, storage_options, **config.decode_options)
        images, uris, source = cache.images, cache.uris, redact_url(real_source)
    else:
        images, uris, source = torch.as_tensor(real_source), None, "in-memory images"
    if len(images) < 4:
        raise ValueError(f"{source} holds {len(images)} image(s); evaluation needs at least 4 (two halves of 2)")
    # Everything that can fail on bad input fails before the long computations.
    probe_split = None if labels is None else _probe_split(labels, len(images), uris, real_source, labelled_per_class,
                                                           test_fraction, seed, storage_options)
    module = resolve_extractor(extractor, storage_options) if extractor is not None else None

    sets = compared_sets(trained, images, max_images=max_images, seed=seed, device=device)
    swd = swd_with_floor(sets, seed=seed)
    evaluation = Evaluation(trained.model_id, trained.dataset, source, sets.num_images, seed,
                            swd=swd.samples, swd_real=swd.floor)
    if module is not None:
        feats = [extract_image_features(module, x, device=device)
                 for x in (sets.reference, sets.generated, sets.holdout)]
        name, metric = extractor_name(module), extractor_metric(module)
        evaluation.fid = fid_kid_from_features(feats[0], feats[1], name, seed=seed, metric=metric)
        evaluation.fid_real = fid_kid_from_features(feats[0], feats[2], name, seed=seed, metric=metric)
    if probe_split is not None:
        pool_rows, pool_labels, test_rows, test_labels, ks = probe_split
        evaluation.probes = compare_features(trained, images[pool_rows], pool_labels, images[test_rows], test_labels,
                                             ks, draws=draws, seed=seed, protocol=protocol,
                                             batch_size=batch_size, device=device)
    if write_card and isinstance(model, str):
        model_dir = resolve_model_location(model)[1]
        card = read_model_card(model_dir, storage_options) or {}
        write_model_card(model_dir, {**card, CARD_KEY: evaluation.to_dict()}, storage_options)
    return evaluation


def format_table(evaluation: Evaluation) -> str:
    """The evaluation as a plain-text table (SWD and KID shown x 1e3, as Karras et al. report SWD)."""
    e = evaluation
    lines = [f"{e.dataset} ({e.model_id}) vs {e.source}: {e.num_images} images per set, seed {e.seed}", "",
             f"{'metric':<24}{'generated':>12}{'real (floor)':>14}"]
    rows = [("SWD mean x1e3", e.swd.mean * 1e3, e.swd_real.mean * 1e3)]
    rows += [(f"SWD {side}x{side} x1e3", gen * 1e3, real * 1e3)
             for side, gen, real in zip(e.swd.resolutions, e.swd.distances, e.swd_real.distances)]
    if e.fid is not None and e.fid_real is not None:
        rows += [(e.fid.metric, e.fid.fid, e.fid_real.fid),
                 (f"{e.fid.kid_name} x1e3", e.fid.kid * 1e3, e.fid_real.kid * 1e3)]
    lines += [f"{name:<24}{gen:>12.3f}{real:>14.3f}" for name, gen, real in rows]
    if e.fid is not None:
        lines.append(f"{e.fid.metric}/{e.fid.kid_name} in the features of {e.fid.extractor}"
                     + ("" if e.fid.metric == "FID" else " (not comparable with published FID/KID)"))
    if e.probes:
        ks = sorted({k for by_k in e.probes.values() for k in by_k})
        first = next(iter(next(iter(e.probes.values())).values()))
        lines += ["", f"few-label probe: test accuracy % (mean +- std over {len(first.accuracies)} draws, "
                      f"{first.num_test} test images)",
                  f"{'features':<24}" + "".join(f"{f'{k} / class':>16}" for k in ks)]
        for name, by_k in e.probes.items():
            cells = [f"{by_k[k].mean * 100:.1f} +- {by_k[k].std * 100:.1f}" if k in by_k else "-" for k in ks]
            lines.append(f"{name:<24}" + "".join(f"{cell:>16}" for cell in cells))
    return "\n".join(lines)
