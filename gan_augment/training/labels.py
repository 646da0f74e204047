"""Labels of a class-conditional run: the class list and one label per training image (-1 for
an image without one), and the pseudo-labels that the discriminator's own features give the
unlabelled images partway through training."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gan_augment.gan.models import Discriminator, inference_copy
from gan_augment.gan.pixels import to_model_range
from gan_augment.io.labels import match_labels
from gan_augment.scan.cache import ImageCache

UNLABELLED = -1
# Regularisation strengths the pseudo-labelling classifier chooses from by cross-validation.
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def class_names(labels: Mapping[str, Hashable]) -> list[str]:
    """The classes of a labels mapping as strings (ImageFolder's convention: a class is a name),
    in numeric order when every name is an integer, else in string order."""
    names = {str(label) for label in labels.values()}
    numeric = all(name.lstrip("-").isdigit() for name in names)
    return sorted(names, key=lambda name: (int(name), name) if numeric else (0, name))


def cache_labels(cache: ImageCache, labels: Mapping[str, Hashable], source: str = "",
                 storage_options: dict[str, Any] | None = None) -> tuple[list[str], Tensor]:
    """(classes, (N,) int64 class index of each cache image, -1 where it has no label). Labels are
    keyed by the image's URI, its URI without the protocol, or its path relative to `source`.

    Raises:
        ValueError: no image has a label, or fewer than two classes.
    """
    classes = class_names(labels)
    if len(classes) < 2:
        raise ValueError(f"a class-conditional model needs at least two classes; the labels name {classes}")
    rows, found = match_labels(cache.uris, labels, source or "", storage_options)
    index = {name: position for position, name in enumerate(classes)}
    out = torch.full((len(cache),), UNLABELLED, dtype=torch.int64)
    out[torch.as_tensor(rows)] = torch.as_tensor([index[str(label)] for label in found])
    return classes, out


def labels_fingerprint(classes: list[str], labels: Tensor) -> str:
    """A short hash of a run's classes and per-image labels: part of its model id and card."""
    key = json.dumps(classes) + "\0" + ",".join(map(str, labels.tolist()))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@torch.no_grad()
def discriminator_pool_features(discriminator: Discriminator, images: Tensor, device: torch.device,
                                batch_size: int = 512) -> np.ndarray:
    """Every block of D (in eval mode) max-pooled to 2x2, as the default feature protocol takes
    them, for (N, C, S, S) uint8 images: (N, d) float32."""
    network = inference_copy(discriminator, device)
    out = []
    for start in range(0, len(images), batch_size):
        batch = to_model_range(images[start:start + batch_size]).to(device)
        activations = network.block_activations(batch)
        out.append(torch.cat([F.adaptive_max_pool2d(a.float(), 2).flatten(1) for a in activations], 1).cpu())
    return torch.cat(out).numpy()


def pseudo_labels(features: np.ndarray, given: Tensor, threshold: float, seed: int = 0) -> Tensor:
    """`given` (N,) with every unlabelled image (-1) that a logistic regression on the labelled
    images' standardised `features` (N, d) assigns to a class with probability >= `threshold`
    labelled so; the others stay -1. The labelled images keep their labels."""
    from sklearn.linear_model import LogisticRegression  # here: scikit-learn is slow to import
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    known = (given >= 0).numpy()
    if known.all() or not known.any():
        return given.clone()
    x, y = features[known], given.numpy()[known]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = min(3, int(min(np.sum(y == c) for c in np.unique(y))))
    if folds >= 2:
        # Chosen by log loss, not accuracy: the threshold is on probabilities, so they should be calibrated
        # (with a few labels, every C often classifies the folds alike).
        model = GridSearchCV(model, {"logisticregression__C": C_GRID}, scoring="neg_log_loss",
                             cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    model.fit(x, y)
    probabilities = model.predict_proba(features[~known])  # (U, K seen)
    confident = probabilities.max(1) >= threshold
    out = given.clone()
    rows = torch.as_tensor(np.flatnonzero(~known)[confident])
    out[rows] = torch.as_tensor(model.classes_[probabilities.argmax(1)[confident]], dtype=torch.int64)
    return out
