"""The odd ones out: a dataset's images ranked by how unusual the trained discriminator finds
them (`outlier_score` of the features table, `export.scores`: kNN distance in D's feature
space and D's real/fake logit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from gan_augment.io.tables import read_features

SHOWN = 32  # the report shows this many of the most unusual images


@dataclass(frozen=True)
class Outliers:
    """Every scored image, most unusual first.

    Attributes:
        uris: the images, by descending `outlier_score`.
        scores, logits, knn_distances: each image's values from the features table.
        unscored: rows without a score (a features table written before scores existed, or a
            dataset too small for a neighbourhood).
    """

    uris: tuple[str, ...]
    scores: np.ndarray
    logits: np.ndarray
    knn_distances: np.ndarray
    unscored: int = 0

    title = "Most unusual images"

    def to_table(self) -> pa.Table:
        """uri, outlier_rank (1 = most unusual), outlier_score, logit, knn_distance."""
        return pa.table({"uri": pa.array(self.uris, pa.string()),
                         "outlier_rank": pa.array(np.arange(1, len(self.uris) + 1), pa.int32()),
                         "outlier_score": pa.array(self.scores, pa.float32()),
                         "logit": pa.array(self.logits, pa.float32()),
                         "knn_distance": pa.array(self.knn_distances, pa.float32())})

    def summary(self) -> dict[str, Any]:
        shown = min(SHOWN, len(self.uris))
        return {"scored": len(self.uris), "unscored": self.unscored, "shown": shown,
                "score_median": float(np.median(self.scores)) if len(self.uris) else None,
                "score_of_last_shown": float(self.scores[shown - 1]) if shown else None}

    def examples(self, limit: int = SHOWN) -> list[list[tuple[str, str]]]:
        """One row: the `limit` most unusual images, captioned with score and logit."""
        return [[(uri, f"#{rank} score {score:.2f}, logit {logit:.2f}") for rank, (uri, score, logit)
                 in enumerate(zip(self.uris[:limit], self.scores, self.logits), start=1)]] if self.uris else []


def rank_outliers(features: str | pa.Table, storage_options: dict[str, Any] | None = None) -> Outliers:
    """Rank a dataset's images by the `outlier_score` its features export wrote.

    Args:
        features: the features table or its URL (`OUT/<dataset>/features`).
        storage_options: fsspec options for the URL.

    Raises:
        FileNotFoundError: no features table at the URL.

    Examples:
        >>> from gan_augment import export_features, extract_features
        >>> _ = export_features(extract_features(trained_model, f"{store}/shapes"), f"{out}/shapes/features")
        >>> outliers = rank_outliers(f"{out}/shapes/features")
        >>> len(outliers.uris), outliers.summary()["shown"]
        (24, 24)
    """
    table = read_features(features, storage_options) if isinstance(features, str) else features
    columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in
               ("outlier_score", "logit", "knn_distance")}
    scored = ~np.isnan(columns["outlier_score"].astype(np.float64))
    order = np.argsort(-columns["outlier_score"][scored], kind="stable")
    uris = np.array(table.column("uri").to_pylist(), dtype=object)[scored][order]
    return Outliers(tuple(uris), *(columns[name][scored][order].astype(np.float64)
                                   for name in ("outlier_score", "logit", "knn_distance")),
                    unscored=int((~scored).sum()))
