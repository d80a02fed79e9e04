"""One set of assertions, run against the in-memory catalog twin (``catalog.memory``) and
against PostgreSQL, through the real facades: the twin the unit tests rely on cannot
drift from the SQL it stands in for."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from camvault import reconcile
from camvault.catalog import Catalog, Connector, PsycopgConnector
from camvault.catalog.attempts import AttemptCatalog, AttemptRecord
from camvault.catalog.lifecycle_catalog import LifecycleCatalog
from camvault.catalog.memory import MemoryConnector
from camvault.errors import IntegrityViolation, RecordingConflict, UnknownCamera
from camvault.keys import object_key
from camvault.models import Recording
from camvault.reconcile import Reconciler, ReconcileReport
from camvault.s3.memory import MemoryObjectStore

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@dataclass
class Backend:
    connector: Connector
    audit: Callable[[], list[dict[str, Any]]]  # audit_log rows, oldest first


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        db = MemoryConnector()
        yield Backend(db, lambda: db.audit_log)
        return
    url = request.getfixturevalue("db_url")
    pg = PsycopgConnector(url, max_size=2)

    def audit() -> list[dict[str, Any]]:
        with psycopg.connect(url, row_factory=dict_row) as conn:
            return conn.execute("SELECT * FROM audit_log ORDER BY id").fetchall()

    yield Backend(pg, audit)
    pg.close()


def _rec(i: int, *, camera: str = "cam", body: bytes | None = None, **kw: Any) -> Recording:
    start = T0 + timedelta(minutes=5 * i)
    data = body or f"segment {i}".encode()
    rec = Recording(
        camera_id=camera,
        start_time=start,
        end_time=start + timedelta(seconds=300),
        duration_seconds=300.0,
        s3_bucket="b",
        s3_key=object_key("", camera, start, "mp4"),
        size_bytes=len(data),
        checksum_algorithm="sha256",
        checksum=hashlib.sha256(data).hexdigest(),
        codec="h264",
        width=640,
        height=360,
        storage_class="STANDARD",
        sse="AES256",
        etag="e",
    )
    return dataclasses.replace(rec, **kw)


def test_recordings_once_per_object(backend: Backend) -> None:
    catalog = Catalog(backend.connector, node="n1")
    assert catalog.upsert_camera("cam", "Cam").name == "Cam"
    assert catalog.upsert_camera("cam", "Renamed", 60).segment_seconds == 60
    assert [c.id for c in catalog.list_cameras()] == ["cam"]
    row, created = catalog.commit_recording(_rec(0))
    assert created and row.id is not None and row.node_id == "n1"
    again, created = catalog.commit_recording(_rec(0))
    assert not created and again.id == row.id
    with pytest.raises(RecordingConflict):
        catalog.commit_recording(_rec(0, body=b"other bytes"))
    with pytest.raises(UnknownCamera):
        catalog.commit_recording(_rec(1, camera="nobody"))
    with pytest.raises(IntegrityViolation) as info:
        catalog.commit_recording(_rec(2, duration_seconds=-1.0))
    assert info.value.sqlstate == "23514"
    found = catalog.get_recording_by_key("b", row.s3_key)
    assert found is not None and found.id == row.id and found.checksum == row.checksum
    assert catalog.get_recording_by_key("b", "nope") is None
    for _ in range(2):
        catalog.record_upload_error(
            camera_id="cam",
            segment_id="s1",
            s3_key="k",
            attempts=4,
            error_class="network",
            message="down",
            node="n1",
            occurred_at=T0,
        )
    assert [(e["segment_id"], e["attempts"]) for e in catalog.list_upload_errors("cam")] == [
        ("s1", 4)
    ]


def test_attempts_converge_and_never_go_back_to_pending(backend: Backend) -> None:
    Catalog(backend.connector).upsert_camera("cam")
    attempts = AttemptCatalog(backend.connector)
    attempts.ping()
    rec = AttemptRecord("cam", "s1", "k", 1, 1, "network", "X", "m", None, "n1", T0)
    attempts.upsert(rec)
    attempts.upsert(dataclasses.replace(rec, round_outcome="failed", round_ended_at=T0))
    attempts.upsert(rec)  # a late flush of the pending version
    [row] = attempts.recent(camera_id="cam")
    assert (row["attempt"], row["round_outcome"]) == (1, "failed")


def test_lifecycle_mirror_and_restores(backend: Backend) -> None:
    catalog = Catalog(backend.connector)
    lc = LifecycleCatalog(backend.connector)
    for cam in ("cam", "idle"):
        catalog.upsert_camera(cam)
    rows = [catalog.commit_recording(_rec(i))[0] for i in range(3)]
    assert lc.cameras("b") == ["cam"] and lc.cameras("other") == []
    live = list(lc.live_recordings("b", "cam", page=2))
    assert [r["id"] for r in live] == [r.id for r in rows]
    first = live[0]
    when = T0 + timedelta(days=1)
    lc.update_states(
        [
            {
                "id": first["id"],
                "start_time": first["start_time"],
                "storage_class": "GLACIER",
                "expected_storage_class": "GLACIER",
                "archive_class": "GLACIER",
                "archive_at": T0,
                "expires_at": when,
                "checked_at": when,
            }
        ]
    )
    assert lc.tombstone(live[1], reason="vanished", at=when, expires_at=None)
    assert not lc.tombstone(live[1], reason="vanished", at=when, expires_at=None)
    after = list(lc.live_recordings("b", "cam"))
    assert [r["id"] for r in after] == [rows[0].id, rows[2].id]
    assert (after[0]["storage_class"], after[0]["expires_at"]) == ("GLACIER", when)
    gone = lc.recording(int(live[1]["id"]))
    assert gone is not None and gone["deleted_at"] == when and gone["deleted_reason"] == "vanished"

    rec = lc.recording(int(first["id"]))
    assert rec is not None and rec["restore_status"] is None
    lc.save_restore(
        rec,
        status="requested",
        tier="Bulk",
        days=2,
        at=when,
        restored_until=None,
        detail="",
        audit={"action": "restore.request", "actor": "system", "detail": {"days": 2}},
    )
    lc.set_restore_status(rec, status="restored", restored_until=when, at=when, detail="done")
    lc.set_restore_status(rec, status="restored", restored_until=when, at=when)
    rec = lc.recording(int(first["id"]))
    assert rec is not None
    assert (rec["restore_status"], rec["restore_tier"], rec["restore_days"]) == (
        "restored",
        "Bulk",
        2,
    )
    assert (rec["restore_requested_at"], rec["restore_until"]) == (when, when)
    assert lc.pending_restores(when - timedelta(seconds=1)) == []
    [due] = lc.pending_restores(when)
    assert (due["recording_id"], due["status"], due["tier"]) == (first["id"], "restored", "Bulk")
    with pytest.raises(IntegrityViolation):
        lc.save_restore(
            rec,
            status="bogus",
            tier="Bulk",
            days=1,
            at=when,
            restored_until=None,
            detail="",
            audit={"action": "x"},
        )
    lc.audit(None, {"action": "retention.sync", "detail": {"n": 1}})
    audit = backend.audit()
    assert [(a["action"], a["recording_id"], a["detail"]) for a in audit] == [
        ("restore.request", first["id"], {"days": 2}),
        ("retention.sync", None, {"n": 1}),
    ], "the refused restore's audit row was rolled back with it"


def test_reconciler_row_pages(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconcile, "_PAGE", 2)
    catalog = Catalog(backend.connector)
    catalog.upsert_camera("cam")
    keys = [catalog.commit_recording(_rec(i))[0].s3_key for i in range(5)]
    catalog.commit_recording(_rec(7, s3_bucket="elsewhere"))  # another bucket: not ours
    report = ReconcileReport(dry_run=True)
    Reconciler(catalog, backend.connector, MemoryObjectStore(bucket="b"), prefix="").scan(report)
    assert report.missing == keys and report.rows_scanned == 5
