"""Shared fixtures: real PostgreSQL and a real SeaweedFS S3 server.

PostgreSQL: ``CAMVAULT_TEST_DATABASE_URL`` (default: the local server on 127.0.0.1:5432,
database ``test``); when none answers, an embedded ``pgserver`` is started. The schema is
migrated once into a template database; each test gets a fresh copy (``CREATE DATABASE …
TEMPLATE``), so tests never see each other's rows.

S3: one SeaweedFS for the session (free ports, temp dir, generated SSE-S3 key); each test
gets its own bucket.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from camvault.catalog.migrate import migrate
from camvault.config import Settings
from camvault.embedded import EmbeddedPostgres, SeaweedFS
from tests.support.pg import cloned_db, with_db

pytest_plugins = ["tests.support.moto_s3", "tests.support.camera"]

DEFAULT_TEST_DB = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session", autouse=True)
def _own_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`camvault ingest` snapshots validated settings under $XDG_CACHE_HOME
    (camvault.config_snapshot): the tests' go to a temp dir, not the user's home."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("CAMVAULT_TEST_DATABASE_URL", DEFAULT_TEST_DB)
    if _reachable(url):
        yield url
        return
    with EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data") as pg:
        yield pg.url


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    name = f"camvault_tpl_{os.getpid()}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrate(with_db(pg_admin_url, name))
    yield name
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    with cloned_db(pg_admin_url, template_db) as url:
        yield url


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    yield server
    server.stop(grace=1)  # SIGTERM always waits ~15 s in 4.48; nothing to flush in tests


@pytest.fixture
def s3(seaweed: SeaweedFS) -> Any:
    return seaweed.client()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def aws_env(seaweed: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials through boto3's standard chain, as in production."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweed.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweed.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def make_settings(
    db_url: str, seaweed: SeaweedFS, bucket: str, tmp_path: Path, aws_env: None
) -> Any:
    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "data_dir": str(tmp_path / "data"),
            "database": {"url": db_url},
            "s3": {
                "bucket": bucket,
                "endpoint_url": seaweed.endpoint_url,
                "addressing_style": "path",
            },
            "spool": {"dir": str(tmp_path / "spool")},
            "upload": {
                "backoff_base_seconds": 0.05,
                "backoff_max_seconds": 0.2,
                "redrive_base_seconds": 0.5,
                "redrive_max_seconds": 2.0,
                "poll_seconds": 0.2,
            },
        }
        for section, values in overrides.items():
            if isinstance(values, dict):
                base.setdefault(section, {}).update(values)
            else:
                base[section] = values
        return Settings.model_validate(base)

    return make
