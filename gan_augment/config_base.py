"""What the configuration dataclasses of `gan_augment.config` share: a strict JSON round-trip
and the validators that name the field an impossible value was written to."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, TypeVar

C = TypeVar("C", bound="JsonConfig")


class JsonConfig:
    """Shared JSON round-trip: unknown keys are errors, not silently dropped.

    Fields named in `_OMITTED_AT_DEFAULT` are left out of `to_dict` while they hold their
    default: a field added for an optional feature then leaves the dicts (and so the model ids,
    cards and checkpoints) of runs that do not use it exactly as they were.
    """

    _OMITTED_AT_DEFAULT: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)  # type: ignore[call-overload]
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            if field.name in self._OMITTED_AT_DEFAULT and data[field.name] == field.default:
                del data[field.name]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown field(s) {unknown}; known fields are {sorted(known)}"
            )
        return cls(**data)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))


def check(ok: bool, cls: object, name: str, value: object, expected: str) -> None:
    if not ok:
        raise ValueError(f"{type(cls).__name__}.{name}={value!r} is invalid: expected {expected}")


def check_int(cfg: object, name: str, low: int, high: int | None = None) -> None:
    value = getattr(cfg, name)
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    ok = ok and (high is None or value <= high)
    bound = f">= {low}" if high is None else f"in [{low}, {high}]"
    check(ok, cfg, name, value, f"an integer {bound}")


def check_float(cfg: object, name: str, low: float, high: float, *, open_low: bool = False) -> None:
    value = getattr(cfg, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and value <= high
    check(ok, cfg, name, value, f"a number in {'(' if open_low else '['}{low}, {high}]")


def check_choice(cfg: object, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    check(value in choices, cfg, name, value, f"one of {', '.join(choices)}")
