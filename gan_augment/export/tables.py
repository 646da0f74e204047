"""Parquet exports: synthetic samples of a model, and discriminator features of real images.

Both stream: rows are produced block by block (samples) or batch by batch (features) and
written as row groups of bounded size into atomically written part files (`parquet.write_parts`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor

from gan_augment.export.features import Features
from gan_augment.export.heap import HeapTrimmer
from gan_augment.export.scores import fit_outlier_scorer
from gan_augment.export.synthetic import SyntheticDataset
from gan_augment.gan.checkpoint import TrainedModel, as_trained_model
from gan_augment.gan.sampling import BLOCK_SIZE
from gan_augment.gan.visualize import encode_png
from gan_augment.io.parquet import PART_BYTES, gan_augment_metadata
from gan_augment.io.tables import features_table, synthetic_table, write_features, write_synthetic

Progress = Callable[[int, int], None]


@dataclass
class ExportResult:
    """What an export wrote.

    Attributes:
        files: the Parquet files written, in order.
        rows: rows written.
        skipped: source objects that gave no row, with the reason (features only).
    """

    files: list[str]
    rows: int
    skipped: dict[str, str] = field(default_factory=dict)


def _encode_pngs(images: Tensor, pool: ThreadPoolExecutor) -> list[bytes]:
    """PNG bytes of each (C, S, S) uint8 image; zlib releases the GIL, so threads overlap."""
    return list(pool.map(encode_png, images))


def export_samples(
    model: str | TrainedModel,
    out: str,
    num_samples: int,
    *,
    seed: int = 0,
    block_size: int = BLOCK_SIZE,
    device: str | torch.device = "cpu",
    image_size: int | None = None,
    storage_options: dict[str, Any] | None = None,
    part_bytes: int = PART_BYTES,
    progress: Progress | None = None,
    labels: Sequence[Hashable] | None = None,
) -> ExportResult:
    """Write `num_samples` generated samples of `model` as a synthetic table; of a
    class-conditional model, `num_samples` of each class of `labels` (None: every class), class
    after class, with the class in the `label` column.

    The row with `index` i holds exactly `SyntheticDataset(model, num_samples, seed=seed)[i]`
    as PNG bytes (of class k: `SyntheticDataset(model, labels=[k], num_samples_per_class=
    num_samples, seed=seed)[i]`); its `seed` column is `seed * 2**32 + i` and regenerates it on
    its own, with its label (see `sampling` for the rule).

    Args:
        model: a model directory `OUT/<dataset>/model` (any fsspec URL) or a `TrainedModel`.
        out: a `.parquet` file, or a folder (e.g. `OUT/<dataset>/synthetic`) that receives
            `part-*.parquet` files of about `part_bytes` each.
        num_samples: rows to write.
        seed: the run's seed in [0, 2**31).
        block_size: samples per generator batch (part of the determinism rule).
        device: where the generator runs.
        image_size: the image size the caller expects; a model of another size is an error.
        storage_options: fsspec options for `model` and `out`.
        part_bytes: target size of one part file.
        progress: called with (samples done, total) after every block.
        labels: the classes to export of a class-conditional model.

    Raises:
        FileNotFoundError: no model at `model`.
        ValueError: a damaged model, a model of another size than `image_size`, or bad arguments.

    Examples:
        >>> import pyarrow.parquet as pq
        >>> result = export_samples(trained_model, f"{out}/shapes/synthetic", 300, seed=0)
        >>> result.rows, [name.rsplit("/", 1)[1] for name in result.files]
        (300, ['part-00000.parquet'])
        >>> pq.read_table(result.files[0]).column_names
        ['image', 'dataset', 'model_id', 'seed', 'index', 'width', 'height', 'label']
    """
    model = as_trained_model(model, device=device, storage_options=storage_options)
    request: dict[str, Any] = {"labels": labels, "num_samples_per_class": num_samples} if model.classes else \
        {"num_samples": num_samples}
    # Each block is read once, in order: a cache of one block is all the export needs.
    samples = SyntheticDataset(model, seed=seed, output="uint8", device=device, block_size=block_size,
                               image_size=image_size, cache_bytes=0, **request)
    config, classes = model.model_config, samples.classes or [None]
    metadata = gan_augment_metadata(
        model.dataset, model.model_id, config.to_dict(), table="synthetic", seed=seed, num_samples=num_samples,
        block_size=block_size, device_type=torch.device(device).type,
        sample_seed="seed * 2**32 + index",
        noise="numpy.random.Generator(numpy.random.Philox(key=sample_seed)).standard_normal(latent_dim, float32)",
        **({"classes": samples.classes} if model.classes else {}),
    )

    trim_heap = HeapTrimmer()

    def tables(pool: ThreadPoolExecutor) -> Iterator[pa.Table]:
        for position, label in enumerate(classes):  # one class after another; [None]: unconditional
            offset = position * num_samples
            for start in range(0, num_samples, block_size):
                indices = range(start, min(start + block_size, num_samples))
                rows = [offset + i for i in indices]
                yield synthetic_table(
                    _encode_pngs(samples.images(rows), pool), dataset=model.dataset, model_id=model.model_id,
                    seeds=[samples.sample_seed(row) for row in rows], indices=indices,
                    width=config.image_size, height=config.image_size, label=label)
                trim_heap()  # what the generator's forward freed (export.heap)
                if progress:
                    progress(offset + indices.stop, len(samples))

    with ThreadPoolExecutor(max_workers=4) as pool:
        files = write_synthetic(out, tables(pool), metadata, storage_options, part_bytes)
    return ExportResult(files, len(samples))


def export_features(
    features: Features,
    out: str,
    *,
    storage_options: dict[str, Any] | None = None,
    part_bytes: int = PART_BYTES,
    progress: Progress | None = None,
) -> ExportResult:
    """Write features as a features table: one row per image (uri, dataset, model_id, feature,
    and the image's perceptual hash, D's real/fake logit, its kNN distance and outlier score:
    `export.scores`), streamed batch by batch, the protocol recorded in the `gan_augment` metadata.

    Args:
        features: what `features.extract_features` returns, e.g.
            `extract_features("s3://out/cams/model", "s3://lake/cams")`.
        out: a `.parquet` file, or a folder (e.g. `OUT/<dataset>/features`) of part files.
        storage_options: fsspec options for `out`.
        part_bytes: target size of one part file.
        progress: called with (images done, total) after every batch.

    Returns:
        The files written, the row count and the source objects skipped (never fatal).

    Examples:
        >>> from gan_augment import extract_features
        >>> result = export_features(extract_features(trained_model, f"{store}/shapes"), f"{out}/shapes/features")
        >>> result.rows, result.skipped
        (24, {})
    """
    model = features.model
    metadata = gan_augment_metadata(
        features.dataset, model.model_id, model.model_config.to_dict(), table="features",
        protocol=features.protocol.to_dict(), feature_dim=features.dim, model_dataset=model.dataset,
        source=features.source, skipped=len(features.skipped),
    )
    # A first pass over a reference sample fixes what "usual" means before the rows stream out.
    scorer = fit_outlier_scorer(features)

    def tables() -> Iterator[pa.Table]:
        for rows, batch, logits in features.outputs(progress=progress):
            columns: dict[str, Any] = {"logit": logits}
            if features.phashes is not None:
                columns["phash"] = [features.phashes[row] for row in rows]
            if scorer is not None:
                columns["knn_distance"], principal = scorer.distances(batch, np.asarray(rows))
                columns["outlier_score"] = scorer.score(columns["knn_distance"], principal, logits)
            yield features_table([features.uris[row] for row in rows], dataset=features.dataset,
                                 model_id=model.model_id, features=batch, columns=columns)

    files = write_features(out, tables(), features.dim, metadata, storage_options, part_bytes)
    return ExportResult(files, len(features), dict(features.skipped))
