"""Boundaries stay where they are: only camvault.app builds S3 clients, and only
camvault.s3.boto turns botocore errors into camvault errors."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "camvault"


def _calls(name: str) -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                fn = node.func
                called = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                if called == name:
                    found.append(str(path.relative_to(SRC)))
    return sorted(set(found))


def test_only_app_builds_s3_clients() -> None:
    # and `camvault export`, from the values app resolved in its config child (it never
    # imports app/pydantic: export.standalone)
    assert _calls("make_client") == ["app.py", "export/standalone.py"]


def test_s3_errors_are_translated_in_one_place() -> None:
    # catalog/ has its own translate() for psycopg: the other boundary
    assert _calls("translate") == [
        "catalog/connector.py",
        "catalog/listen.py",
        "catalog/migrate.py",
        "s3/boto.py",
    ]


def _importers(module: str) -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if module in names:
                found.append(str(path.relative_to(SRC)))
    return sorted(set(found))


def test_only_the_wiring_reads_the_settings_model() -> None:
    # stages and boundaries (s3, bucket, lifecycle, retention, spool, ingest, …) take plain
    # values: the settings model is read at start-up, by these modules only
    assert _importers("camvault.config") == [
        "api/deps.py",
        "api/routes_restore.py",
        "api/server.py",
        "app.py",
        "cli/__init__.py",
        "cli/access.py",
        "cli/admin.py",
        "cli/archive.py",
        "cli/export.py",
        "cli/fleet.py",
        "cli/lifecycle.py",
        "cli/reconcile.py",
        "cli/record.py",
        "config_snapshot.py",
        "export/standalone.py",
        "export/worker.py",
        "runner.py",
        "wiring.py",
    ]
