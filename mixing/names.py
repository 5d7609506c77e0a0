"""The one "did you mean" helper: error messages that name a bad value or key, the valid options and a close match."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


def closest(value: object, valid: Iterable[str], cutoff: float = 0.6) -> str | None:
    """Return the entry of ``valid`` closest to ``value`` (difflib), or None if none is close enough."""
    close = difflib.get_close_matches(str(value), list(valid), n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(value: object, valid: Iterable[str], cutoff: float = 0.6) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest of ``valid`` to ``value``, or ``""`` if none is close."""
    match = closest(value, valid, cutoff)
    return f" Did you mean {match!r}?" if match else ""


def not_one_of(what: str, value: object, valid: Sequence[str]) -> str:
    """Return ``"what=value is not one of 'a', 'b'. Did you mean 'a'?"``."""
    return f"{what}={value!r} is not one of {', '.join(repr(v) for v in valid)}." + did_you_mean(value, valid)


def check_keys(section: str, keys: Iterable[str], valid: Sequence[str]) -> None:
    """Raise ValueError for the first key of ``keys`` not in ``valid``, naming the valid keys and a close match."""
    for key in keys:
        if key not in valid:
            raise ValueError(
                f"Unknown key {key!r} in {section}; valid keys: {', '.join(valid)}." + did_you_mean(key, valid)
            )
