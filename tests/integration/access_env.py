"""Helpers shared by the access-control tests: seeding rows and wiring the API for real.

The API is wired exactly as in production (``RoleConnector`` to ``camvault_api`` on a
PostgreSQL pool, a boto3 client on SeaweedFS) and served by uvicorn on a free port.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from camvault.acl import Permission
from camvault.api import ApiServices, create_app
from camvault.api.server import ApiServer
from camvault.catalog.access import AccessCatalog, RoleConnector
from camvault.catalog.attempts import AttemptCatalog
from camvault.catalog.connector import PsycopgConnector
from camvault.config import ApiSettings, S3Settings
from camvault.storage import S3ObjectStore, make_client

T0 = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
SEGMENT = timedelta(minutes=5)


@dataclass(frozen=True)
class Rec:
    id: int
    camera_id: str
    start: datetime
    end: datetime
    key: str


def add_cameras(db_url: str, *camera_ids: str) -> None:
    with psycopg.connect(db_url) as conn:
        for cam in camera_ids:
            conn.execute(
                "INSERT INTO cameras (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (cam, f"Camera {cam}"),
            )


def add_recordings(
    db_url: str,
    camera_id: str,
    count: int,
    *,
    start: datetime = T0,
    step: timedelta = SEGMENT,
    length: timedelta = SEGMENT,
    bucket: str = "camvault",
    storage_class: str = "STANDARD",
) -> list[Rec]:
    """Insert recordings directly (as the superuser) and return them oldest first."""
    out = []
    with psycopg.connect(db_url) as conn:
        for i in range(count):
            s = start + i * step
            e = s + length
            key = f"{camera_id}/{s:%Y/%m/%d}/{camera_id}_{s:%Y%m%dT%H%M%S}Z.mp4"
            conn.execute("SELECT camvault_ensure_partition(%s)", (s,))
            row = conn.execute(
                "INSERT INTO recordings (camera_id, start_time, end_time, duration_seconds,"
                " s3_bucket, s3_key, size_bytes, checksum_algorithm, checksum, codec, width,"
                " height, storage_class, sse, etag) VALUES (%s, %s, %s, %s, %s, %s, 1000,"
                " 'sha256', %s, 'h264', 320, 240, %s, 'AES256', 'etag') RETURNING id",
                (
                    camera_id,
                    s,
                    e,
                    (e - s).total_seconds(),
                    bucket,
                    key,
                    hashlib.sha256(key.encode()).hexdigest(),
                    storage_class,
                ),
            ).fetchone()
            assert row is not None
            out.append(Rec(row[0], camera_id, s, e, key))
    return out


@contextmanager
def service_access(db_url: str) -> Iterator[AccessCatalog]:
    conn = PsycopgConnector(db_url, max_size=2)
    try:
        yield AccessCatalog(conn)
    finally:
        conn.close()


@contextmanager
def api_client(
    db_url: str,
    *,
    s3_endpoint: str,
    bucket: str,
    credentials: tuple[str, str],
    api: dict[str, Any] | None = None,
    health_checks: dict[str, Any] | None = None,
) -> Iterator[tuple[httpx.Client, ApiServices]]:
    """The app served by uvicorn on a free port, and an httpx client for it."""
    connector = PsycopgConnector(db_url, max_size=4, application_name="camvault-api-test")
    s3 = S3Settings(bucket=bucket, endpoint_url=s3_endpoint, addressing_style="path")
    store = S3ObjectStore(make_client(s3, credentials=credentials), s3)
    access = AccessCatalog(RoleConnector(connector, "camvault_api"))
    services = ApiServices(
        access=access,
        store=store,
        settings=ApiSettings(**(api or {})),
        health_checks=health_checks
        if health_checks is not None
        else {"database": access.ping, "s3": lambda: next(iter(store.list_keys("hz/")), None)},
        metrics_source=lambda: {"camvault_spool_depth": 3},
        upload_attempts=AttemptCatalog(RoleConnector(connector, "camvault_api")),
    )
    server = ApiServer(create_app(services), "127.0.0.1", 0)
    try:
        url = server.start()
        with httpx.Client(base_url=url, timeout=30) as client:
            yield client, services
    finally:
        server.stop()
        connector.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def exporter_headers(db_url: str, camera_id: str) -> dict[str, str]:
    """A new user ``exporter`` with an export grant on ``camera_id``: its bearer header."""
    with service_access(db_url) as acc:
        acc.add_user("exporter")
        acc.add_grant(camera_id=camera_id, user="exporter", permission=Permission.EXPORT)
        return bearer(acc.create_token("exporter")[0])
