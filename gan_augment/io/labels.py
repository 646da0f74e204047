"""Labels files: CSV or Parquet with columns `uri,label` (what `gan-augment select` writes for
labelling, what `evaluate --labels` and `train --labels` read), and matching their keys to the
images of a source."""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow.csv as pa_csv

from gan_augment.io.fsio import get_fs, read_bytes, redact_url, to_url
from gan_augment.io.parquet import read_table

log = logging.getLogger("gan_augment")


def _read_labels_table(url: str, storage_options: dict[str, Any] | None) -> Any:
    if url.rstrip("/").endswith(".parquet"):
        table = read_table(url, storage_options)
    else:
        data = read_bytes(url, storage_options)
        try:
            table = pa_csv.read_csv(io.BytesIO(data), parse_options=pa_csv.ParseOptions(delimiter=_delimiter(data)))
        except Exception as exc:  # noqa: BLE001 - pyarrow reports CSV problems with several types
            raise ValueError(f"{redact_url(url)} is not a readable CSV file: {exc}") from exc
    missing = [name for name in ("uri", "label") if name not in table.column_names]
    if missing:
        raise ValueError(f"{redact_url(url)} has no column {missing[0]!r}; a labels file has columns uri,label")
    return table


def _delimiter(data: bytes) -> str:
    """',' unless the header row holds none and holds ';' (what a spreadsheet writes where the
    decimal mark is a comma) or a tab."""
    header = data.split(b"\n", 1)[0]
    return next((delimiter for delimiter in ",;\t" if delimiter.encode() in header), ",")


def label_missing(label: Any) -> bool:
    """Whether a label is still to come: None, a blank string, or NaN (a blank cell of a float
    column, or of a pandas frame)."""
    return (label is None or (isinstance(label, str) and not label.strip())
            or (isinstance(label, float) and math.isnan(label)))


def read_listed_labels(url: str | Sequence[str],
                       storage_options: dict[str, Any] | None = None) -> dict[str, Hashable | None]:
    """{uri: label} of every image a labels file lists (see `read_labels`), None where its label
    is still to come: the images of earlier rounds, labelled or not. Several files (one per
    labelling round) read as one.

    Raises:
        FileNotFoundError: nothing at a `url`.
        ValueError: a missing column, or one uri with two labels (in one file or across them).
    """
    listed: dict[str, Hashable | None] = {}
    for each in [url] if isinstance(url, str) else url:
        table = _read_labels_table(each, storage_options)
        for uri, label in zip(table.column("uri").to_pylist(), table.column("label").to_pylist()):
            # spaces a person typed around a cell: " cat" and "cat" are one class, as a labeller means
            uri, label = (value.strip() if isinstance(value, str) else value for value in (uri, label))
            if not uri:
                continue
            if label_missing(label):
                listed.setdefault(uri, None)
            elif listed.setdefault(uri, label) is None:
                listed[uri] = label  # listed empty first, labelled in a later row or file
            elif listed[uri] != label:
                raise ValueError(f"{redact_url(each)} gives {uri!r} two labels ({listed[uri]!r} and {label!r})")
    return listed


def read_labels(url: str | Sequence[str], storage_options: dict[str, Any] | None = None) -> dict[str, Hashable]:
    """{uri: label} from a CSV or Parquet file with columns `uri` and `label` (other columns, such
    as those of `gan-augment select`'s picks, are ignored). Rows whose label is empty are not
    labelled yet: they are left out and counted in a log line. A CSV file as a spreadsheet saves
    it reads the same: separated by ';' or tabs, with a byte-order mark, spaces around a cell.
    Several files (the picks of each labelling round) read as one.

    Raises:
        FileNotFoundError: nothing at a `url`.
        ValueError: a missing column, one uri with two labels, or no labelled row at all.
    """
    listed = read_listed_labels(url, storage_options)
    labels = {uri: label for uri, label in listed.items() if label is not None}
    unlabelled = len(listed) - len(labels)
    where = redact_url(url) if isinstance(url, str) else " + ".join(redact_url(each) for each in url)
    if not labels:
        raise ValueError(f"no row of {where} has a label yet ({unlabelled} rows with an empty label); "
                         "fill in the label column first")
    if unlabelled:
        log.info("%s: %d labelled images; %d rows with an empty label left out", where, len(labels), unlabelled)
    return labels


def match_labels(uris: Sequence[str], labels: Mapping[str, Hashable], source: str,
                   storage_options: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, labels) of the images that have a label, keyed by the image's URI, its URI without
    the protocol (a local path), or its path relative to `source`."""
    fs, root = get_fs(source, storage_options)
    prefix = to_url(fs, root).rstrip("/") + "/"
    rows, found = [], []
    for row, uri in enumerate(uris):
        for key in (uri, uri.split("://", 1)[-1], uri[len(prefix):] if uri.startswith(prefix) else None):
            if key is not None and key in labels:
                rows.append(row)
                found.append(labels[key])
                break
    if not rows:
        raise ValueError(f"none of the {len(uris)} images under {redact_url(source)} has a label; key labels by "
                         f"the image's URI or its path under the source (e.g. {uris[0][len(prefix):]!r})")
    return np.asarray(rows), np.asarray(found)
