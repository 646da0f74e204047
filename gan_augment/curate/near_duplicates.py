"""Near-copies among a dataset's images: resized, re-encoded, slightly cropped or brightened.

Two encoders, one search (`curate.neighbours`):
1. Perceptual hashes (`scan.phash`): images within `MAX_HAMMING` bits of each other are
   candidates. The hash comes from the manifest when the scan decoded the pixels (`scan
   --verify`), else from the features table, whose export decoded every image.
2. With discriminator features, a candidate pair stays only when its standardised features
   (`selection.embed_features`) have a cosine similarity of at least `MIN_COSINE`: the hash
   sees coarse shape, the trained discriminator sees what tells this dataset's images apart.

Groups are the connected components of the remaining pairs. Each keeps its largest image (most
pixels, then first by uri); every other member is recorded as a near-duplicate of it, with its
Hamming distance and cosine similarity to it. Exact copies are the manifest's `duplicate` rows
already and are not searched again. Thresholds: BENCHMARKS.md, "Near-duplicates".
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from gan_augment.curate.neighbours import neighbour_pairs
from gan_augment.curate.selection import embed_features
from gan_augment.io.fsio import redact_url
from gan_augment.io.parquet import write_table
from gan_augment.io.tables import features_matrix, read_features, read_manifest
from gan_augment.scan.phash import hamming

MAX_HAMMING = 10
MIN_COSINE = 0.9


@dataclass(frozen=True)
class NearDuplicates:
    """Near-copy groups of one dataset.

    Attributes:
        groups: each group's uris, the image it keeps first.
        hamming: {uri: bits from its group's kept image} for every other member.
        cosine: {uri: cosine similarity to the kept image} when features refined the groups.
        hashed: images compared (ok in the manifest, with a perceptual hash).
        unhashed: ok images without a hash (a header-only scan and no features export yet).
        refined: whether discriminator features refined the hash candidates.
        pixels: {uri: width * height} where known.
    """

    groups: list[list[str]]
    hamming: dict[str, int]
    cosine: dict[str, float]
    hashed: int
    unhashed: int
    refined: bool
    pixels: dict[str, int] = field(default_factory=dict)

    title = "Near-duplicates"

    def to_table(self) -> pa.Table:
        """uri, near_duplicate_of, group, hamming, cosine: one row per image that duplicates another."""
        rows = [(uri, members[0], number, self.hamming[uri], self.cosine.get(uri))
                for number, members in enumerate(self.groups) for uri in members[1:]]
        columns = list(zip(*rows)) if rows else [[]] * 5
        return pa.table({"uri": pa.array(columns[0], pa.string()),
                         "near_duplicate_of": pa.array(columns[1], pa.string()),
                         "group": pa.array(columns[2], pa.int32()), "hamming": pa.array(columns[3], pa.int32()),
                         "cosine": pa.array(columns[4], pa.float32())})

    def summary(self) -> dict[str, Any]:
        return {"groups": len(self.groups), "near_duplicates": sum(len(g) - 1 for g in self.groups),
                "images_compared": self.hashed, "images_without_hash": self.unhashed,
                "refined_by_discriminator": self.refined, "max_hamming": MAX_HAMMING,
                "min_cosine": MIN_COSINE if self.refined else None}

    def examples(self, limit: int = 24) -> list[list[tuple[str, str]]]:
        """The largest groups, as rows of (uri, caption): the kept image first."""
        rows = []
        for members in sorted(self.groups, key=lambda g: (-len(g), g[0]))[:limit]:
            row = [(members[0], "kept")]
            for uri in members[1:]:
                close = f"{self.hamming[uri]} bits" + (f", cos {self.cosine[uri]:.2f}" if uri in self.cosine else "")
                row.append((uri, close))
            rows.append(row)
        return rows

    def write(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        """Write `to_table()` atomically (`<out>/<dataset>/near_duplicates.parquet`)."""
        write_table(url, self.to_table(), storage_options)


def _as_table(source: str | pa.Table | None, read: Any, storage_options: dict[str, Any] | None) -> pa.Table | None:
    if source is None or isinstance(source, pa.Table):
        return source
    try:
        return read(source, storage_options)
    except FileNotFoundError:
        return None


def _hashes(manifest: pa.Table | None, features: pa.Table | None) -> tuple[dict[str, int], int, dict[str, int]]:
    """({uri: hash} of the ok images, how many ok images have none, {uri: pixels})."""
    from_features = {}
    if features is not None:
        from_features = {u: h for u, h in zip(features.column("uri").to_pylist(),
                                              features.column("phash").to_pylist()) if h is not None}
    if manifest is None:
        return from_features, (features.num_rows if features is not None else 0) - len(from_features), {}
    rows = [r for r in manifest.select(["uri", "status", "phash", "width", "height"]).to_pylist()
            if r["status"] == "ok"]
    hashes = {r["uri"]: r["phash"] if r["phash"] is not None else from_features.get(r["uri"]) for r in rows}
    pixels = {r["uri"]: (r["width"] or 0) * (r["height"] or 0) for r in rows}
    known = {uri: h for uri, h in hashes.items() if h is not None}
    return known, len(hashes) - len(known), pixels


def find_near_duplicates(
    manifest: str | pa.Table | None = None,
    features: str | pa.Table | None = None,
    *,
    max_hamming: int = MAX_HAMMING,
    min_cosine: float | None = MIN_COSINE,
    seed: int = 0,
    storage_options: dict[str, Any] | None = None,
) -> NearDuplicates:
    """Group a dataset's near-copies by perceptual hash, refined by discriminator features.

    Args:
        manifest: the dataset's manifest (URL or table): only its `ok` images are compared,
            and its hashes (a `scan --verify`) are used first.
        features: its features table (`OUT/<dataset>/features`): hashes of images the manifest
            has none for, and the features that refine candidates.
        max_hamming: the most bits two near-copies' hashes differ in.
        min_cosine: the least cosine similarity of their standardised features; None does not refine.
        seed: the seed of the feature embedding's sample (large datasets).
        storage_options: fsspec options for both URLs.

    Raises:
        ValueError: neither a manifest nor a features table was found.

    Examples:
        >>> from gan_augment import export_features, extract_features
        >>> _ = export_features(extract_features(trained_model, f"{store}/shapes"), f"{out}/shapes/features")
        >>> found = find_near_duplicates(f"{out}/shapes/manifest.parquet", f"{out}/shapes/features")
        >>> found.summary()["images_compared"]
        24
    """
    manifest_table = _as_table(manifest, read_manifest, storage_options)
    features_table = _as_table(features, read_features, storage_options)
    if manifest_table is None and features_table is None:
        where = ", ".join(redact_url(s) for s in (manifest, features) if isinstance(s, str)) or "nothing given"
        raise ValueError(f"no manifest and no features table ({where}): scan the store (gan-augment scan) first")
    hashes, unhashed, pixels = _hashes(manifest_table, features_table)
    uris = sorted(hashes)
    pairs = neighbour_pairs(np.array([hashes[u] for u in uris], dtype=np.int64), max_hamming, "hamming")
    embedded, rows = None, []
    if min_cosine is not None and features_table is not None and pairs:
        feature_uris, matrix = features_matrix(features_table)
        row_of = {uri: row for row, uri in enumerate(feature_uris)}
        embedded, rows = embed_features(matrix, seed), [row_of.get(uri, -1) for uri in uris]
        known = [(i, j) for i, j, _ in pairs if rows[i] >= 0 and rows[j] >= 0]
        scored = neighbour_pairs(embedded, np.inf, "cosine", [(rows[i], rows[j]) for i, j in known])
        dropped = {pair for pair, (_, _, d) in zip(known, scored) if d > 1.0 - min_cosine}
        # A pair one of whose images has no features (not exported yet) keeps the hash's verdict.
        pairs = [(i, j, d) for i, j, d in pairs if (i, j) not in dropped]
    groups = []
    for members in _components(len(uris), [(i, j) for i, j, _ in pairs]):
        keeper = min(members, key=lambda m: (-pixels.get(uris[m], 0), uris[m]))
        groups.append([keeper] + sorted(m for m in members if m != keeper))
    distance, cosine = {}, {}
    for members in groups:
        keeper = members[0]
        for m in members[1:]:
            distance[uris[m]] = hamming(hashes[uris[m]], hashes[uris[keeper]])
            if embedded is not None and rows[m] >= 0 and rows[keeper] >= 0:
                cosine[uris[m]] = 1.0 - neighbour_pairs(embedded, np.inf, "cosine", [(rows[m], rows[keeper])])[0][2]
    return NearDuplicates([[uris[m] for m in members] for members in groups], distance, cosine, len(hashes),
                          unhashed, embedded is not None, pixels)


def _components(count: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components (of more than one member) of a graph on `count` nodes (union-find)."""
    parent = list(range(count))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for i, j in pairs:
        parent[root(i)] = root(j)
    members: dict[int, list[int]] = defaultdict(list)
    for node in range(count):
        members[root(node)].append(node)
    return sorted((group for group in members.values() if len(group) > 1), key=lambda g: g[0])
