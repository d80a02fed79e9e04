"""The reconciler on the twins (in-memory S3 and PostgreSQL): orphan objects get their row
rebuilt from metadata, forged or unreadable metadata is reported and never inserted, rows
without an object are flagged, the reprocessing queue is drained. No server."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from camvault import reconcile
from camvault.catalog import Catalog
from camvault.catalog.memory import MemoryConnector
from camvault.models import Segment, SegmentState
from camvault.reconcile import Reconciler, ReconcileReport, inventory_keys
from camvault.s3.memory import MemoryObjectStore
from tests.support.twins import T0, catalogue, put_segment_object

PREFIX = "site/"


@pytest.fixture
def db() -> MemoryConnector:
    db = MemoryConnector()
    for cam in ("cam", "yard"):
        Catalog(db).upsert_camera(cam)
    return db


@pytest.fixture
def store() -> MemoryObjectStore:
    return MemoryObjectStore(bucket="b")


def _reconciler(db: MemoryConnector, store: MemoryObjectStore, **kw: object) -> Reconciler:
    return Reconciler(Catalog(db), db, store, prefix=PREFIX, **kw)  # type: ignore[arg-type]


def _row(db: MemoryConnector, key: str) -> dict[str, object]:
    [row] = [r for r in db.recordings.values() if r["s3_key"] == key]
    return row


def test_orphan_object_gets_its_row_rebuilt_from_its_metadata(
    db: MemoryConnector, store: MemoryObjectStore
) -> None:
    key = put_segment_object(
        store, "cam", T0, prefix=PREFIX, body=b"orphan body", storage_class="GLACIER"
    )
    report = _reconciler(db, store).run()
    assert (report.orphans, report.rebuilt) == ([key], [key]) and report.clean
    row = _row(db, key)
    obj = store.objects[key]
    assert (row["camera_id"], row["start_time"], row["end_time"]) == (
        "cam",
        T0,
        T0 + timedelta(seconds=300),
    )
    assert row["checksum"] == obj.metadata["checksum"].split(":")[1]
    assert (row["size_bytes"], row["etag"], row["sse"]) == (11, obj.etag, "AES256")
    assert (row["storage_class"], row["s3_bucket"], row["codec"]) == ("GLACIER", "b", "h264")
    assert row["duration_seconds"] == 300.0 and (row["width"], row["height"]) == (640, 360)


def test_dry_run_reports_the_orphan_and_writes_nothing(
    db: MemoryConnector, store: MemoryObjectStore
) -> None:
    key = put_segment_object(store, "cam", T0, prefix=PREFIX)
    report = _reconciler(db, store).run(dry_run=True)
    assert report.orphans == [key] and report.rebuilt == [] and not report.clean
    assert db.recordings == {} and "insert_recording" not in db.names()


@pytest.mark.parametrize(
    ("header", "value", "why"),
    [
        ("camera-id", "yard", "metadata camera-id 'yard' differs from the key's camera 'cam'"),
        ("start", (T0 + timedelta(minutes=5)).isoformat(), "metadata start 2026-11-20T08:05"),
    ],
)
def test_metadata_contradicting_the_key_is_mismatched_never_inserted(
    db: MemoryConnector, store: MemoryObjectStore, header: str, value: str, why: str
) -> None:
    key = put_segment_object(store, "cam", T0, prefix=PREFIX)
    store.objects[key].metadata[header] = value  # a forged header
    report = _reconciler(db, store).run()
    assert report.orphans == [key] and report.rebuilt == []
    [(bad, reason)] = report.mismatched
    assert bad == key and reason.startswith(why)
    assert db.recordings == {} and not report.clean


def test_unreadable_metadata_is_reported_not_guessed(
    db: MemoryConnector, store: MemoryObjectStore
) -> None:
    key = put_segment_object(store, "cam", T0, prefix=PREFIX)
    del store.objects[key].metadata["checksum"]
    report = _reconciler(db, store).run()
    assert report.unrebuildable == [(key, f"{key}: missing metadata header(s) x-amz-meta-checksum")]
    assert db.recordings == {} and not report.clean


def test_object_of_an_unknown_camera_is_unrebuildable(
    db: MemoryConnector, store: MemoryObjectStore
) -> None:
    key = put_segment_object(store, "gone-cam", T0, prefix=PREFIX)
    report = _reconciler(db, store).run()
    [(bad, reason)] = report.unrebuildable
    assert bad == key and "gone-cam" in reason
    assert db.recordings == {}


def test_row_without_object_is_flagged_and_kept(
    db: MemoryConnector, store: MemoryObjectStore
) -> None:
    keys = [
        put_segment_object(store, "cam", T0 + timedelta(minutes=5 * i), prefix=PREFIX)
        for i in range(3)
    ]
    yard = put_segment_object(store, "yard", T0, prefix=PREFIX)
    for key in [*keys, yard]:
        catalogue(Catalog(db), store, key)
    del store.objects[keys[1]], store.objects[yard]  # yard: no object of the camera left
    report = _reconciler(db, store).run()
    assert report.missing == [keys[1], yard] and report.orphans == []
    assert (report.objects_scanned, report.rows_scanned) == (2, 4)
    assert len(db.recordings) == 4, "only an operator may drop a row"
    assert not report.clean


def test_agreeing_bucket_and_catalog_are_clean(
    db: MemoryConnector, store: MemoryObjectStore
) -> None:
    for i in range(3):
        catalogue(
            Catalog(db),
            store,
            put_segment_object(store, "cam", T0 + timedelta(hours=i), prefix=PREFIX),
        )
    store.objects[f"{PREFIX}notes.txt"] = dataclasses.replace(next(iter(store.objects.values())))
    store.objects["elsewhere/cam/x.mp4"] = dataclasses.replace(next(iter(store.objects.values())))
    db.statements.clear()
    report = _reconciler(db, store).run()
    assert report.clean and report.foreign_keys == 1
    assert (report.orphans, report.missing, report.objects_scanned) == ([], [], 4)
    assert "insert_recording" not in db.names() and len(db.recordings) == 3


def test_rows_are_read_in_keyset_pages(
    db: MemoryConnector, store: MemoryObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile, "_PAGE", 2)
    keys = [
        put_segment_object(store, "cam", T0 + timedelta(minutes=5 * i), prefix=PREFIX)
        for i in range(5)
    ]
    for key in keys:
        catalogue(Catalog(db), store, key)
    del store.objects[keys[4]]
    orphan = put_segment_object(store, "cam", T0 + timedelta(minutes=12), prefix=PREFIX)
    report = _reconciler(db, store).run()
    assert report.missing == [keys[4]] and report.rebuilt == [orphan]
    assert report.rows_scanned == 5 and db.names().count("recon_rows_page") == 3 + 1  # + yard


def test_inventory_csv_is_a_listing_too(
    db: MemoryConnector, store: MemoryObjectStore, tmp_path: Path
) -> None:
    a = put_segment_object(store, "cam", T0, prefix=PREFIX)
    b = put_segment_object(store, "cam", T0 + timedelta(minutes=5), prefix=PREFIX)
    csv = tmp_path / "inventory.csv"
    csv.write_text(
        f'"b","{b.replace("/", "%2F")}","5","2026-11-20T08:10:00.000Z"\n'
        f'"other","{a}","5","2026-11-20T08:10:00.000Z"\n'
        f'"b","{a}","5","2026-11-20T08:10:00.000Z"\n'
        f'"b","{PREFIX}cam/","0",""\n'
    )
    rows = inventory_keys(csv, "b", PREFIX)
    assert [r[0] for r in rows] == [a, b] and rows[0][1] == 5
    report = _reconciler(db, store).run(keys=rows)
    assert report.rebuilt == [a, b] and not any(op == "list" for op, _ in store.calls)
    assert sorted(r["s3_key"] for r in db.recordings.values()) == [a, b]


def test_a_listing_out_of_key_order_costs_lookups_never_a_wrong_answer(
    db: MemoryConnector, store: MemoryObjectStore
) -> None:
    keys = [
        put_segment_object(store, "cam", T0 + timedelta(minutes=5 * i), prefix=PREFIX)
        for i in range(3)
    ]
    for key in keys:
        catalogue(Catalog(db), store, key)
    listing = list(store.list_keys(PREFIX))
    db.statements.clear()
    report = _reconciler(db, store).run(keys=[listing[2], listing[0], listing[1]])
    assert report.clean and (report.orphans, report.missing) == ([], [])
    assert "insert_recording" not in db.names()


def test_object_deleted_since_the_listing_is_not_rebuilt(
    db: MemoryConnector, store: MemoryObjectStore
) -> None:
    key = put_segment_object(store, "cam", T0, prefix=PREFIX)
    listing = list(store.list_keys(PREFIX))
    del store.objects[key]
    report = _reconciler(db, store).run(keys=listing)
    assert report.orphans == [key] and report.rebuilt == [] and report.unrebuildable == []
    assert db.recordings == {}


def _queued(n: int) -> list[Segment]:
    return [
        Segment(
            id=f"s{i}",
            camera_id="cam",
            path="",
            start_time=T0,
            end_time=T0,
            duration_seconds=0.0,
            size_bytes=1,
            checksum_algorithm="sha256",
            checksum="0",
            codec="h264",
            width=1,
            height=1,
            ext="mp4",
            s3_key=f"k{i}",
            state=SegmentState.UPLOADED,
        )
        for i in range(n)
    ]


def test_reprocessing_queue_is_committed_and_what_fails_stays(
    db: MemoryConnector, store: MemoryObjectStore
) -> None:
    committed: list[str] = []

    def commit(seg: Segment) -> bool:
        committed.append(seg.id)
        return seg.id != "s1"

    r = _reconciler(db, store, pending_commits=lambda: _queued(3), commit=commit)
    report = r.run(orphans=False, missing=False)
    assert committed == ["s0", "s1", "s2"]
    assert (report.queue_committed, report.queue_remaining) == (2, 1) and not report.clean
    dry = ReconcileReport(dry_run=True)
    r.drain_queue(dry)
    assert dry.queue_remaining == 3 and committed == ["s0", "s1", "s2"], "dry run commits none"
