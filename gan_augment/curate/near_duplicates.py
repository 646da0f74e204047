"""Near-copies among a dataset's images: resized, re-encoded, slightly cropped or brightened.

Three steps, one search (`curate.neighbours`):
1. Candidates: hashes (`scan.phash`) within a few bits. A verifying scan (`scan --verify`)
   stores two per image: the pHash of the whole image, which re-encoding, resizing and
   brightening move little, and that of its canonical window (`phash.canonical_hash`), which a
   crop moves little too (a JPEG of a thin digit, more). When every image has both, a pair is
   a candidate whose pHashes are within `MAX_HAMMING` bits or whose canonical hashes are
   within `CANONICAL_HAMMING`. Otherwise (a manifest from before the canonical hash, or hashes
   from the features table, whose export decoded every image) the pHashes within
   `CANDIDATE_HAMMING` bits: wide, because a crop of a few percent moves the pHash by a dozen
   bits or more.
2. Verification (`curate.copies`): the images in candidate pairs are decoded again to small
   grey thumbnails, and a pair stays only when its aligned high-pass correlation is at least
   `copies.MIN_CORRELATION`: on small-image datasets the hash alone cannot tell a copy from
   one of the many look-alikes within a few bits of it. Cheap stages first: a canonical
   window per image, compared by one dot product a pair, then a coarse grid of crops, so
   that fewer pairs are aligned. An image that cannot be read or
   decoded is in no pair, and is counted. With discriminator features, a pair also needs a
   cosine similarity of its standardised features (`embedding.embed_features`) of at least
   `MIN_COSINE`.
3. Groups, without chaining: images are visited with the most verified copies first (then the
   most pixels, then by uri; without verification, the most pixels first); an image not yet in
   a group keeps one, and every image not yet grouped that is itself a verified copy of it
   joins it. So every member is a verified copy
   of its group's kept image, recorded with its Hamming distance, correlation and cosine
   similarity to it. The original of several copies is usually the one each was verified
   against, where two copies (a crop and an enlarged re-encode) may not verify against each
   other: taking the largest image first had split such groups (on 5,000 Fashion-MNIST images
   with 500 planted groups, 31 of 3,000 planted pairs lost in grouping; 17 now).

Exact copies are the manifest's `duplicate` rows already and are not searched again.
Thresholds were chosen on Fashion-MNIST and confirmed on MNIST: BENCHMARKS.md, "Near-duplicates".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from gan_augment.curate.copies import MIN_CORRELATION, Thumbnails, aligned_scores, screen
from gan_augment.curate.embedding import embed_features
from gan_augment.curate.neighbours import neighbour_arrays, neighbour_blocks
from gan_augment.curate.thumbnails import read_thumbnails
from gan_augment.io.fsio import redact_url
from gan_augment.io.parquet import write_table
from gan_augment.io.tables import features_matrix, read_features, read_manifest
from gan_augment.scan.isolation import DEFAULT_MAX_SECONDS
from gan_augment.scan.phash import hamming

# Bits between candidates' hashes, chosen on Fashion-MNIST's planted pairs (crops included):
# 597 of its 600 have pHashes within MAX_HAMMING or canonical hashes within CANONICAL_HAMMING
# (3,825 candidates of 844,350 pairs); 593 have pHashes within CANDIDATE_HAMMING (168,279).
CANONICAL_HAMMING = 14
CANDIDATE_HAMMING = 24
MAX_HAMMING = 10  # bits, without verification: whole-frame copies only (imagededup's default)
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
        correlation: {uri: aligned correlation with the kept image} when pixels verified the pairs.
        unreadable: {uri: why} for images in candidate pairs that could not be decoded again.
        verified: whether the candidates were verified on pixels (`curate.copies`).
        max_hamming: the candidates' Hamming threshold.
        hamming_canonical: {uri: bits of its canonical hash from its kept image's} when the
            canonical hashes made candidates too.
        min_correlation: the verified pairs' least correlation.
    """

    groups: list[list[str]]
    hamming: dict[str, int]
    cosine: dict[str, float]
    hashed: int
    unhashed: int
    refined: bool
    pixels: dict[str, int] = field(default_factory=dict)
    correlation: dict[str, float] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    verified: bool = False
    max_hamming: int = MAX_HAMMING
    hamming_canonical: dict[str, int] = field(default_factory=dict)
    min_correlation: float = MIN_CORRELATION

    title = "Near-duplicates"

    def to_table(self) -> pa.Table:
        """uri, near_duplicate_of, group, hamming, cosine, correlation, hamming_canonical: one row
        per image that duplicates another."""
        rows = [(uri, members[0], number, self.hamming[uri], self.cosine.get(uri), self.correlation.get(uri),
                 self.hamming_canonical.get(uri))
                for number, members in enumerate(self.groups) for uri in members[1:]]
        columns = list(zip(*rows)) if rows else [[]] * 7
        return pa.table({"uri": pa.array(columns[0], pa.string()),
                         "near_duplicate_of": pa.array(columns[1], pa.string()),
                         "group": pa.array(columns[2], pa.int32()), "hamming": pa.array(columns[3], pa.int32()),
                         "cosine": pa.array(columns[4], pa.float32()),
                         "correlation": pa.array(columns[5], pa.float32()),
                         "hamming_canonical": pa.array(columns[6], pa.int32())})

    def summary(self) -> dict[str, Any]:
        return {"groups": len(self.groups), "near_duplicates": sum(len(g) - 1 for g in self.groups),
                "images_compared": self.hashed, "images_without_hash": self.unhashed,
                "verified_on_pixels": self.verified, "images_not_decoded": len(self.unreadable),
                "refined_by_discriminator": self.refined, "max_hamming": self.max_hamming,
                "max_hamming_canonical": CANONICAL_HAMMING if self.hamming_canonical else None,
                "min_correlation": self.min_correlation if self.verified else None,
                "min_cosine": MIN_COSINE if self.refined else None}

    def examples(self, limit: int = 24) -> list[list[tuple[str, str]]]:
        """The largest groups, as rows of (uri, caption): the kept image first."""
        rows = []
        for members in sorted(self.groups, key=lambda g: (-len(g), g[0]))[:limit]:
            row = [(members[0], "kept")]
            for uri in members[1:]:
                close = [f"{self.hamming[uri]} bits"]
                close += [f"r {self.correlation[uri]:.2f}"] if uri in self.correlation else []
                close += [f"cos {self.cosine[uri]:.2f}"] if uri in self.cosine else []
                row.append((uri, ", ".join(close)))
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


def _hashes(manifest: pa.Table | None, features: pa.Table | None,
            ) -> tuple[dict[str, int], int, dict[str, int], dict[str, int]]:
    """({uri: hash} of the ok images, how many ok images have none, {uri: pixels}, {uri: bytes})."""
    from_features = {}
    if features is not None:
        from_features = {u: h for u, h in zip(features.column("uri").to_pylist(),
                                              features.column("phash").to_pylist()) if h is not None}
    if manifest is None:
        return from_features, (features.num_rows if features is not None else 0) - len(from_features), {}, {}
    rows = [r for r in manifest.select(["uri", "status", "phash", "width", "height", "size_bytes"]).to_pylist()
            if r["status"] == "ok"]
    hashes = {r["uri"]: r["phash"] if r["phash"] is not None else from_features.get(r["uri"]) for r in rows}
    pixels = {r["uri"]: (r["width"] or 0) * (r["height"] or 0) for r in rows}
    sizes = {r["uri"]: r["size_bytes"] for r in rows if r["size_bytes"] is not None}
    known = {uri: h for uri, h in hashes.items() if h is not None}
    return known, len(hashes) - len(known), pixels, sizes


def _canonical_hashes(manifest: pa.Table | None, uris: list[str]) -> dict[str, int] | None:
    """{uri: the hash of its canonical window} from the manifest, or None unless every one of
    `uris` has one (a scan before them, or hashes from the features table)."""
    if manifest is None or "phash_canonical" not in manifest.column_names:
        return None
    known = {uri: value for uri, value in zip(manifest.column("uri").to_pylist(),
                                             manifest.column("phash_canonical").to_pylist()) if value is not None}
    return {uri: known[uri] for uri in uris} if all(uri in known for uri in uris) else None


def _candidate_blocks(codes: np.ndarray, windows: np.ndarray | None, max_hamming: int,
                      ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(left, right), left < right, of the candidate pairs whose left is in a block of images:
    whole-image hashes within `max_hamming` bits or, with `windows`, canonical hashes within
    CANONICAL_HAMMING."""
    whole = neighbour_blocks(codes, max_hamming, "hamming")
    if windows is None:
        yield from ((left, right) for left, right, _ in whole)
        return
    count = len(codes)
    # Both searches make blocks of the same rows: their pairs are merged a block at a time.
    for (left, right, _), (more, others, _) in zip(whole, neighbour_blocks(windows, CANONICAL_HAMMING, "hamming")):
        pairs = np.union1d(left * count + right, more * count + others)
        yield pairs // count, pairs % count


def _read_candidates(uris: list[str], codes: np.ndarray, windows: np.ndarray | None, max_hamming: int,
                     sizes: dict[str, int], storage_options: dict[str, Any] | None, max_seconds: float | None,
                     ) -> tuple[Thumbnails, np.ndarray, dict[str, str]]:
    """The thumbnails of the images in candidate pairs (only these are read again), each
    image's row among them (-1: in no pair, or not decoded) and {uri: why} for those not decoded."""
    involved = np.zeros(len(uris), bool)
    for left, right in _candidate_blocks(codes, windows, max_hamming):
        involved[left] = involved[right] = True
    index = np.flatnonzero(involved)
    pixels, failed = read_thumbnails([uris[i] for i in index], sizes, storage_options, max_seconds=max_seconds)
    row = np.full(len(uris), -1, np.int64)
    row[index] = np.arange(len(index))
    row[[i for i in index if uris[i] in failed]] = -1
    return Thumbnails.of(pixels), row, failed


def _verify(uris: list[str], codes: np.ndarray, windows: np.ndarray | None, max_hamming: int,
            min_correlation: float, sizes: dict[str, int], storage_options: dict[str, Any] | None,
            max_seconds: float | None,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, str]]:
    """The candidate pairs (`_candidate_blocks`) that are copies on pixels
    (`curate.copies`): (left, right, correlation), and {uri: why} for the images that could not
    be decoded again (their pairs are dropped). Candidates are made a block of images at a time
    and only those that pass the cheap stages (`copies.screen`) are kept, so memory follows
    those, not all candidates."""
    thumbnails, row, failed = _read_candidates(uris, codes, windows, max_hamming, sizes, storage_options,
                                               max_seconds)
    kept = [(np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, 3), np.float32))]
    for left, right in _candidate_blocks(codes, windows, max_hamming):
        usable = (row[left] >= 0) & (row[right] >= 0)
        left, right = left[usable], right[usable]
        _, passed, flip, windows = screen(thumbnails, row[left], row[right])
        # The image that holds the window first: the one whose canonical window is the narrower.
        kept.append((np.where(flip, right, left)[passed], np.where(flip, left, right)[passed], windows[passed]))
    held, whole, windows = (np.concatenate(parts) for parts in zip(*kept))
    scores = aligned_scores(thumbnails, row[held], row[whole], windows)
    copy = scores >= min_correlation
    return np.minimum(held, whole)[copy], np.maximum(held, whole)[copy], scores[copy], failed


def _refine(uris: list[str], left: np.ndarray, right: np.ndarray, features: pa.Table, min_cosine: float,
            seed: int) -> tuple[np.ndarray, Any]:
    """Which pairs keep a cosine similarity of at least `min_cosine` (a pair one of whose images
    has no features, not exported yet, keeps its verdict), and a function (i, j) -> cosine."""
    feature_uris, matrix = features_matrix(features)
    row_of = {uri: row for row, uri in enumerate(feature_uris)}
    embedded = embed_features(matrix, seed)
    rows = np.array([row_of.get(uri, -1) for uri in uris], np.int64)
    known = (rows[left] >= 0) & (rows[right] >= 0)
    unit = embedded / np.maximum(np.linalg.norm(embedded, axis=1, keepdims=True), 1e-12)
    similarity = np.einsum("ij,ij->i", unit[rows[left]], unit[rows[right]])
    keep = ~known | (similarity >= min_cosine)

    def cosine(i: int, j: int) -> float | None:
        return float(unit[rows[i]] @ unit[rows[j]]) if rows[i] >= 0 and rows[j] >= 0 else None

    return keep, cosine


def find_near_duplicates(
    manifest: str | pa.Table | None = None,
    features: str | pa.Table | None = None,
    *,
    max_hamming: int | None = None,
    verify: bool = True,
    min_correlation: float = MIN_CORRELATION,
    min_cosine: float | None = MIN_COSINE,
    seed: int = 0,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    storage_options: dict[str, Any] | None = None,
) -> NearDuplicates:
    """Group a dataset's near-copies: hash candidates, verified on pixels, refined by
    discriminator features.

    Args:
        manifest: the dataset's manifest (URL or table): only its `ok` images are compared,
            and its hashes (a `scan --verify`) are used first.
        features: its features table (`OUT/<dataset>/features`): hashes of images the manifest
            has none for, and the features that refine candidates.
        max_hamming: the most bits two candidates' whole-image hashes differ in; default
            MAX_HAMMING, but CANDIDATE_HAMMING when verifying without canonical hashes.
        verify: decode the candidates again and keep the pairs that are copies on pixels
            (`curate.copies`); False trusts the hash (and the features) alone.
        min_correlation: the least high-pass correlation of a verified pair after alignment
            (1 for an identical copy; MIN_CORRELATION by default, chosen on Fashion-MNIST).
        min_cosine: the least cosine similarity of their standardised features; None does not refine.
        seed: the seed of the feature embedding's sample (large datasets).
        max_seconds: the most one image's decode may take (`isolation.run_limited`); None
            decodes in the reading threads, without a limit.
        storage_options: fsspec options for both URLs and the images.

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
    hashes, unhashed, pixels, sizes = _hashes(manifest_table, features_table)
    uris = sorted(hashes)
    canonical = _canonical_hashes(manifest_table, uris) if verify else None
    if max_hamming is None:
        max_hamming = CANDIDATE_HAMMING if verify and canonical is None else MAX_HAMMING
    codes = np.array([hashes[u] for u in uris], dtype=np.int64)
    windows = None if canonical is None else np.array([canonical[u] for u in uris], dtype=np.int64)
    if verify:
        left, right, correlation, failed = _verify(uris, codes, windows, max_hamming, min_correlation, sizes,
                                                   storage_options, max_seconds)
    else:
        left, right, _ = neighbour_arrays(codes, max_hamming, "hamming")
        correlation, failed = np.ones(len(left), np.float32), {}
    cosine = None
    if min_cosine is not None and features_table is not None and len(left):
        keep, cosine = _refine(uris, left, right, features_table, min_cosine, seed)
        left, right, correlation = left[keep], right[keep], correlation[keep]
    order = _keeping_order(uris, pixels, left, right, verified=verify)
    groups, scores = _lead(order, left.tolist(), right.tolist(), correlation.tolist())
    distance, similarity, matched, from_window = {}, {}, {}, {}
    for members in groups:
        keeper = members[0]
        for m in members[1:]:
            distance[uris[m]] = hamming(hashes[uris[m]], hashes[uris[keeper]])
            if canonical is not None:
                from_window[uris[m]] = hamming(canonical[uris[m]], canonical[uris[keeper]])
            if verify:
                matched[uris[m]] = scores[min(m, keeper), max(m, keeper)]
            if cosine is not None and (value := cosine(m, keeper)) is not None:
                similarity[uris[m]] = value
    return NearDuplicates([[uris[m] for m in members] for members in groups], distance, similarity, len(hashes),
                          unhashed, cosine is not None, pixels, matched, failed, verify, max_hamming,
                          from_window, min_correlation)


def _keeping_order(uris: list[str], pixels: dict[str, int], left: np.ndarray, right: np.ndarray, *,
                   verified: bool) -> list[int]:
    """The order in which images may keep a group: with `verified` pairs, the most copies first
    (the image most others are copies of), then the most pixels, then by uri. Hash pairs alone
    are not copies for sure, and the image with the most of them sits in a crowd of
    look-alikes: without verification, the most pixels first."""
    copies = np.bincount(np.concatenate([left, right]), minlength=len(uris)) if verified else np.zeros(len(uris))
    return sorted(range(len(uris)), key=lambda m: (-copies[m], -pixels.get(uris[m], 0), uris[m]))


def _lead(order: list[int], left: list[int], right: list[int], scores: list[float],
          ) -> tuple[list[list[int]], dict[tuple[int, int], float]]:
    """Groups of more than one member, without chains: in `order`, an image not yet grouped
    keeps a group, which every not yet grouped image paired with it joins. Also {(i, j): score}."""
    paired: dict[int, list[int]] = defaultdict(list)
    for i, j in zip(left, right):
        paired[i].append(j)
        paired[j].append(i)
    grouped, groups = set(), []
    for keeper in order:
        if keeper in grouped:
            continue
        grouped.add(keeper)
        members = sorted(m for m in paired.get(keeper, ()) if m not in grouped)
        grouped.update(members)
        if members:
            groups.append([keeper] + members)
    return groups, {(i, j): s for i, j, s in zip(left, right, scores)}
