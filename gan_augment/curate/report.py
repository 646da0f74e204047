"""The report of a dataset, `OUT/<dataset>/report.html`, and the index over all of a run's
datasets, `OUT/index.html`: what a data team looks at first.

One self-contained page per dataset (`curate.html`): the scan's summary (objects by status and
reason, formats, sizes), the sample grid and loss curve of training, then every analysis of the
curate stage in turn, each with its summary and its example images (near-duplicate groups, the
most unusual images), the few-label probe when labels were given, and the model card's configs.
The report loops over `ANALYSES`; an analysis only has to answer `title`, `summary()` and
`examples()`. Whatever is missing (no model yet, no features) is said, not fatal; an image that
cannot be read or decoded is shown as a box with its reason, never an error.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from gan_augment.curate.html import escape, figure, image_tag, mapping_table, page, pixels_png, raw_table, table
from gan_augment.curate.near_duplicates import find_near_duplicates
from gan_augment.curate.outliers import rank_outliers
from gan_augment.io.fsio import atomic_write_bytes, exists, get_fs, read_bytes, redact_url
from gan_augment.io.tables import read_features, read_manifest
from gan_augment.layout import (
    card_file,
    dataset_dir,
    features_dir,
    index_url,
    manifest_url,
    model_dir,
    near_duplicates_url,
    report_url,
    samples_file,
)
from gan_augment.scan.decoding import decode_object
from gan_augment.scan.listing import ImageObject, list_datasets
from gan_augment.scan.manifest import human_bytes
from gan_augment.scan.objects import DEFAULT_MAX_BYTES

log = logging.getLogger(__name__)

THUMBNAIL = 64  # pixels per side of an example image
MAX_THUMBNAIL_SECONDS = 10.0  # a hostile image's decode is given up after this long
LISTED_BAD = 50  # bad objects listed by name; the rest are counted


@dataclass(frozen=True)
class Inputs:
    """What the earlier stages wrote for one dataset (None where they have not run)."""

    dataset: str
    manifest: pa.Table | None
    features: pa.Table | None
    card: dict[str, Any] | None
    samples_png: bytes | None
    loss_png: bytes | None
    storage_options: dict[str, Any] | None = None  # also how the images are read, as for thumbnails


# Each analysis: (inputs it needs, how to run it). The report loops over them.
ANALYSES: list[tuple[str, Callable[[Inputs], Any]]] = [
    ("near_duplicates", lambda i: find_near_duplicates(i.manifest, i.features, storage_options=i.storage_options)),
    ("outliers", lambda i: rank_outliers(i.features) if i.features is not None else None),
]


def _optional(read: Callable[[], Any], what: str) -> Any:
    try:
        return read()
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as exc:  # a damaged artefact is reported as missing, with why
        log.warning("report: cannot read the %s: %s", what, exc)
        return None


def read_inputs(out: str, dataset: str, storage_options: dict[str, Any] | None = None) -> Inputs:
    """Everything under `OUT/<dataset>/` that the report shows."""
    model = model_dir(out, dataset)
    card = _optional(lambda: json.loads(read_bytes(card_file(model), storage_options)), "model card")
    return Inputs(
        dataset,
        _optional(lambda: read_manifest(manifest_url(out, dataset), storage_options), "manifest"),
        _optional(lambda: read_features(features_dir(out, dataset), storage_options), "features"),
        card if isinstance(card, dict) else None,
        _optional(lambda: read_bytes(samples_file(model, "final.png"), storage_options), "sample grid"),
        _optional(lambda: read_bytes(samples_file(model, "loss_curve.png"), storage_options), "loss curve"),
        storage_options,
    )


def thumbnails(uris: Sequence[str], sizes: dict[str, int], storage_options: dict[str, Any] | None,
               ) -> dict[str, tuple[bytes | None, str | None]]:
    """{uri: (PNG thumbnail, None) or (None, reason)}: each decoded by the scan's rules in a worker
    process under a time limit, so a corrupt or hostile image gives a reason, never an error."""
    shown = {}
    for uri in dict.fromkeys(uris):
        try:
            fs, path = get_fs(uri, storage_options)
            size = sizes[uri] if uri in sizes else fs.size(path)
            decoded = decode_object(fs, ImageObject(uri, size, "", path), THUMBNAIL, 3, 89_478_485,
                                    DEFAULT_MAX_BYTES, MAX_THUMBNAIL_SECONDS)
        except Exception as exc:  # noqa: BLE001 - the report lists the image with why it is missing
            shown[uri] = (None, f"unreadable: {type(exc).__name__}: {redact_url(str(exc))}")
            continue
        shown[uri] = (pixels_png(decoded.pixels), None) if decoded.pixels is not None else (None, decoded.reason)
    return shown


def _scan_section(manifest: pa.Table | None) -> list[str]:
    if manifest is None:
        return ["<h2>Scan</h2><p class=\"muted\">No manifest: run <code>gan-augment scan</code>.</p>"]
    rows = manifest.select(["uri", "status", "error", "format", "width", "height", "size_bytes"]).to_pylist()
    statuses = Counter(r["status"] for r in rows)
    reasons = Counter((r["status"], (r["error"] or "").split(":")[0]) for r in rows if r["status"] != "ok")
    formats = Counter(r["format"] or "unknown" for r in rows)
    sizes = Counter(f"{r['width']}x{r['height']}" for r in rows if r["status"] == "ok")
    bad = [r for r in rows if r["status"] not in ("ok", "duplicate")]
    parts = [f"<h2>Scan</h2><p>{len(rows):,} objects, {human_bytes(sum(r['size_bytes'] for r in rows))}, "
             f"{statuses.get('ok', 0):,} ok.</p>",
             "<h3>Objects by status</h3>", table(("status", "objects"), sorted(statuses.items())),
             "<h3>Formats</h3>", table(("format", "objects"), formats.most_common()),
             "<h3>Image sizes (ok objects)</h3>", table(("width x height", "objects"), sizes.most_common(10))]
    if reasons:
        parts += ["<h3>Why objects were rejected</h3>",
                  table(("status", "reason", "objects"), [(s, r, n) for (s, r), n in reasons.most_common()])]
    if bad:
        parts += [f"<h3>Rejected objects ({len(bad):,}{', first ' + str(LISTED_BAD) if len(bad) > LISTED_BAD else ''})"
                  "</h3>", table(("object", "status", "reason"),
                                 [(redact_url(r["uri"]), r["status"], r["error"]) for r in bad[:LISTED_BAD]])]
    return parts


def _training_section(inputs: Inputs) -> list[str]:
    parts = ["<h2>Training</h2>"]
    if inputs.card is None:
        return parts + ["<p class=\"muted\">No model yet: run <code>gan-augment train</code>.</p>"]
    card = inputs.card
    parts.append(f"<p>Model <code>{escape(card.get('model_id'))}</code>: {escape(card.get('steps'))} steps on "
                 f"{escape(card.get('num_images'))} images ({escape(card.get('device'))}).</p>")
    for png, what in ((inputs.samples_png, "samples"), (inputs.loss_png, "loss curve")):
        if png is not None:
            parts.append(f"<h3>{what.capitalize()}</h3>" + image_tag(png, what, "max-width:100%"))
    return parts


def _analysis_section(title: str, result: Any, shown: dict[str, tuple[bytes | None, str | None]]) -> list[str]:
    parts = [f"<h2>{escape(title)}</h2>", mapping_table(result.summary())]
    for row in result.examples():
        parts.append('<div class="strip">' + "".join(_figure(uri, caption, shown) for uri, caption in row) + "</div>")
    return parts


def _figure(uri: str, caption: str, shown: dict[str, tuple[bytes | None, str | None]]) -> str:
    png, reason = shown.get(uri, (None, "not decoded"))
    return figure(png, f"{redact_url(uri).rsplit('/', 1)[-1]}: {caption}", reason)


def _card_section(card: dict[str, Any] | None) -> list[str]:
    if card is None:
        return []
    parts = []
    probes = (card.get("evaluation") or {}).get("probes") if isinstance(card.get("evaluation"), dict) else None
    if isinstance(probes, dict) and probes:
        rows = [(name, k, result) for name, by_k in probes.items() for k, result in by_k.items()]
        keys = list(dict.fromkeys(key for _, _, result in rows for key in result))
        parts += ["<h2>Few-label probe</h2>", table(("features", "labels per class", *keys),
                                                    [(name, k, *(_cell(result.get(key)) for key in keys))
                                                     for name, k, result in rows])]
    parts += ["<h2>Model card</h2>"]
    for key in ("model_config", "train_config"):
        if isinstance(card.get(key), dict):
            parts += [f"<h3>{escape(key)}</h3>", mapping_table(card[key])]
    return parts


def _cell(value: Any) -> Any:
    return value if isinstance(value, (int, float, str)) or value is None else json.dumps(value, default=str)


def render_report(inputs: Inputs, storage_options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The report page of one dataset (scan, training, each analysis, the probe and the model
    card), and each analysis's result by name."""
    body = [f"<h1>{escape(inputs.dataset)}</h1>", f'<p class="muted">Report written '
            f'{datetime.now(timezone.utc).isoformat(timespec="seconds")}; <a href="../index.html">all datasets</a>.</p>']
    body += _scan_section(inputs.manifest)
    body += _training_section(inputs)
    results = {}
    for name, run in ANALYSES:
        try:
            result = run(inputs)
        except (ValueError, KeyError) as exc:  # an analysis without its inputs is said, not fatal
            body += [f"<h2>{escape(name)}</h2><p class=\"muted\">Not available: {escape(exc)}</p>"]
            continue
        if result is None:
            body += [f"<h2>{escape(name)}</h2><p class=\"muted\">Not available: export the features first "
                     "(gan-augment features).</p>"]
            continue
        results[name] = result
    sizes = ({r["uri"]: r["size_bytes"] for r in inputs.manifest.select(["uri", "size_bytes"]).to_pylist()}
             if inputs.manifest is not None else {})
    shown = thumbnails([uri for result in results.values() for row in result.examples() for uri, _ in row], sizes,
                       storage_options)
    for result in results.values():
        body += _analysis_section(result.title, result, shown)
    body += _card_section(inputs.card)
    return page(f"{inputs.dataset}: gan-augment report", body), results


@dataclass(frozen=True)
class ReportFiles:
    """What `write_reports` wrote: {dataset: report URL}, the index URL and each dataset's summary line."""

    reports: dict[str, str]
    index: str
    summaries: dict[str, dict[str, Any]]


def write_report(out: str, dataset: str, storage_options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Write `OUT/<dataset>/report.html` (and `near_duplicates.parquet` beside it when the
    dataset was scanned); returns its URL and a one-line summary for the index."""
    inputs = read_inputs(out, dataset, storage_options)
    url = report_url(out, dataset)
    text, results = render_report(inputs, storage_options)
    atomic_write_bytes(url, text.encode(), storage_options)
    summary: dict[str, Any] = {"objects": inputs.manifest.num_rows if inputs.manifest is not None else None,
                               "ok": inputs.manifest.column("status").to_pylist().count("ok")
                               if inputs.manifest is not None else None,
                               "model": (inputs.card or {}).get("model_id")}
    for name, result in results.items():
        summary[name] = result.summary()
    if "near_duplicates" in results:
        results["near_duplicates"].write(near_duplicates_url(out, dataset), storage_options)
    return url, summary


def write_reports(out: str, datasets: Sequence[str] | None = None,
                  storage_options: dict[str, Any] | None = None) -> ReportFiles:
    """Write the report of every dataset under `out` (or of `datasets`), then `OUT/index.html`.

    Examples:
        >>> files = write_reports(out)
        >>> sorted(files.reports), files.index.endswith("index.html")
        (['shapes'], True)
    """
    names = list(datasets) if datasets is not None else [
        name for name in list_datasets(out, storage_options) if exists(dataset_dir(out, name), storage_options)]
    reports, summaries = {}, {}
    for name in names:
        reports[name], summaries[name] = write_report(out, name, storage_options)
    rows = [(f'<a href="{escape(name)}/report.html">{escape(name)}</a>', summaries[name]["objects"],
             summaries[name]["ok"], summaries[name].get("near_duplicates", {}).get("near_duplicates"),
             summaries[name]["model"]) for name in names]
    body = ["<h1>gan-augment reports</h1>", f'<p class="muted">{escape(redact_url(out))}</p>',
            raw_table(("dataset", "objects", "ok", "near-duplicates", "model"), rows)]
    index = index_url(out)
    atomic_write_bytes(index, page("gan-augment reports", body).encode(), storage_options)
    return ReportFiles(reports, index, summaries)
