"""Listing a store: its datasets (first-level folders) and their image objects.

Listing reads no object: it walks the store and keeps what looks like an image by name
(`IMG_EXTENSIONS`), counting what it skips and why.
"""

from __future__ import annotations

import os
import posixpath
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from gan_augment.io.fsio import get_fs, join_url, redact_url, retry, to_url
from gan_augment.layout import is_valid_dataset_name, validate_dataset_name

T = TypeVar("T")

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


@dataclass(frozen=True)
class ImageObject:
    """One listed image: its URL, size in bytes, change token (`object_version`) and the
    protocol-less path its filesystem reads it by."""

    uri: str
    size: int
    version: str
    path: str


def object_version(info: Mapping[str, Any]) -> str:
    """A token that changes whenever the object does: `etag:<ETag>`, else `mtime:<time>`,
    else "" (then only the content hash tells)."""
    etag = info.get("ETag") or info.get("etag") or info.get("e_tag")
    if etag:
        return "etag:" + str(etag).strip('"')
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if value not in (None, ""):
            return f"mtime:{value.timestamp() if isinstance(value, datetime) else value}"
    return ""


def skip_reason(relative_path: str) -> str | None:
    """Why a listed file is not a dataset image: "hidden" (a component starts with ".") or
    "not_image" (no image extension); None when it is one."""
    parts = relative_path.split("/")
    if any(part.startswith(".") for part in parts):
        return "hidden"
    if not parts[-1].lower().endswith(IMG_EXTENSIONS):
        return "not_image"
    return None


def _relative(path: str, prefix: str) -> str:
    """`path` below the walked root (`prefix` ends with "/"); a root that is itself a file gives its name."""
    return path[len(prefix):] if path.startswith(prefix) else posixpath.basename(path)


def _walk_local(root: str, base_url: str) -> list[tuple[str, ImageObject]]:
    """`_walk` of a local folder, through os.scandir: the same objects as fsspec's
    `find(detail=True)` would give, built straight from each entry's stat (fsspec builds each
    entry's info through several layers, and a re-scan of an unchanged store is little else
    than this listing). Symbolic links to folders are not followed, so a link cycle cannot trap
    the scan."""
    prefix = root.rstrip("/") + "/"
    found, folders = [], [root]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif entry.is_file():
                    stat, path = entry.stat(), entry.path
                    relative = _relative(path, prefix)
                    # the change token object_version gives an fsspec local entry ("mtime:<float>")
                    found.append((relative, ImageObject(base_url + relative, stat.st_size, f"mtime:{stat.st_mtime}",
                                                        path)))
    found.sort(key=lambda item: item[0])
    return found


def listing_error(url: str, exc: BaseException) -> OSError:
    """The error a failed listing raises. Missing credentials (botocore's NoCredentialsError,
    PartialCredentialsError) are a PermissionError, which no retry fixes; anything else, an
    endpoint that does not answer included, is a ConnectionError."""
    detail = f"{type(exc).__name__}: {redact_url(str(exc))}"
    if type(exc).__name__.endswith("CredentialsError"):
        return PermissionError(f"access to {redact_url(url)} denied: no usable credentials ({detail})")
    return ConnectionError(f"cannot list {redact_url(url)}: {detail}")


def _list_or_none(call: Callable[[], T], fs: fsspec.AbstractFileSystem, url: str, verb: str) -> T | None:
    """`call()`, retried on transient errors, under the listing's error rules: None when nothing
    is at `url`, a PermissionError that names it, any other failure as `listing_error` says."""
    try:
        return retry(call, fs=fs, what=f"{verb} {redact_url(url)}")
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise PermissionError(f"access to {redact_url(url)} denied: {redact_url(str(exc))}") from None
    except Exception as exc:  # noqa: BLE001 - botocore and aiohttp errors are no OSError; say what failed
        raise listing_error(url, exc) from exc


def _walk(fs: fsspec.AbstractFileSystem, root: str, url: str) -> list[tuple[str, ImageObject]]:
    """(path relative to root, object) for every file under `root`, sorted.

    Raises:
        FileNotFoundError: nothing at `url`, or it is a single object, not a folder/prefix.
    """
    fs.invalidate_cache(root)  # a scan must see the store as it is now
    base_url, walked = to_url(fs, root).rstrip("/") + "/", None
    if _list_or_none(lambda: fs.isdir(root), fs, url, "stat"):
        if isinstance(fs, LocalFileSystem):
            walked = _list_or_none(lambda: _walk_local(root, base_url), fs, url, "list")
        else:
            listing = _list_or_none(lambda: fs.find(root, detail=True), fs, url, "list")
            walked = None if listing is None else _from_listing(listing, root, base_url)
    if walked is None:  # nothing there, or it vanished between the stat and the listing
        raise FileNotFoundError(f"no folder or prefix at {redact_url(url)}: check the URL and its storage options")
    return walked


def _from_listing(listing: Mapping[str, Mapping[str, Any]], root: str, base_url: str) -> list[tuple[str, ImageObject]]:
    """(path relative to root, object) for each file of an fsspec `find(detail=True)`, sorted."""
    prefix = root.rstrip("/") + "/"
    walked = []
    for path, info in sorted(listing.items()):
        if info.get("type") != "directory":
            relative = _relative(path, prefix)
            walked.append((relative, ImageObject(base_url + relative, int(info.get("size") or 0),
                                                 object_version(info), path)))
    return walked


def list_images(url: str, storage_options: dict[str, Any] | None = None) -> list[ImageObject]:
    """Every image object below `url`, recursively, sorted by URI; hidden files and other
    extensions are left out.

    Raises:
        FileNotFoundError: `url` does not exist or holds no image.
    """
    fs, root = get_fs(url, storage_options)
    objects = [obj for relative, obj in _walk(fs, root, url) if skip_reason(relative) is None]
    if not objects:
        raise FileNotFoundError(
            f"found no images under {redact_url(url)}; supported extensions: {', '.join(IMG_EXTENSIONS)}"
        )
    return objects


def list_datasets(url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """The names of a store's datasets, sorted: its first-level folders (prefixes) with a valid
    dataset name, hidden ones left out. One listing of the top level only, so that a scan can
    then run (and be retried) one dataset at a time.

    Raises:
        FileNotFoundError: nothing at `url`, or it holds no dataset folder.
    """
    fs, root = get_fs(url, storage_options)
    fs.invalidate_cache(root)  # the store as it is now
    entries = _list_or_none(lambda: fs.ls(root, detail=True), fs, url, "list")
    names = sorted(posixpath.basename(entry["name"].rstrip("/")) for entry in entries or []
                   if entry.get("type") == "directory")
    names = [name for name in names if not name.startswith(".") and is_valid_dataset_name(name)]
    if entries is None or not names:
        raise FileNotFoundError(f"found no dataset folders under {redact_url(url)}: a store holds one folder of "
                                "images per dataset")
    return names


def list_top_level(url: str, storage_options: dict[str, Any] | None = None) -> tuple[list[str], Counter[str]]:
    """A store's datasets (its first-level folders with a valid name, hidden ones left out),
    sorted, and the counts of the files outside them by reason, as `list_store` gives them. One
    listing of the top level, plus a walk of the folders that are no dataset: a scan then lists
    (and holds) one dataset at a time.

    Raises:
        FileNotFoundError: nothing at `url`, or it is a single object, not a folder/prefix.
    """
    fs, root = get_fs(url, storage_options)
    fs.invalidate_cache(root)  # the store as it is now
    entries = None
    if _list_or_none(lambda: fs.isdir(root), fs, url, "stat"):
        entries = _list_or_none(lambda: fs.ls(root, detail=True), fs, url, "list")
    if entries is None:
        raise FileNotFoundError(f"no folder or prefix at {redact_url(url)}: check the URL and its storage options")
    names: list[str] = []
    ignored: Counter[str] = Counter()
    for entry in entries:
        name = posixpath.basename(entry["name"].rstrip("/"))
        if entry.get("type") != "directory":
            ignored["file at the store root"] += 1
        elif name.startswith(".") or not is_valid_dataset_name(name):
            reason = "hidden folder" if name.startswith(".") else "invalid dataset name"
            ignored[reason] += len(_walk(fs, entry["name"], join_url(url, name)))
        else:
            names.append(name)
    return sorted(names), ignored


def list_store(
    url: str, storage_options: dict[str, Any] | None = None, datasets: Sequence[str] | None = None
) -> tuple[dict[str, list[ImageObject]], dict[str, Counter[str]], Counter[str]]:
    """List a store: per dataset its image objects and the counts of skipped files by reason,
    and the counts of what lies outside any dataset (files at the root, hidden or
    invalidly named folders). `datasets` restricts the listing to those first-level folders.

    Raises:
        FileNotFoundError: the store, or a dataset named in `datasets`, does not exist.
        ValueError: a name in `datasets` is not a valid dataset name.
    """
    fs, root = get_fs(url, storage_options)
    objects: dict[str, list[ImageObject]] = {}
    skipped: dict[str, Counter[str]] = {}
    ignored: Counter[str] = Counter()
    if datasets is not None:
        walks = {validate_dataset_name(name): _walk(fs, posixpath.join(root, name), join_url(url, name))
                 for name in datasets}
    else:
        walks = {}
        for relative, obj in _walk(fs, root, url):
            name, _, rest = relative.partition("/")
            if not rest:
                ignored["file at the store root"] += 1
            elif name.startswith("."):
                ignored["hidden folder"] += 1
            elif not is_valid_dataset_name(name):
                ignored["invalid dataset name"] += 1
            else:
                walks.setdefault(name, []).append((rest, obj))
    for name, entries in walks.items():
        objects[name], skipped[name] = [], Counter()
        for relative, obj in entries:
            reason = skip_reason(relative)
            if reason:
                skipped[name][reason] += 1
            else:
                objects[name].append(obj)
    return objects, skipped, ignored
