"""Keep one dataset's model up to date: train when its data or its config changed since the
model card was written, skip when nothing did, resume when a previous run crashed.

Scheduled pipelines call `refresh_model` on every dataset every night; an unchanged dataset
then costs one pass over the store (for the data fingerprint) instead of a training run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.gan.checkpoint import read_model_card
from gan_augment.io.fsio import basename, exists
from gan_augment.io.labels import read_labels
from gan_augment.layout import manifest_url, model_file, validate_dataset_name
from gan_augment.layout import model_dir as model_dir_of
from gan_augment.scan.cache import build_cache
from gan_augment.training.labels import cache_labels, labels_fingerprint
from gan_augment.training.trainer import Trainer, TrainResult, effective_model_config, resolve_steps

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float, dict[str, float]], None]


@dataclass
class RefreshResult:
    """What `refresh_model` did for one dataset.

    Attributes:
        dataset: the dataset name.
        model_dir: `out/<dataset>/model`.
        status: "trained" or "skipped".
        reason: why it trained ("no model yet", "the data changed", ...) or why it skipped.
        card: the model card now in `model_dir`.
        train_result: the training run's result; None when skipped.
    """

    dataset: str
    model_dir: str
    status: str
    reason: str
    card: dict[str, Any]
    train_result: TrainResult | None = None


def stale_reason(
    card: dict[str, Any] | None, fingerprint: str, model_config: ModelConfig, train_config: TrainConfig,
    labels_fingerprint: str | None = None,
) -> str | None:
    """Why the model described by `card` must be (re)trained, or None when it is up to date.

    `model_config` is compared as the trainer records it (see `training.trainer.effective_model_config`);
    `labels_fingerprint` is that of a class-conditional run's labels (`labels.labels_fingerprint`).
    """
    if card is None:
        return "no model yet"
    if card.get("data_fingerprint") != fingerprint:
        return "the data changed since the last training"
    if card.get("model_config") != effective_model_config(model_config, train_config).to_dict():
        return "the model config changed"
    recorded, current = card.get("train_config") or {}, train_config.to_dict()
    if "finish_steps" not in recorded and train_config.finish_steps is None \
            and train_config.finish_steps_for(1, model_config) == 0:
        # A card from before the automatic finish, which left out its default of 0: where the
        # automatic finish is 0 as well (colour, a critic, classes; the rule gives 0 for one step
        # only where it gives 0 for every budget), the model is what it would be.
        current.pop("finish_steps")
    if recorded != current:
        return "the training config changed"
    if (card.get("labels") or {}).get("fingerprint") != labels_fingerprint:
        return "the labels changed"
    return None


def refresh_model(
    source: str,
    out: str,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    *,
    dataset: str | None = None,
    storage_options: dict[str, Any] | None = None,
    force: bool = False,
    callback: ProgressCallback | None = None,
    labels: str | Mapping[str, Hashable] | None = None,
) -> RefreshResult:
    """Train `dataset` unless the model in `out/<dataset>/model` is already up to date.

    Up to date means: a model file exists and its card records the current data fingerprint,
    model config and training config. Otherwise `train()` runs, resuming from the newest
    compatible checkpoint a crashed run left behind.

    Args:
        source: the dataset's folder/prefix (any fsspec URL).
        out: the output root.
        model_config, train_config: defaults when None.
        dataset: the dataset name; defaults to the last path component of `source`.
        storage_options: fsspec options for `source` and `out`.
        force: train even when the model is up to date.
        callback: called with (fraction done in [0, 1], metrics row) at every logging step; the
            fraction counts steps, or elapsed time against `max_seconds` when that is further.
        labels: a `uri,label` file (CSV or Parquet, as `io.labels.read_labels` reads it) or
            {image key: label} for some or all images: the model is class-conditional (see
            `trainer.train`), and a change of the labels retrains it.

    Raises:
        FileNotFoundError: no images under `source`.
        ValueError: no image could be decoded.
    """
    model_config, train_config = model_config or ModelConfig(), train_config or TrainConfig()
    dataset = validate_dataset_name(dataset or basename(source))
    model_dir = model_dir_of(out, dataset)
    # The scan's manifest, when there is one, spares reading objects it already rejected.
    cache = build_cache(source, model_config.image_size, model_config.channels, storage_options,
                        manifest=manifest_url(out, dataset), **model_config.decode_options)
    classes, per_image = None, None
    if labels is not None:
        labels = read_labels(labels, storage_options) if isinstance(labels, str) else labels
        classes, per_image = cache_labels(cache, labels, source, storage_options)
        model_config = dataclasses.replace(model_config, num_classes=len(classes))
    card = read_model_card(model_dir, storage_options)
    if force:
        reason = "forced"
    elif not exists(model_file(model_dir), storage_options):
        reason = "no model yet"
    else:
        reason = stale_reason(card, cache.fingerprint, model_config, train_config,
                              labels_fingerprint(classes, per_image) if classes else None)
    if reason is None:
        assert card is not None
        log.info("%s: model is up to date (same data fingerprint and config); skipping training", dataset)
        return RefreshResult(dataset, model_dir, "skipped", "up to date: same data and config", card)

    log.info("%s: training (%s)", dataset, reason)
    report = None
    if callback is not None:
        main_steps = resolve_steps(train_config, len(cache), image_size=model_config.image_size)
        total_steps = main_steps + train_config.finish_steps_for(main_steps, model_config)
        started = time.monotonic()

        def report(row: dict[str, float]) -> None:
            fraction = row["step"] / total_steps
            if train_config.max_seconds is not None:
                fraction = max(fraction, (time.monotonic() - started) / train_config.max_seconds)
            callback(min(1.0, fraction), row)

    # The Trainer itself rather than train(cache, ...): it records `source` in the model card,
    # where exports find the real images again.
    trainer = Trainer(cache, model_dir, model_config, train_config, dataset=dataset, source=source,
                      storage_options=storage_options, callback=report, labels=per_image, classes=classes)
    result = trainer.run()
    card = read_model_card(model_dir, storage_options) or {}
    return RefreshResult(dataset, model_dir, "trained", reason, card, result)
