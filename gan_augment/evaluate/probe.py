"""The few-label probe: how well a feature space serves a classifier that has only a few labels.

A linear classifier (logistic regression on standardised features) is fitted on k labelled
images per class and scored on a labelled test split, for several random draws of the k.
`compare_features` runs it on raw pixels, on a randomly initialised discriminator of the same
architecture and on the trained discriminator: trained features are worth having only when they
beat both.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline
from torch import Tensor

from gan_augment.config import FeatureProtocol, ModelConfig
from gan_augment.evaluate.linear import C_GRID, FIXED_C, fit_linear, fit_with_c
from gan_augment.evaluate.metrics import as_signed
from gan_augment.export.features import Features, extract_features
from gan_augment.gan.checkpoint import TrainedModel, as_trained_model
from gan_augment.gan.models import Discriminator, init_weights
from gan_augment.io.fsio import redact_url
from gan_augment.io.tables import read_features_matrix

FeatureSource = np.ndarray | Tensor | Features | str


@dataclass(frozen=True)
class ProbeResult:
    """Test accuracy of the few-label probe over several label draws.

    Attributes:
        labelled_per_class: labelled images per class in each draw.
        accuracies: test accuracy of each draw.
        c_values: the regularisation C each draw chose (or `FIXED_C`).
        num_classes: classes in the labelled pool.
        num_test: test images scored per draw.
        feature_dim: width of the features.
    """

    labelled_per_class: int
    accuracies: tuple[float, ...]
    c_values: tuple[float, ...]
    num_classes: int
    num_test: int
    feature_dim: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        """Sample standard deviation over draws (0 for a single draw)."""
        return float(np.std(self.accuracies, ddof=1)) if len(self.accuracies) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "mean": self.mean, "std": self.std}


def labelled_rows(
    features: FeatureSource, labels: Sequence[Hashable] | Mapping[str, Hashable],
    storage_options: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(X, y): the feature rows that have a label, and those labels.

    Args:
        features: an (N, d) array or tensor, a `Features` from `extract_features`, or the URL of
            a features Parquet table (a file or a folder of parts).
        labels: one label per row (a sequence), or {uri: label} joined on the rows' uris
            (`Features` and tables only); rows without a label are left out.

    Raises:
        ValueError: labels that do not fit the rows, or no labelled row at all.
    """
    if isinstance(features, str):
        uris, matrix = read_features_matrix(features, storage_options)
        where = redact_url(features)
    elif isinstance(features, Features):
        uris, matrix, where = features.uris, features.features, features.source or features.dataset
    else:
        array = features.detach().cpu().numpy() if isinstance(features, Tensor) else features
        uris, matrix, where = None, np.asarray(array, dtype=np.float32), "the feature array"
    if matrix.ndim != 2:
        raise ValueError(f"features must be (N, d); {where} has shape {matrix.shape}")
    if isinstance(labels, Mapping):
        if uris is None:
            raise ValueError("labels by uri ({uri: label}) need features with uris (a Features or a "
                             "features table); pass one label per row for an array")
        rows = [row for row, uri in enumerate(uris) if uri in labels]
        if not rows:
            example = f" (e.g. {uris[0]!r})" if uris else ""
            raise ValueError(f"none of the {len(uris)} uris of {where} has a label; key the labels by the "
                             f"table's uri column{example}")
        return matrix[rows], np.asarray([labels[uris[row]] for row in rows])
    y = np.asarray(list(labels))
    if len(y) != len(matrix):
        raise ValueError(f"{len(y)} labels for {len(matrix)} feature rows of {where}: give one per row, "
                         "or a {uri: label} mapping")
    return matrix, y


def _draw_labelled(y: np.ndarray, classes: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of k random rows of each class, without replacement."""
    return np.concatenate([rng.choice(np.flatnonzero(y == label), k, replace=False) for label in classes])


def fit_probe(
    features: np.ndarray,
    labels: Sequence[Hashable],
    *,
    c_grid: Sequence[float] = C_GRID,
    cv_folds: int = 5,
    fixed_c: float = FIXED_C,
    max_iter: int = 2000,
    seed: int = 0,
) -> Pipeline:
    """The probe's classifier fitted on all of (features, labels): standardised features,
    logistic regression, C by cross-validation on these rows (the `fixed_c` with one row in
    some class). Use it to label the rest of a pool, e.g. to split a store by class."""
    x, y = labelled_rows(features, labels)
    return fit_linear(x, y, c_grid=c_grid, cv_folds=cv_folds, fixed_c=fixed_c, max_iter=max_iter, seed=seed)


def labelled_set_accuracy(
    features: np.ndarray,
    labels: Sequence[Hashable],
    test_features: np.ndarray,
    test_labels: Sequence[Hashable],
    *,
    seed: int = 0,
) -> float:
    """Test accuracy of the probe fitted on exactly these labelled rows (`fit_probe`): what a
    team's labelled picks are worth, whatever their classes. A class the rows never show is
    never predicted; rows of a single class predict it everywhere.

    Examples:
        >>> x = np.array([[0.0], [1.0], [10.0], [11.0]])
        >>> labelled_set_accuracy(x[[0, 2]], ["a", "b"], x, ["a", "a", "b", "b"])
        1.0
        >>> labelled_set_accuracy(x[[0]], ["a"], x, ["a", "a", "b", "b"])
        0.5
    """
    y, y_test = np.asarray(list(labels)), np.asarray(list(test_labels))
    if len(y) == 0 or len(y_test) == 0:
        raise ValueError(f"{len(y)} labelled and {len(y_test)} test rows: the probe needs both")
    if len(np.unique(y)) == 1:
        return float(np.mean(y_test == y[0]))
    probe = fit_probe(np.asarray(features), list(y), seed=seed)
    return float(np.mean(probe.predict(np.asarray(test_features)) == y_test))


def few_label_probe(
    features: FeatureSource,
    labels: Sequence[Hashable] | Mapping[str, Hashable],
    labelled_per_class: int,
    test_features: FeatureSource,
    test_labels: Sequence[Hashable] | Mapping[str, Hashable],
    *,
    draws: int = 5,
    seed: int = 0,
    c_grid: Sequence[float] = C_GRID,
    cv_folds: int = 5,
    fixed_c: float = FIXED_C,
    max_iter: int = 2000,
    storage_options: dict[str, Any] | None = None,
) -> ProbeResult:
    """Few-label linear probe: draw `labelled_per_class` labelled rows per class from the pool
    (`features`, `labels`), fit logistic regression on their standardised features (scaler fitted
    on the labelled rows, C by cross-validation on them, `fixed_c` when a class has one label),
    score it on the test split; repeat for `draws` independent draws.

    Args:
        features, labels: the pool the labelled rows are drawn from (see `labelled_rows`).
        labelled_per_class: labelled rows per class in each draw.
        test_features, test_labels: the test split (same forms).
        draws: independent label draws.
        seed: seeds the draws and the cross-validation folds.
        c_grid: inverse L2 strengths tried by cross-validation.
        cv_folds: at most this many folds (at most `labelled_per_class`).
        fixed_c: C when `labelled_per_class` is 1.
        max_iter: L-BFGS iterations.
        storage_options: fsspec options for table URLs.

    Returns:
        `ProbeResult` with each draw's accuracy; `.mean` and `.std` summarise them.

    Raises:
        ValueError: a class with fewer than `labelled_per_class` pool rows, test classes that the
            pool lacks, feature widths that differ, or bad arguments.
    """
    if labelled_per_class < 1 or draws < 1:
        raise ValueError(f"labelled_per_class={labelled_per_class} and draws={draws} must both be >= 1")
    x_pool, y_pool = labelled_rows(features, labels, storage_options)
    x_test, y_test = labelled_rows(test_features, test_labels, storage_options)
    if len(x_test) == 0:
        raise ValueError("the test split is empty: give labelled test rows to score the probe on")
    if x_pool.shape[1] != x_test.shape[1]:
        raise ValueError(f"pool features are {x_pool.shape[1]}-d but test features {x_test.shape[1]}-d")
    classes, counts = np.unique(y_pool, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"the labelled pool has {len(classes)} class(es); a probe needs at least 2")
    if counts.min() < labelled_per_class:
        scarce = classes.tolist()[counts.argmin()]
        raise ValueError(f"class {scarce!r} has {counts.min()} labelled pool rows, fewer than "
                         f"labelled_per_class={labelled_per_class}; label more or ask for fewer")
    unknown = sorted(set(np.unique(y_test).tolist()) - set(classes.tolist()), key=str)
    if unknown:
        raise ValueError(f"test labels {unknown[:5]} never occur in the pool; the probe cannot predict them")
    rng = np.random.default_rng(seed)
    accuracies, c_values = [], []
    with warnings.catch_warnings():
        # A tiny labelled set is often linearly separable; L-BFGS then reaches max_iter at the
        # weakest regularisation, which cross-validation simply scores like any other C.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for draw in range(draws):
            rows = _draw_labelled(y_pool, classes, labelled_per_class, rng)
            probe, c = fit_with_c(x_pool[rows], y_pool[rows], labelled_per_class, c_grid, cv_folds, fixed_c, max_iter,
                            seed + draw)
            accuracies.append(float(np.mean(probe.predict(x_test) == y_test)))
            c_values.append(c)
    return ProbeResult(labelled_per_class, tuple(accuracies), tuple(c_values), len(classes), len(y_test),
                       x_pool.shape[1])


def random_discriminator(config: ModelConfig, seed: int = 0) -> Discriminator:
    """A discriminator of `config`'s architecture with the DCGAN initialisation drawn from `seed`,
    in eval mode: the baseline a trained discriminator's features must beat."""
    with torch.random.fork_rng(devices=[]):  # init_weights draws from the global RNG; leave the caller's alone
        torch.manual_seed(seed)
        discriminator = Discriminator(config)
        discriminator.apply(init_weights)
    return discriminator.eval()


def compare_features(
    model: str | TrainedModel,
    pool_images: Tensor,
    pool_labels: Sequence[Hashable],
    test_images: Tensor,
    test_labels: Sequence[Hashable],
    labelled_per_class: Sequence[int] = (1, 5, 10),
    *,
    draws: int = 5,
    seed: int = 0,
    protocol: FeatureProtocol | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    storage_options: dict[str, Any] | None = None,
) -> dict[str, dict[int, ProbeResult]]:
    """The few-label probe on three feature spaces of the same images: raw pixels, a randomly
    initialised discriminator of the model's architecture (seeded by `seed`), and the model's
    trained discriminator, both by `protocol` (default: `FeatureProtocol()`).

    Args:
        model: a model directory URL or a `TrainedModel`.
        pool_images, test_images: (N, C, S, S) images, uint8 or float in [-1, 1].
        pool_labels, test_labels: one label per image.
        labelled_per_class: the k values to probe.
        draws, seed: as `few_label_probe`; every feature space sees the same label draws.

    Returns:
        {"pixels" | "random D" | "trained D": {k: ProbeResult}}.
    """
    model = as_trained_model(model, device=device, storage_options=storage_options)
    untrained = dataclasses.replace(model, discriminator=random_discriminator(model.model_config, seed).to(device))
    spaces = {"pixels": (as_signed(pool_images).flatten(1).numpy(), as_signed(test_images).flatten(1).numpy())}
    for name, source in (("random D", untrained), ("trained D", model)):
        spaces[name] = tuple(extract_features(source, images, protocol=protocol, batch_size=batch_size,
                                              device=device).features
                             for images in (pool_images, test_images))
    return {name: {k: few_label_probe(pool, pool_labels, k, test, test_labels, draws=draws, seed=seed)
                   for k in labelled_per_class}
            for name, (pool, test) in spaces.items()}
