"""What the benchmarks share: their scratch PostgreSQL databases.

Each bench builds its own database on the server of ``CAMVAULT_TEST_DATABASE_URL`` (a
superuser URL; default the local test server), migrated like a real catalog: either a
throw-away one (``scratch_name`` + ``create_db``, ``drop_db`` in a ``finally``) or a named
one kept for the next run (``create_db(..., replace=True)``).
"""

from __future__ import annotations

import os
import uuid

import psycopg
from psycopg import sql

from camvault.catalog.migrate import migrate

ADMIN_URL = os.environ.get(
    "CAMVAULT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def with_db(url: str, dbname: str) -> str:
    """``url`` pointing at database ``dbname`` instead."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


def scratch_name(prefix: str) -> str:
    """A database name no other run (or helper on the same server) uses."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def create_db(name: str, *, admin: str = ADMIN_URL, replace: bool = False) -> str:
    """Create database ``name`` (dropping an old one first with ``replace``), apply the
    migrations, return its URL."""
    with psycopg.connect(admin, autocommit=True) as conn:
        if replace:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_db(admin, name)
    migrate(url)
    return url


def db_exists(name: str, *, admin: str = ADMIN_URL) -> bool:
    with psycopg.connect(admin, autocommit=True) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


def drop_db(name: str, *, admin: str = ADMIN_URL) -> None:
    """Drop database ``name``, even with connections still open; absent is fine."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
