"""Checks shared by the built-in envs' config dataclasses: types and finite numbers, then (low, high) ranges.

A config built from the command line (``env.mass=1e999``, ``env.inertia=['a','b','c']``) or in Python must fail
here, naming the field, before an env is built: an infinite mass or noise would only show later as non-finite
observations, and a string would raise a TypeError from inside a comparison.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond a float's range (e.g. 10**400)
        return False


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def check_fields(cfg: Any) -> None:
    """Check every field of the dataclass ``cfg`` against the type of its default.

    A float default takes a finite number, an int default an integer, a bool default True or False, a tuple of
    numbers as many finite numbers (a variable-length ``tuple[X, ...]`` field is left to its class's own check).
    None only where the field's annotation allows it (``float | None``).

    Raises:
        ValueError: ``<Class>.<field>=<value> must be ...``, naming the field, the value and what it takes.
    """
    owner = type(cfg).__name__
    for f in dataclasses.fields(cfg):
        value, default = getattr(cfg, f.name), _default(f)
        optional = "None" in str(f.type)
        if value is None:
            if optional:
                continue
            raise ValueError(f"{owner}.{f.name}=None is not allowed; the default is {default!r}.")
        if isinstance(default, bool):
            ok, kind = isinstance(value, bool), "True or False"
        elif isinstance(default, int):
            ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif isinstance(default, float):
            ok, kind = _is_number(value) and _finite(value), "a finite number"
        elif isinstance(default, tuple) and "..." not in str(f.type) and all(_is_number(d) for d in default):
            n = len(default)
            ok = isinstance(value, (tuple, list)) and len(value) == n
            ok = ok and all(_is_number(v) and _finite(v) for v in value)
            kind = f"{n} finite numbers, e.g. {default!r}"
        else:
            continue
        if not ok:
            raise ValueError(f"{owner}.{f.name}={value!r} must be {'None or ' if optional else ''}{kind}.")


def check_range(cfg: Any, name: str) -> None:
    """Check that the field ``name`` (two finite numbers, see :func:`check_fields`) is (low, high), 0 < low <= high."""
    lo, hi = getattr(cfg, name)
    if not 0 < lo <= hi:
        raise ValueError(
            f"{type(cfg).__name__}.{name}={getattr(cfg, name)!r} must be (low, high) with 0 < low <= high."
        )
