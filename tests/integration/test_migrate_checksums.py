"""Applied migrations carry the sha256 of their file; a changed applied file stops the run."""

from __future__ import annotations

import dataclasses
import hashlib

import psycopg
import pytest

from camvault.catalog import migrate as migrate_mod
from camvault.catalog.migrate import Migration, available, migrate
from camvault.errors import ConfigError, MigrationChanged


def _recorded(url: str) -> dict[str, str | None]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {str(v): c for v, c in rows}


def _expected() -> dict[str, str | None]:
    return {m.version: m.checksum for m in available()}


def test_applied_migrations_record_the_file_sha256(db_url: str) -> None:
    first = available()[0]
    root = migrate_mod.resources.files("camvault.catalog").joinpath("migrations")
    assert first.checksum == hashlib.sha256(root.joinpath(first.name).read_bytes()).hexdigest()
    assert _recorded(db_url) == _expected()


def test_missing_checksums_are_backfilled(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE schema_migrations DROP COLUMN checksum")  # a pre-checksum DB
    assert migrate(db_url) == []
    assert _recorded(db_url) == _expected()


def test_a_changed_applied_file_is_refused_naming_it(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = available()
    edited = found[2]
    sql = edited.sql + "\n-- edited after release\n"
    changed = dataclasses.replace(
        edited, sql=sql, checksum=hashlib.sha256(sql.encode()).hexdigest()
    )
    pending = Migration("9999", "9999_pending.sql", "CREATE TABLE must_not_exist (x int);", "x")
    monkeypatch.setattr(
        migrate_mod, "available", lambda: [*found[:2], changed, *found[3:], pending]
    )
    with pytest.raises(MigrationChanged) as info:
        migrate(db_url)
    assert isinstance(info.value, ConfigError)  # CLI: "config error", exit 2
    msg = str(info.value)
    assert edited.name in msg and "changed after it was applied" in msg
    assert "\n" not in msg
    with psycopg.connect(db_url) as conn:  # nothing pending was applied
        assert conn.execute("SELECT to_regclass('must_not_exist')").fetchone() == (None,)
        assert conn.execute(
            "SELECT checksum FROM schema_migrations WHERE version = %s", (edited.version,)
        ).fetchone() == (edited.checksum,)
    assert "9999" not in _recorded(db_url)
