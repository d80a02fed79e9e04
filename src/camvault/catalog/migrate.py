"""Versioned schema migrations: ``migrations/NNNN_name.sql``, each applied once, in order.

Runs on its own direct connection (the schema owner's), never through the API's pool.
A session advisory lock makes concurrent ``db migrate`` runs safe; re-running is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import psycopg

from camvault.catalog.connector import translate

_LOCK_KEY = 0x63616D76  # "camv"


@dataclass(frozen=True, slots=True)
class Migration:
    version: str  # "0001"
    name: str  # "0001_catalog.sql"
    sql: str


def available() -> list[Migration]:
    root = resources.files("camvault.catalog").joinpath("migrations")
    out = []
    for entry in root.iterdir():
        if entry.name.endswith(".sql"):
            version = entry.name.split("_", 1)[0]
            out.append(Migration(version, entry.name, entry.read_text(encoding="utf-8")))
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
                done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
                for m in available():
                    if m.version in done:
                        continue
                    with conn.transaction():
                        conn.execute(m.sql.encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                            (m.version, m.name),
                        )
                    applied.append(m.name)
                conn.execute("SELECT camvault_ensure_partitions(1, %s)", (partitions_ahead_months,))
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    except psycopg.Error as exc:
        raise translate(exc) from exc
    return applied
