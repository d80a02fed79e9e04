"""Every public class in camvault says what it is: a newcomer reads the docstring, and a
boundary contract (a ``Protocol``) states there what it promises its callers."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import pkgutil

import camvault

SKIPPED: tuple[str, ...] = ()


def _modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(camvault.__path__, "camvault.")
        if not info.name.endswith("__main__")  # runs the CLI on import
        and not info.name.startswith(SKIPPED)
    ]


def _own_doc(cls: type) -> str:
    """The class's own docstring: not one inherited from a base, nor the signature a
    dataclass writes when there is none, nor an Enum's stock text."""
    doc = (vars(cls).get("__doc__") or "").strip()
    if dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}("):
        return ""
    if issubclass(cls, enum.Enum) and doc in ("An enumeration.", ""):
        return ""
    return doc


def test_every_public_class_has_a_docstring() -> None:
    missing = []
    for name in _modules():
        module = importlib.import_module(name)
        for attr, cls in vars(module).items():
            if not inspect.isclass(cls) or cls.__module__ != name or attr.startswith("_"):
                continue
            if not _own_doc(cls):
                missing.append(f"{name}.{cls.__qualname__}")
    assert missing == [], "public classes without a docstring:\n" + "\n".join(missing)
