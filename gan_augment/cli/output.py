"""What the `gan-augment` command hands back: its exit codes, and its results as text for people
or as one JSON document for scripts (`--json`), always on stdout; logs and progress go to stderr."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from typing import Any

# Exit codes, as documented in `gan-augment --help` and the README.
EXIT_OK = 0
EXIT_FAILURE = 1  # the command could not do its work (a missing model, an unreachable store, ...)
EXIT_USAGE = 2  # bad flags or arguments (argparse's own code)
EXIT_REJECTED = 3  # the scan finished, but objects with a status named by --fail-on were found
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


def json_ready(value: Any) -> Any:
    """`value` with tuples as lists, non-string keys as strings and NaN/inf as null (JSON has none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def emit(args: argparse.Namespace, document: Mapping[str, Any], text: str) -> None:
    """Print the result: `document` as one JSON document with --json, else `text`."""
    if getattr(args, "json", False):
        print(json.dumps(json_ready(document), indent=2, allow_nan=False))
    elif text:
        print(text)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON document on stdout (logs and progress stay on stderr)")
