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
    assert _calls("make_client") == ["app.py"]


def test_s3_errors_are_translated_in_one_place() -> None:
    # catalog/connector.py has its own translate() for psycopg: the other boundary
    assert _calls("translate") == ["catalog/connector.py", "catalog/migrate.py", "s3/boto.py"]
