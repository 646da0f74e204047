"""What the configuration dataclasses of `gan_augment.config` share: a strict JSON round-trip,
the validators that name the field an impossible value was written to, and the parser of a
background colour (`ModelConfig.background`, also read by the decoder)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, TypeVar

C = TypeVar("C", bound="JsonConfig")
BACKGROUNDS = {"black": (0, 0, 0), "white": (255, 255, 255)}


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


def background_rgb(background: str) -> tuple[int, int, int]:
    """The RGB colour of a `ModelConfig.background`: "black", "white" or "#rrggbb".

    Raises:
        ValueError: anything else.

    Examples:
        >>> background_rgb("white"), background_rgb("#7f7f7f")
        ((255, 255, 255), (127, 127, 127))
    """
    if background in BACKGROUNDS:
        return BACKGROUNDS[background]
    digits = background[1:] if isinstance(background, str) and background.startswith("#") else ""
    if len(digits) != 6 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise ValueError(f"background={background!r} is invalid: expected black, white or a colour #rrggbb")
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
