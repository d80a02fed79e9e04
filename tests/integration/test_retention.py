"""`camvault retention sync` on SeaweedFS + PostgreSQL: objects deleted behind the
catalog's back become tombstones (kept, never listed), drift is reported, expected
classes and expiry dates come from the rules in force in the bucket."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from camvault import lifecycle
from camvault.bucket import BucketAdmin, apply_bucket
from camvault.catalog import Catalog, PsycopgConnector
from camvault.catalog.lifecycle_catalog import LifecycleCatalog
from camvault.cli import main
from camvault.config import Settings
from camvault.glacier import S3Archive
from camvault.keys import object_key
from camvault.models import Recording
from camvault.retention import RetentionSync
from camvault.wiring import bucket_spec, retention_policy

CAM = "yard"
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


def put_recording(catalog: Catalog, s3: Any, bucket: str, i: int) -> Recording:
    start = START + timedelta(minutes=5 * i)
    key = object_key("", CAM, start, "mp4")
    body = f"segment {i}".encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="AES256")
    rec, created = catalog.commit_recording(
        Recording(
            camera_id=CAM,
            start_time=start,
            end_time=start + timedelta(minutes=5),
            duration_seconds=300.0,
            s3_bucket=bucket,
            s3_key=key,
            size_bytes=len(body),
            checksum_algorithm="sha256",
            checksum=hashlib.sha256(body).hexdigest(),
            codec="h264",
            width=320,
            height=240,
            storage_class="STANDARD",
            sse="AES256",
            etag="e",
        )
    )
    assert created
    return rec


@pytest.fixture
def env(make_settings: Any, s3: Any, bucket: str, db_url: str) -> Any:
    settings: Settings = make_settings(
        lifecycle={"transition_storage_class": "", "expire_after_days": 30}
    )
    report = apply_bucket(BucketAdmin(s3, bucket), bucket_spec(settings.s3, settings.lifecycle))
    assert not [c for c in report.changes if c.failed and "lifecycle" in c.item]
    connector = PsycopgConnector(db_url, max_size=2)
    catalog = Catalog(connector)
    catalog.upsert_camera(CAM, "Yard")
    yield settings, catalog, LifecycleCatalog(connector)
    connector.close()


def syncer(lc: LifecycleCatalog, s3: Any, bucket: str, settings: Settings, now: datetime) -> Any:
    admin = BucketAdmin(s3, bucket)
    return RetentionSync(
        lc,
        S3Archive(s3, bucket),
        admin.get_lifecycle,
        retention_policy(settings.lifecycle),
        drift_grace=timedelta(days=settings.lifecycle.drift_grace_days),
        clock=lambda: now,
    )


def row(db_url: str, rec_id: int) -> dict[str, Any]:
    with psycopg.connect(db_url, row_factory=psycopg.rows.dict_row) as conn:
        r = conn.execute("SELECT * FROM recordings WHERE id = %s", (rec_id,)).fetchone()
    assert r is not None
    return r


def test_deleted_behind_our_back_is_tombstoned_hidden_and_reported(
    env: Any, s3: Any, bucket: str, db_url: str
) -> None:
    settings, catalog, lc = env
    recs = [put_recording(catalog, s3, bucket, i) for i in range(3)]
    s3.delete_object(Bucket=bucket, Key=recs[1].s3_key)  # behind camvault's back

    now = datetime.now(UTC)
    report = syncer(lc, s3, bucket, settings, now).run()
    assert report.checked == 3
    assert (report.tombstoned_vanished, report.tombstoned_expired) == (1, 0)
    assert [(d.kind, d.key) for d in report.drift] == [("vanished_early", recs[1].s3_key)]

    gone = row(db_url, recs[1].id)  # the row is kept, as a tombstone
    assert gone["deleted_reason"] == "vanished" and gone["deleted_at"] == now
    live = row(db_url, recs[0].id)
    assert live["deleted_at"] is None
    head = s3.head_object(Bucket=bucket, Key=recs[0].s3_key)
    assert live["expires_at"] == lifecycle.action_time(head["LastModified"], 30)
    assert live["expected_storage_class"] == "STANDARD" and live["archive_class"] is None
    listed = catalog.list_recordings(CAM, START - timedelta(hours=1), START + timedelta(hours=1))
    assert [r.id for r in listed] == [recs[0].id, recs[2].id]

    with psycopg.connect(db_url) as conn:
        audit = conn.execute(
            "SELECT detail FROM audit_log WHERE action = 'retention.sync'"
        ).fetchall()
    assert [a[0]["tombstoned_vanished"] for a in audit] == [1]

    again = syncer(lc, s3, bucket, settings, now).run()  # idempotent
    assert (again.checked, again.updated, again.tombstoned_vanished) == (2, 0, 0)


def test_overdue_expiry_then_expired_tombstone(env: Any, s3: Any, bucket: str, db_url: str) -> None:
    settings, catalog, lc = env
    rec = put_recording(catalog, s3, bucket, 0)
    later = datetime.now(UTC) + timedelta(days=40)  # past expiry + grace; S3 has not acted
    dry = syncer(lc, s3, bucket, settings, later).run(dry_run=True)
    assert [d.kind for d in dry.drift] == ["overdue_expiry"]
    assert row(db_url, rec.id)["expires_at"] is None  # dry run wrote nothing

    s3.delete_object(Bucket=bucket, Key=rec.s3_key)  # as the expiration rule would
    report = syncer(lc, s3, bucket, settings, later).run()
    assert (report.tombstoned_expired, report.tombstoned_vanished, report.drift) == (1, 0, [])
    assert row(db_url, rec.id)["deleted_reason"] == "expired"


def test_missing_rule_is_drift(env: Any, s3: Any, bucket: str) -> None:
    settings, catalog, lc = env
    put_recording(catalog, s3, bucket, 0)
    wants_longer = settings.model_copy(
        update={"lifecycle": settings.lifecycle.model_copy(update={"expire_after_days": 60})}
    )
    report = syncer(lc, s3, bucket, wants_longer, datetime.now(UTC)).run()
    assert [(d.kind, d.camera_id) for d in report.drift] == [("rule_missing", CAM)]
    assert "expire after 60 days" in report.drift[0].detail


def test_cli_retention_sync(
    env: Any, s3: Any, bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, catalog, _ = env
    recs = [put_recording(catalog, s3, bucket, i) for i in range(2)]
    s3.delete_object(Bucket=bucket, Key=recs[0].s3_key)
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[database]\nurl = "{settings.database.url}"\n'
        f'[s3]\nbucket = "{bucket}"\nendpoint_url = "{settings.s3.endpoint_url}"\n'
        'addressing_style = "path"\n[lifecycle]\ntransition_storage_class = ""\n'
        "expire_after_days = 30\n"
    )
    assert main(["--config", str(cfg), "retention", "sync", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tombstoned_vanished"] == 1 and out["checked"] == 2
    assert out["drift"][0]["key"] == recs[0].s3_key


def test_tombstones_are_hidden_from_the_api(
    env: Any, s3: Any, bucket: str, db_url: str, seaweed: Any
) -> None:
    """A tombstone stays in the table for the audit trail, but the API neither lists it nor
    serves it: its footage is gone."""
    from tests.integration.access_env import api_client, bearer, service_access

    settings, catalog, lc = env
    recs = [put_recording(catalog, s3, bucket, i) for i in range(2)]
    s3.delete_object(Bucket=bucket, Key=recs[0].s3_key)
    assert syncer(lc, s3, bucket, settings, datetime.now(UTC)).run().tombstoned_vanished == 1
    with service_access(db_url) as acc:
        acc.add_user("viewer")
        acc.add_grant(camera_id=CAM, user="viewer")
        token, _ = acc.create_token("viewer")
    creds = (seaweed.access_key, seaweed.secret_key)
    with api_client(db_url, s3_endpoint=seaweed.endpoint_url, bucket=bucket, credentials=creds) as (
        client,
        _,
    ):
        start = (START - timedelta(hours=1)).isoformat()
        end = (START + timedelta(hours=1)).isoformat()
        r = client.get(
            f"/api/cameras/{CAM}/recordings",
            params={"start": start, "end": end},
            headers=bearer(token),
        )
        assert r.status_code == 200, r.text
        assert [item["id"] for item in r.json()["items"]] == [recs[1].id]
        assert client.get(f"/api/recordings/{recs[0].id}", headers=bearer(token)).status_code == 404
        assert (
            client.post(f"/api/recordings/{recs[0].id}/playback", headers=bearer(token)).status_code
            == 404
        )
        assert client.get(f"/api/recordings/{recs[1].id}", headers=bearer(token)).status_code == 200
