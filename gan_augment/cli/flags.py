"""Flags of the `gan-augment` command that are more than a name: one flag per field of a config
dataclass, and the parsers of JSON, integer-list and status-list values."""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from typing import Any

from gan_augment.io.tables import MANIFEST_STATUSES


def _field_type(annotation: Any) -> type:
    """The scalar type behind an annotation such as "int | None"."""
    hint = eval(annotation, vars(typing)) if isinstance(annotation, str) else annotation  # noqa: S307
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def add_config_flags(parser: argparse.ArgumentParser, config_cls: type, title: str) -> None:
    """One `--field-name` flag per dataclass field; unset flags keep the dataclass default."""
    group = parser.add_argument_group(title)
    doc = config_cls.__doc__ or ""
    for field in dataclasses.fields(config_cls):
        flag = "--" + field.name.replace("_", "-")
        kind = _field_type(field.type)
        help_text = _field_help(doc, field.name) + f" (default: {field.default})"
        if kind is bool:
            group.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        else:
            group.add_argument(flag, dest=field.name, type=kind, default=None, metavar=field.name.upper(),
                               help=help_text)


def _field_help(doc: str, name: str) -> str:
    """The field's text from the class docstring's Attributes section, continuation lines
    (indented deeper than the field's own line) included."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if ":" not in stripped or name not in (c.strip() for c in stripped.split(":", 1)[0].split(",")):
            continue
        indent, text = len(line) - len(line.lstrip()), [stripped.split(":", 1)[1].strip()]
        for more in lines[i + 1:]:
            if not more.strip() or len(more) - len(more.lstrip()) <= indent:
                break
            text.append(more.strip())
        return " ".join(text).replace("%", "%%")
    return ""


def config_from_args(config_cls: type, args: argparse.Namespace, base: Any = None, **overrides: Any) -> Any:
    """`base` (default: the class defaults) with every flag that was given."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)
              if getattr(args, f.name, None) is not None}
    return dataclasses.replace(base or config_cls(), **values, **overrides)


def parse_storage_options(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--storage-options is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ValueError("--storage-options must be a JSON object, e.g. '{\"anon\": true}'")
    return value


def add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage-options", metavar="JSON",
                        help="fsspec storage options as a JSON object, e.g. '{\"endpoint_url\": \"http://...\"}'")


def parse_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


REJECTABLE_STATUSES = tuple(status for status in MANIFEST_STATUSES if status != "ok")


def parse_statuses(text: str) -> tuple[str, ...]:
    """A comma-separated list of manifest statuses other than ok ("corrupt,too_large")."""
    statuses = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [status for status in statuses if status not in REJECTABLE_STATUSES]
    if unknown or not statuses:
        raise argparse.ArgumentTypeError(f"{text!r} names no status or an unknown one ({', '.join(unknown)}); "
                                         f"choose from {','.join(REJECTABLE_STATUSES)}")
    return statuses
