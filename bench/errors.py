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
