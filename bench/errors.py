"""One-line configuration errors and the checks that raise them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

ALLOWED_BITS = (1, 2, 3, 4, 5, 6, 7, 8, 32)


class ConfigError(ValueError):
    """A bad option value; the message is one line naming the field and the allowed values."""


class DataError(ConfigError):
    """A dataset problem; the message is one line naming the path or field."""


def check_choice(field: str, value: object, allowed: Iterable[object]) -> object:
    """Return ``value`` if it is one of ``allowed``, else raise a one-line ConfigError."""
    allowed = tuple(allowed)
    if value not in allowed:
        hint = ""
        if isinstance(value, str):
            close = difflib.get_close_matches(value, [str(a) for a in allowed], n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(
            f"{field}={value!r} is not allowed; allowed values: {', '.join(map(str, allowed))}{hint}"
        )
    return value


def first_unknown(mapping: Iterable[object], allowed: Iterable[object]) -> object | None:
    """The first key of ``mapping`` that is not in ``allowed`` (None when all are)."""
    allowed = set(allowed)
    return next((key for key in mapping if key not in allowed), None)


def check_bits(field: str, bits: object) -> int:
    """Weight bit-width: 1..8, or 32 for full precision."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in ALLOWED_BITS:
        raise ConfigError(f"{field}={bits!r} is not allowed; allowed values: 1..8 or 32 (full precision)")
    return bits


def check_positive_int(field: str, value: object, minimum: int = 1) -> int:
    """An integer >= minimum (time steps, levels)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{field}={value!r} is not allowed; allowed values: integers >= {minimum}")
    return value


def warn(message: str) -> None:
    """One warning line on stderr (recoveries: a file moved aside, a fallback used)."""
    import sys

    print(f"spikebench: warning: {' '.join(message.split())}", file=sys.stderr, flush=True)


_TYPE_NAMES = {int: "integers", float: "numbers", str: "strings", bool: "true or false", dict: "mappings"}


def _fits(value: object, kind: object) -> bool:
    import typing

    if kind is type(None):
        return value is None
    if kind in (int, float) and isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    origin = typing.get_origin(kind) or kind
    return isinstance(origin, type) and isinstance(value, origin)


def check_types(obj: object, prefix: str = "") -> None:
    """Check every field of a dataclass instance (nested ones too) against its annotation; one-line
    ConfigError naming the field and the allowed type."""
    import dataclasses
    import types
    import typing

    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        if dataclasses.is_dataclass(value):
            check_types(value, f"{prefix}{f.name}.")
            continue
        union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        kinds = typing.get_args(hint) if union else (hint,)
        if not any(_fits(value, k) for k in kinds):
            names = " or ".join(
                "null"
                if k is type(None)
                else "a mapping of its fields"
                if dataclasses.is_dataclass(k)
                else _TYPE_NAMES.get(typing.get_origin(k) or k, str(k))
                for k in kinds
            )
            raise ConfigError(f"{prefix}{f.name}={value!r} is not allowed; allowed values: {names}")
