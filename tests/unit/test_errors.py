"""The exception tree is whole: every camvault exception lives in ``errors`` and is either
transient (retried) or permanent (not), and retryability follows the tree alone."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import camvault
from camvault import errors
from camvault.retry import is_retryable


def _all_error_classes() -> set[type[BaseException]]:
    for info in pkgutil.walk_packages(camvault.__path__, "camvault."):
        if not info.name.endswith("__main__"):  # runs the CLI on import
            importlib.import_module(info.name)
    seen: set[type[BaseException]] = set()
    todo: list[type[BaseException]] = [errors.CamvaultError]
    while todo:
        cls = todo.pop()
        seen.add(cls)
        todo.extend(c for c in cls.__subclasses__() if c not in seen)
    return seen


def test_every_camvault_exception_is_defined_in_errors() -> None:
    stray = sorted(
        f"{c.__module__}.{c.__qualname__}"
        for c in _all_error_classes()
        if c.__module__ != "camvault.errors"
    )
    assert stray == []


def test_every_exception_is_transient_xor_permanent() -> None:
    roots = {errors.CamvaultError, errors.TransientError, errors.PermanentError}
    for cls in _all_error_classes() - roots:
        transient = issubclass(cls, errors.TransientError)
        permanent = issubclass(cls, errors.PermanentError)
        assert transient != permanent, cls.__name__


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (errors.StorageUnavailable("s3 down"), True),
        (errors.CatalogUnavailable("pg down"), True),
        (errors.ServiceUnavailable("no port"), True),
        (OSError("local read failed"), True),
        (errors.StoragePermanentError("denied", code="AccessDenied"), False),
        (errors.ObjectConflict("other object"), False),
        (errors.InvalidMedia("bad"), False),
        (errors.IntegrityViolation("dup", "23505"), False),
        (errors.StorageUnsupported("NotImplemented", ""), False),
        (errors.CamvaultError("untranslated"), False),
        (ValueError("bug"), False),
    ],
)
def test_retryability_follows_the_tree(exc: BaseException, retry: bool) -> None:
    assert is_retryable(exc) is retry
