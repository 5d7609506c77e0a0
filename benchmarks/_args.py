"""CleanRL-style flags from a settings dataclass: one ``--flag-name`` per field, its docstring as the help."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from dagmix.mixing.schema import field_docs


def dataclass_parser(cls: type, prog: str, description: str | None) -> argparse.ArgumentParser:
    """Return a parser with one flag per field of ``cls``: bools are switches, lists take several values.

    A field whose default is None takes a string (an int or float where annotated ``int | None`` or
    ``float | None``); ``parser.parse_args`` then gives ``cls(**vars(ns))``.
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        default: Any = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        flag = "--" + f.name.replace("_", "-")
        doc = docs.get(f.name, "")
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=doc)
        elif isinstance(default, list):
            kind = type(default[0]) if default else str
            parser.add_argument(
                flag, nargs="+" if default else "*", type=kind, default=default, help=f"{doc} ({default})"
            )
        elif default is None:  # an optional number where the annotation says so (``int | None``), else text
            kind = int if str(f.type).startswith("int") else float if str(f.type).startswith("float") else str
            parser.add_argument(flag, type=kind, default=None, help=doc)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"{doc} (default: {default})")
    return parser
