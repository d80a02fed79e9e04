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


# The API's reply shapes: raised to answer HTTP, built from camvault errors at the edge, and
# (two of them) starlette HTTPExceptions, which errors.py must not import (CLI start-up).
HTTP_REPLY_SHAPES = {
    "camvault.api.params.ApiError",
    "camvault.api.middleware.BodyTooLarge",
    "camvault.api.middleware.Unauthorized",
}


def test_no_exception_class_is_defined_outside_errors() -> None:
    """Also a class that does not derive from ``CamvaultError`` (``class X(Exception)``),
    which the walk above cannot see."""
    _all_error_classes()  # imports every module
    import inspect
    import sys

    stray = sorted(
        f"{name}.{cls.__qualname__}"
        for name, module in list(sys.modules.items())
        if name.startswith("camvault.") and name != "camvault.errors"
        for cls in vars(module).values()
        if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == name
    )
    assert stray == sorted(HTTP_REPLY_SHAPES)


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


# The caller-facing branches: each maps to one answer, and none hides inside another ------
CALLER_ERRORS: list[tuple[BaseException, int, int]] = [
    # (error, HTTP status from the app's handlers, CLI exit code)
    (errors.InputError("bad"), 400, 2),
    (errors.InvalidTimeRange("reversed"), 400, 2),
    (errors.NotFound("no recording 7"), 404, 2),
    (errors.UnknownPrincipal("user", "ann"), 404, 2),
    (errors.ObjectArchived("in GLACIER", {"status": "archived"}), 409, 2),
    (errors.ExportNotReady("export 3 is running, not done", None), 409, 2),
    (errors.CatalogUnavailable("pg down"), 503, 3),
]


def test_not_found_and_state_conflicts_are_not_input_errors() -> None:
    branches = (errors.InputError, errors.NotFound, errors.StateConflict)
    for a in branches:
        assert issubclass(a, errors.PermanentError)
        assert [b for b in branches if b is not a and issubclass(a, b)] == [], a.__name__
    assert issubclass(errors.ObjectArchived, errors.StateConflict)
    assert issubclass(errors.ExportNotReady, errors.StateConflict)


@pytest.mark.parametrize(("exc", "status", "_exit"), CALLER_ERRORS)
def test_api_answers_each_branch_with_its_status(
    exc: BaseException, status: int, _exit: int
) -> None:
    import asyncio

    import httpx
    from fastapi import FastAPI

    from camvault.api.app import _install_error_handlers

    app = FastAPI()
    _install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/boom")

    r = asyncio.run(get())
    assert r.status_code == status, r.text
    if status != 503:  # the 503 body is generic on purpose
        assert r.json()["detail"] == str(exc)


@pytest.mark.parametrize(("exc", "_status", "code"), CALLER_ERRORS)
def test_cli_exit_code_follows_the_branch(
    exc: BaseException,
    _status: int,
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse

    from camvault import cli, config

    def raising(settings: object, args: argparse.Namespace) -> int:
        raise exc

    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.set_defaults(handler=raising)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(config, "load_settings", lambda path: None)
    assert cli.main([]) == code
    assert str(exc) in capsys.readouterr().err
