"""Versioned schema migrations: ``migrations/NNNN_name.sql``, each applied once, in order.

Runs on its own direct connection (the schema owner's), never through the API's pool.
A session advisory lock makes concurrent ``db migrate`` runs safe; re-running is a no-op.

Each applied file's sha256 is kept in ``schema_migrations.checksum`` (the column is added
here, not by a numbered file, since the runner owns that table). An applied file that has
since changed stops the run before anything is applied: editing history would leave
databases that differ while claiming the same version. Rows from before the column are
backfilled with the installed file's checksum on the first run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from camvault.catalog.connector import translate
from camvault.errors import MigrationChanged

_LOCK_KEY = 0x63616D76  # "camv"


@dataclass(frozen=True, slots=True)
class Migration:
    """One ``migrations/NNNN_name.sql`` file and the sha256 recorded when it is applied."""

    version: str  # "0001"
    name: str  # "0001_catalog.sql"
    sql: str
    checksum: str = ""  # sha256 hex of the file's bytes


def available() -> list[Migration]:
    root = resources.files("camvault.catalog").joinpath("migrations")
    out = []
    for entry in root.iterdir():
        if entry.name.endswith(".sql"):
            version = entry.name.split("_", 1)[0]
            raw = entry.read_bytes()
            checksum = hashlib.sha256(raw).hexdigest()
            out.append(Migration(version, entry.name, raw.decode("utf-8"), checksum))
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return out


def migrate(url: str, *, partitions_ahead_months: int = 3) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date)."""
    applied: list[str] = []
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version text PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text")
                pending = _verify(conn, available())
                for m in pending:
                    with conn.transaction():
                        conn.execute(m.sql.encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum)"
                            " VALUES (%s, %s, %s)",
                            (m.version, m.name, m.checksum),
                        )
                    applied.append(m.name)
                conn.execute("SELECT camvault_ensure_partitions(1, %s)", (partitions_ahead_months,))
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    except psycopg.Error as exc:
        raise translate(exc) from exc
    return applied


def _verify(conn: psycopg.Connection[Any], found: list[Migration]) -> list[Migration]:
    """Check applied files against their recorded checksums (backfilling missing ones);
    return the migrations still to apply."""
    recorded = {
        str(v): (None if c is None else str(c))
        for v, c in conn.execute("SELECT version, checksum FROM schema_migrations")
    }
    for m in found:
        if m.version not in recorded:
            continue
        was = recorded[m.version]
        if was is None:
            conn.execute(
                "UPDATE schema_migrations SET checksum = %s"
                " WHERE version = %s AND checksum IS NULL",
                (m.checksum, m.version),
            )
        elif was != m.checksum:
            raise MigrationChanged(
                f"migration {m.name} was changed after it was applied "
                f"(recorded sha256 {was[:12]}…, file {m.checksum[:12]}…): "
                "restore the applied file and add a new migration instead"
            )
    return [m for m in found if m.version not in recorded]
