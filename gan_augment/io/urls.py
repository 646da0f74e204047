"""URL strings: joining, parents, last components and credential redaction. Pure functions, no
filesystem calls, so every io module can use them."""

from __future__ import annotations

import os
import posixpath
import re


def join_url(base: str, *parts: str) -> str:
    """Join path parts onto an fsspec URL, keeping its protocol: join_url("s3://b/x", "m.pt")."""
    if "://" in base:
        protocol, rest = base.split("://", 1)
        return f"{protocol}://" + posixpath.join(rest, *parts)
    return os.path.join(base, *parts)


def basename(url: str) -> str:
    """The last path component of a URL or path, ignoring a trailing separator."""
    return posixpath.basename(url.rstrip("/").split("://", 1)[-1].rstrip(os.sep))


def parent_url(url: str) -> str:
    """The folder/prefix holding `url`: parent_url("s3://b/out/cats/model") == "s3://b/out/cats"."""
    if "://" in url:
        protocol, rest = url.split("://", 1)
        return f"{protocol}://" + posixpath.dirname(rest.rstrip("/"))
    return os.path.dirname(os.path.normpath(url))


def redact_url(url: str) -> str:
    """`url` with any user:password@ part removed, for logs, errors and model cards."""
    return re.sub(r"(?<=://)[^/@]*@", "", url)
