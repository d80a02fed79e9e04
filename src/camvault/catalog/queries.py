"""Loads named SQL queries from the package's ``.sql`` files (``-- name: x`` blocks)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME_RE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    parts = _NAME_RE.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in out:
            raise ValueError(f"query {name!r} defined twice")
        out[name] = body.strip()
    return out


@cache
def load(filename: str = "queries.sql") -> dict[str, str]:
    text = resources.files("camvault.catalog").joinpath(filename).read_text(encoding="utf-8")
    return parse_queries(text)


def query(name: str, filename: str = "queries.sql") -> str:
    try:
        return load(filename)[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in {filename}") from None
