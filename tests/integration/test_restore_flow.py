"""Glacier restore end to end on moto (which stores GLACIER objects and restores them):
object in GLACIER → playback 409 with its state → export user restores → playable, with
the audit rows and the catalog's restore status. The API runs as in production: uvicorn,
``camvault_api`` role under row-level security."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from camvault.acl import Permission
from camvault.api import ApiServices, create_app
from camvault.api.routes_restore import RestoreGate
from camvault.api.server import ApiServer
from camvault.catalog.access import AccessCatalog, RoleConnector
from camvault.catalog.connector import PsycopgConnector
from camvault.catalog.lifecycle_catalog import LifecycleCatalog
from camvault.config import ApiSettings, S3Settings
from camvault.errors import ObjectArchived
from camvault.glacier import ObjectState, S3Archive
from camvault.lifecycle import parse_restore_header
from camvault.restore import Actor, RestoreService
from camvault.storage import S3ObjectStore, make_client
from tests.integration.access_env import add_cameras, add_recordings, bearer, service_access
from tests.support.moto_s3 import (
    REGION,
    moto_client,
    new_bucket_name,
)

CAM = "vault"
BODY = b"archived footage bytes"


@pytest.fixture
def world(moto_endpoint: str, db_url: str) -> Iterator[dict[str, Any]]:
    s3 = moto_client(moto_endpoint)
    bucket = new_bucket_name()
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    add_cameras(db_url, CAM)
    # the catalog still says STANDARD (as committed); S3 has since archived the object
    rec = add_recordings(db_url, CAM, 1, bucket=bucket)[0]
    s3.put_object(
        Bucket=bucket, Key=rec.key, Body=BODY, StorageClass="GLACIER", ServerSideEncryption="AES256"
    )
    with service_access(db_url) as admin:
        admin.add_user("viewer")
        admin.add_user("exporter")
        admin.add_grant(camera_id=CAM, user="viewer", permission=Permission.VIEW)
        admin.add_grant(camera_id=CAM, user="exporter", permission=Permission.EXPORT)
        viewer, _ = admin.create_token("viewer")
        exporter, _ = admin.create_token("exporter")

    s3_settings = S3Settings(
        bucket=bucket, region=REGION, endpoint_url=moto_endpoint, addressing_style="path"
    )
    client = make_client(s3_settings, credentials=("testing", "testing"))
    connector = PsycopgConnector(db_url, max_size=4)
    as_api = RoleConnector(connector, "camvault_api")
    archive = S3Archive(client, bucket)
    services = ApiServices(
        access=AccessCatalog(as_api),
        store=S3ObjectStore(client, s3_settings),
        settings=ApiSettings(),
        gate=RestoreGate(archive),
        restores=RestoreService(LifecycleCatalog(as_api), archive, tier="Bulk", days=3),
    )
    server = ApiServer(create_app(services), "127.0.0.1", 0)
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            yield {
                "http": http,
                "rec": rec,
                "viewer": viewer,
                "exporter": exporter,
                "s3": s3,
                "bucket": bucket,
            }
    finally:
        server.stop()
        connector.close()


def audit_rows(db_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT user_name, action, recording_id, s3_key, detail FROM audit_log ORDER BY id"
        ).fetchall()


def test_glacier_object_409_restore_then_playable(world: dict[str, Any], db_url: str) -> None:
    http, rec = world["http"], world["rec"]
    exporter, viewer = bearer(world["exporter"]), bearer(world["viewer"])

    r = http.post(f"/api/recordings/{rec.id}/playback", headers=exporter)
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["storage_class"] == "GLACIER" and body["status"] == "archived"
    assert body["restore"] == {"method": "POST", "path": f"/api/recordings/{rec.id}/restore"}
    assert not [a for a in audit_rows(db_url) if a["action"] == "playback"]  # nothing issued

    # view is not enough to restore
    r = http.post(f"/api/recordings/{rec.id}/restore", headers=viewer)
    assert r.status_code == 403, r.text
    r = http.post(f"/api/recordings/{rec.id}/restore", headers=exporter, json={"tier": "Fast"})
    assert r.status_code == 422 and r.json()["field"] == "tier"

    r = http.post(
        f"/api/recordings/{rec.id}/restore", headers=exporter, json={"tier": "Expedited", "days": 2}
    )
    assert r.status_code == 202, r.text
    st = r.json()
    assert (st["status"], st["tier"], st["days"]) == ("restored", "Expedited", 2)
    assert st["restored_until"] is not None
    head = world["s3"].head_object(Bucket=world["bucket"], Key=rec.key)
    assert 'ongoing-request="false"' in head["Restore"]

    r = http.post(f"/api/recordings/{rec.id}/playback", headers=viewer)
    assert r.status_code == 200, r.text
    assert httpx.get(r.json()["url"]).content == BODY

    r = http.get(f"/api/recordings/{rec.id}/restore", headers=viewer)
    assert r.status_code == 200 and r.json()["status"] == "restored"

    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        restore = conn.execute("SELECT * FROM restores").fetchone()
        exporter_id = conn.execute("SELECT id FROM users WHERE name = 'exporter'").fetchone()
    assert restore is not None and exporter_id is not None
    assert (restore["recording_id"], restore["status"], restore["tier"], restore["days"]) == (
        rec.id,
        "restored",
        "Expedited",
        2,
    )
    assert restore["requested_by"] == exporter_id["id"]
    actions = [(a["user_name"], a["action"], a["recording_id"]) for a in audit_rows(db_url)]
    assert ("exporter", "restore.request", rec.id) in actions
    assert ("viewer", "playback", rec.id) in actions
    req = next(a for a in audit_rows(db_url) if a["action"] == "restore.request")
    assert req["detail"]["tier"] == "Expedited" and req["detail"]["days"] == 2
    assert req["s3_key"] == rec.key


def test_default_tier_and_unarchived_and_invisible(world: dict[str, Any], db_url: str) -> None:
    http, rec = world["http"], world["rec"]
    r = http.post(f"/api/recordings/{rec.id}/restore", headers=bearer(world["exporter"]))
    assert r.status_code == 202 and (r.json()["tier"], r.json()["days"]) == ("Bulk", 3)
    r = http.post("/api/recordings/999999/restore", headers=bearer(world["exporter"]))
    assert r.status_code == 404


class SlowGlacier:
    """An archive whose restores take a while (moto's finish at once): the in-progress and
    completion paths, on the real catalog."""

    bucket = "slow"

    def __init__(self) -> None:
        self.restore_header: str | None = None

    def head(self, key: str) -> ObjectState:
        return ObjectState(
            key, 10, datetime.now(UTC), "GLACIER", parse_restore_header(self.restore_header)
        )

    def restore(self, key: str, *, days: int, tier: str) -> str:
        self.restore_header = 'ongoing-request="true"'
        return "started"


def test_restore_in_progress_then_completed_by_polling(db_url: str) -> None:
    add_cameras(db_url, CAM)
    rec = add_recordings(db_url, CAM, 1, bucket="slow")[0]
    archive = SlowGlacier()
    connector = PsycopgConnector(db_url, max_size=2)
    try:
        svc = RestoreService(LifecycleCatalog(connector), archive)  # type: ignore[arg-type]
        st = svc.request(rec.id, Actor(None, "ops"), tier="Bulk", days=1)
        assert st.status == "in_progress"
        with pytest.raises(ObjectArchived) as info:
            svc.playable(rec.id)
        assert info.value.state["status"] == "in_progress"
        assert svc.poll_pending() == 0  # still going
        archive.restore_header = (
            'ongoing-request="false", expiry-date="Fri, 01 Jan 2100 00:00:00 GMT"'
        )
        assert svc.poll_pending() == 1
        assert svc.playable(rec.id)["id"] == rec.id
    finally:
        connector.close()
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        row = conn.execute("SELECT status, restored_until FROM restores").fetchone()
    assert row is not None and row["status"] == "restored"
    assert row["restored_until"] == datetime(2100, 1, 1, tzinfo=UTC)
    actions = [a["action"] for a in audit_rows(db_url)]
    assert actions == ["restore.request", "restore.accepted", "restore.completed"]
