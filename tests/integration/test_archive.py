"""The spine end to end on real servers: ingest → S3 (SeaweedFS) → PostgreSQL catalog."""

from __future__ import annotations

import base64
import hashlib
import shutil
import threading
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from camvault.app import App
from camvault.models import SegmentState
from tests.media import (
    make_empty,
    make_h264,
    make_h265,
    make_mjpeg,
    make_random_bytes,
    make_truncated,
)

T0 = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)


def _next_midnight(t: datetime) -> datetime:
    day = t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def app(make_settings: Any) -> Any:
    settings = make_settings()
    with App.open(settings) as a:
        a.catalog.upsert_camera("lobby-1", "Lobby entrance")
        a.catalog.upsert_camera("yard-2", "Yard")
        yield a


def _drain(app: App) -> Any:
    app.spool.lock_for_upload()
    app.spool.recover()
    return app.pipeline().drain(threading.Event())


def _row(db_url: str, key: str) -> dict[str, Any]:
    with psycopg.connect(db_url, row_factory=psycopg.rows.dict_row) as conn:
        rows = conn.execute("SELECT * FROM recordings WHERE s3_key = %s", (key,)).fetchall()
    assert len(rows) == 1, rows
    return rows[0]


def _count(db_url: str, table: str = "recordings") -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


CASES = [
    # (name, maker, kwargs, expected codec, width, height)
    ("small.mp4", make_h264, {"seconds": 2.0, "size": "320x240"}, "h264", 320, 240),
    ("wide.mp4", make_h264, {"seconds": 3.0, "size": "640x360", "fps": 25}, "h264", 640, 360),
    ("audio.mp4", make_h264, {"seconds": 2.0, "audio": True}, "h264", 320, 240),
    ("hevc.mp4", make_h265, {"seconds": 2.0, "size": "320x240"}, "hevc", 320, 240),
    ("cam.mkv", make_h264, {"seconds": 2.0}, "h264", 320, 240),
]


def test_ingest_upload_commit_every_column(app: App, s3: Any, db_url: str, tmp_path: Path) -> None:
    ingestor = app.ingestor()
    originals: dict[str, tuple[Path, Any, str, int, int, datetime]] = {}
    for i, (name, maker, kw, codec, w, h) in enumerate(CASES):
        src = maker(tmp_path / "in" / name, **kw)
        keep = shutil.copy(src, tmp_path / f"orig-{name}")
        start = T0 + timedelta(minutes=5 * i)
        res = ingestor.ingest(src, "lobby-1", start=start)
        assert res.ok, res.reason
        assert not src.exists(), "the file moves into the spool"
        originals[res.segment.s3_key] = (Path(keep), res.segment, codec, w, h, start)

    tally = _drain(app)
    assert tally.committed == len(CASES)

    for key, (orig, seg, codec, w, h, start) in originals.items():
        assert key == f"lobby-1/2026/11/20/lobby-1_{start:%Y%m%dT%H%M%S}Z.{orig.suffix[1:]}"
        head = s3.head_object(Bucket=app.settings.s3.bucket, Key=key, ChecksumMode="ENABLED")
        assert head["ServerSideEncryption"] == "AES256"
        assert head.get("StorageClass", "STANDARD") == "STANDARD"
        meta = head["Metadata"]
        digest = _sha256(orig)
        assert meta["camera-id"] == "lobby-1"
        assert datetime.fromisoformat(meta["start"]) == start
        assert datetime.fromisoformat(meta["end"]) == start + timedelta(
            seconds=seg.duration_seconds
        )
        assert float(meta["duration"]) == pytest.approx(seg.duration_seconds, abs=1e-5)
        assert meta["checksum"] == f"sha256:{digest}"
        assert meta["codec"] == codec
        # the server verified and kept our full-object checksum
        assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(digest)).decode()
        body = s3.get_object(Bucket=app.settings.s3.bucket, Key=key)["Body"].read()
        assert body == orig.read_bytes()

        row = _row(db_url, key)
        assert row["camera_id"] == "lobby-1"
        assert row["start_time"] == start
        assert row["end_time"] == start + timedelta(seconds=seg.duration_seconds)
        assert row["duration_seconds"] == pytest.approx(seg.duration_seconds)
        assert row["s3_bucket"] == app.settings.s3.bucket
        assert row["size_bytes"] == orig.stat().st_size == head["ContentLength"]
        assert (row["checksum_algorithm"], row["checksum"]) == ("sha256", digest)
        assert (row["codec"], row["width"], row["height"]) == (codec, w, h)
        assert row["storage_class"] == "STANDARD"
        assert row["sse"] == "AES256"
        assert row["etag"] == head["ETag"].strip('"')
        # the default lifecycle (GLACIER after 30 days, expiry after 365), counted like S3
        # from the object's creation and rounded up to the next midnight UTC
        created = head["LastModified"]
        assert row["expected_storage_class"] == "STANDARD"
        assert row["archive_class"] == "GLACIER"
        assert row["archive_at"] == _next_midnight(created + timedelta(days=30))
        assert row["expires_at"] == _next_midnight(created + timedelta(days=365))
        assert row["deleted_at"] is None

    stats = app.spool.stats()
    assert stats["pending"] == 0
    assert stats["by_state"]["committed"] == len(CASES)
    assert list((app.spool.files_dir).rglob("*.*")) == [], "spooled files are deleted"


def test_same_file_twice_is_one_object_one_row(
    app: App, s3: Any, db_url: str, tmp_path: Path
) -> None:
    src = make_h264(tmp_path / "a.mp4", creation_time=T0)
    twin = shutil.copy(src, tmp_path / "b.mp4")
    ingestor = app.ingestor()
    r1 = ingestor.ingest(src, "lobby-1")
    _drain(app)
    r2 = ingestor.ingest(Path(twin), "lobby-1")  # replay after it was already archived
    assert r1.segment and r2.segment and r1.segment.s3_key == r2.segment.s3_key
    tally = _drain(app)
    assert tally.committed == 1  # the replay closes as "row already present"
    listed = s3.list_objects_v2(Bucket=app.settings.s3.bucket)["Contents"]
    assert [o["Key"] for o in listed] == [r1.segment.s3_key]
    assert _count(db_url) == 1
    assert app.spool.stats()["pending"] == 0


def test_different_object_at_same_key_is_never_overwritten(
    app: App, s3: Any, db_url: str, tmp_path: Path
) -> None:
    ingestor = app.ingestor()
    first = make_h264(tmp_path / "first.mp4", seconds=2.0)
    other = make_h264(tmp_path / "other.mp4", seconds=3.0, size="640x360")
    first_size = first.stat().st_size
    ingestor.ingest(first, "lobby-1", start=T0)
    _drain(app)
    res = ingestor.ingest(other, "lobby-1", start=T0)  # same camera + start → same key
    assert res.segment is not None
    tally = _drain(app)
    assert tally.conflicts == 1
    held = app.spool.get(res.segment.id)
    assert held.state is SegmentState.CONFLICT
    assert Path(held.path).exists(), "the conflicting file is kept, not deleted"
    head = s3.head_object(Bucket=app.settings.s3.bucket, Key=res.segment.s3_key)
    assert head["ContentLength"] == first_size, "the first object is untouched"
    assert head["Metadata"]["width"] == "320"
    row = _row(db_url, res.segment.s3_key)
    assert row["width"] == 320, "the catalog still describes the first object"
    assert _count(db_url, "upload_errors") == 1


BAD = [
    ("empty.mp4", lambda p: make_empty(p), "empty"),
    ("random.mp4", lambda p: make_random_bytes(p, 50_000), ""),
    ("mjpeg.mkv", lambda p: make_mjpeg(p), "mjpeg"),
]


def test_bad_input_is_quarantined_and_the_batch_goes_on(
    app: App, s3: Any, db_url: str, tmp_path: Path
) -> None:
    ingestor = app.ingestor()
    good1 = make_h264(tmp_path / "good1.mp4")
    bad_files = []
    for name, maker, _ in BAD:
        bad_files.append(maker(tmp_path / name))
    full = make_h264(tmp_path / "full.mp4", seconds=4.0)
    bad_files.append(make_truncated(full, tmp_path / "truncated.mp4", 0.6))
    future = make_h264(tmp_path / "future.mp4")
    unknown = make_h264(tmp_path / "unknown.mp4")
    good2 = make_h264(tmp_path / "good2.mp4")
    sizes = {p.name: p.stat().st_size for p in [*bad_files, future, unknown]}

    results = [ingestor.ingest(good1, "lobby-1", start=T0)]
    results += [
        ingestor.ingest(p, "lobby-1", start=T0 + timedelta(minutes=10 + i))
        for i, p in enumerate(bad_files)
    ]
    results.append(ingestor.ingest(future, "lobby-1", start=datetime.now(UTC) + timedelta(days=2)))
    results.append(ingestor.ingest(unknown, "no-such-cam", start=T0))
    results.append(ingestor.ingest(good2, "lobby-1", start=T0 + timedelta(minutes=5)))

    reasons = {r.source.name: r.reason for r in results if not r.ok}
    assert set(reasons) == {*(p.name for p in bad_files), "future.mp4", "unknown.mp4"}
    assert "empty" in reasons["empty.mp4"]
    assert "mjpeg" in reasons["mjpeg.mkv"]
    assert "truncated" in reasons["truncated.mp4"]
    assert "future" in reasons["future.mp4"]
    assert "unknown camera 'no-such-cam'" in reasons["unknown.mp4"]
    for r in results:
        if not r.ok:
            assert r.quarantined_to is not None and r.quarantined_to.exists()
            assert r.quarantined_to.stat().st_size == sizes[r.source.name], "never altered"
            assert Path(str(r.quarantined_to) + ".reason.json").exists()
    assert len(app.spool.quarantined()) == len(reasons)

    tally = _drain(app)
    assert tally.committed == 2
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=app.settings.s3.bucket)["Contents"])
    assert keys == sorted(r.segment.s3_key for r in results if r.ok)
    assert _count(db_url) == 2


def test_start_time_from_creation_tag_then_file_name(app: App, tmp_path: Path) -> None:
    ingestor = app.ingestor()
    tagged = make_h264(tmp_path / "x.mp4", creation_time=T0 + timedelta(seconds=7))
    named = make_h264(tmp_path / "yard_20261120T081500Z.mp4")
    neither = make_h264(tmp_path / "clip.mp4")
    r1 = ingestor.ingest(tagged, "yard-2")
    r2 = ingestor.ingest(named, "yard-2")
    r3 = ingestor.ingest(neither, "yard-2")
    assert r1.segment and r1.segment.start_time == T0 + timedelta(seconds=7)
    assert r2.segment and r2.segment.start_time == datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
    assert r3.segment is None and r3.reason and "no start time" in r3.reason


def test_recordings_partition_created_on_demand(app: App, db_url: str, tmp_path: Path) -> None:
    old = datetime(2019, 3, 4, 5, 6, 7, tzinfo=UTC)  # far outside the pre-made partitions
    res = app.ingestor().ingest(make_h264(tmp_path / "old.mp4"), "lobby-1", start=old)
    assert res.ok
    assert _drain(app).committed == 1
    with psycopg.connect(db_url) as conn:
        part = conn.execute("SELECT tableoid::regclass::text FROM recordings").fetchone()
    assert part == ("recordings_y2019m03",)


def test_large_segment_goes_multipart_with_full_object_crc32(
    make_settings: Any, s3: Any, db_url: str, tmp_path: Path
) -> None:
    settings = make_settings(s3={"multipart_threshold_mb": 5, "multipart_chunk_mb": 5})
    src = make_h264(tmp_path / "big.mp4", seconds=4.0, size="1280x720", fps=25, lossless=True)
    assert src.stat().st_size > 5 * 1024 * 1024, "must exceed the multipart threshold"
    data = src.read_bytes()
    with App.open(settings) as app:
        app.catalog.upsert_camera("lobby-1")
        seg = app.ingestor().ingest(src, "lobby-1", start=T0).segment
        assert seg is not None
        assert _drain(app).committed == 1
    head = s3.head_object(Bucket=settings.s3.bucket, Key=seg.s3_key, ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith(f"-{-(-len(data) // (5 * 1024 * 1024))}")
    assert head["ServerSideEncryption"] == "AES256"
    assert head.get("StorageClass", "STANDARD") == "STANDARD"
    assert head["ChecksumType"] == "FULL_OBJECT"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert head["ChecksumCRC32"] == crc
    assert head["Metadata"]["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert s3.get_object(Bucket=settings.s3.bucket, Key=seg.s3_key)["Body"].read() == data
    assert s3.list_multipart_uploads(Bucket=settings.s3.bucket).get("Uploads", []) == []
    assert _row(db_url, seg.s3_key)["size_bytes"] == len(data)


def test_catalog_refusing_a_row_holds_it_and_the_worker_goes_on(
    app: App, s3: Any, db_url: str, tmp_path: Path
) -> None:
    """A permanent catalog error (here a real CHECK violation) must not kill the worker or
    lose the segment: it is held as a conflict with an error row, the rest still lands."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE recordings ADD CONSTRAINT test_narrow CHECK (width < 600)")
    ingestor = app.ingestor()
    wide = ingestor.ingest(make_h264(tmp_path / "w.mp4", size="640x360"), "lobby-1", start=T0)
    narrow = ingestor.ingest(
        make_h264(tmp_path / "n.mp4"), "lobby-1", start=T0 + timedelta(minutes=5)
    )
    assert wide.segment and narrow.segment
    tally = _drain(app)
    assert (tally.committed, tally.conflicts) == (1, 1)
    held = app.spool.get(wide.segment.id)
    assert held.state is SegmentState.CONFLICT and Path(held.path).exists()
    assert "test_narrow" in (held.last_error or "")
    assert app.spool.get(narrow.segment.id).state is SegmentState.COMMITTED
    assert _count(db_url) == 1 and _count(db_url, "upload_errors") == 1


def test_an_unexpected_bug_returns_the_segment_to_the_queue(
    app: App, s3: Any, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = app.ingestor().ingest(make_h264(tmp_path / "a.mp4"), "lobby-1", start=T0)
    assert res.segment
    real = app.spool.mark_uploaded
    calls = []

    def buggy(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated bug")
        return real(*args, **kw)

    monkeypatch.setattr(app.spool, "mark_uploaded", buggy)
    first = _drain(app)
    assert first.committed == 0 and "simulated bug" in (first.last_error or "")
    seg = app.spool.get(res.segment.id)
    assert seg.state is SegmentState.QUEUED and Path(seg.path).exists()
    second = app.pipeline().drain(threading.Event())  # the operator's "drain now"
    assert second.committed == 1
    assert _count(db_url) == 1
