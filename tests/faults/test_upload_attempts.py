"""Every failed upload attempt is in the database — also the ones a later retry of the same
round recovers from, and also while PostgreSQL is down (journaled in the spool, flushed)."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from camvault.app import App
from camvault.models import SegmentState
from tests import recording as rec
from tests.faults.proxy import FaultProxy
from tests.support.uploads import MB, admit_blob

T0 = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
SIZE = 12 * MB  # three 5 MB parts: a multipart upload


def _rows(db_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(sql, args).fetchall()  # type: ignore[arg-type]


def _settings(make_settings: Any, s3_url: str, **extra: Any) -> Any:
    return make_settings(
        s3={
            "endpoint_url": s3_url,
            "conditional_writes": "off",
            "multipart_threshold_mb": 5,
            "multipart_chunk_mb": 5,
            "transfer_concurrency": 2,
            "connect_timeout_seconds": 2,
            "read_timeout_seconds": 5,
        },
        upload={"max_retries": 3},
        **extra,
    )


def _assert_one_object_one_row(s3: Any, bucket: str, db_url: str, key: str, digest: str) -> None:
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == SIZE
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    rows = _rows(db_url, "SELECT s3_key, checksum, size_bytes FROM recordings")
    assert rows == [{"s3_key": key, "checksum": digest, "size_bytes": SIZE}]


def _assert_two_recovered_attempts(db_url: str, seg_id: str) -> None:
    attempts = _rows(db_url, "SELECT * FROM upload_attempts ORDER BY attempt")
    assert [(a["segment_id"], a["round"], a["attempt"]) for a in attempts] == [
        (seg_id, 1, 1),
        (seg_id, 1, 2),
    ]
    for a in attempts:
        assert a["camera_id"] == "dock-3"
        assert a["error_class"] == "network"
        assert a["error_code"] not in ("", "network")  # the transport's own error type
        assert a["round_outcome"] == "succeeded" and a["round_ended_at"] is not None
        # the cut came inside the second part: some, not all, of the body went out
        assert a["bytes_sent"] is not None and 0 < a["bytes_sent"] <= SIZE
    # the round succeeded: no round-level error row
    assert _rows(db_url, "SELECT * FROM upload_errors") == []


def test_two_cut_attempts_are_two_rows_one_object_one_recording(
    make_settings: Any, s3_proxy: FaultProxy, s3: Any, db_url: str, tmp_path: Path
) -> None:
    settings = _settings(make_settings, s3_proxy.url)
    with App.open(settings) as app:
        app.catalog.upsert_camera("dock-3")
        seg = admit_blob(app, tmp_path / "big.mp4", "dock-3", T0, SIZE)
        digest = hashlib.sha256(Path(seg.path).read_bytes()).hexdigest()
        app.spool.lock_for_upload()
        pipeline = app.pipeline()
        pipeline.sweeper = None

        # the connection drops inside the second part, twice; the third attempt gets through
        s3_proxy.cut_after(7 * MB, times=2, then="pass")
        tally = pipeline.drain(threading.Event())
        assert s3_proxy.cuts == 2
        assert tally.committed == 1 and tally.failed_attempts == 2 and tally.failed_rounds == 0
        assert app.spool.get(seg.id).state is SegmentState.COMMITTED
        assert pipeline.attempt_log.journal.count_unsynced() == 0

    _assert_two_recovered_attempts(db_url, seg.id)
    _assert_one_object_one_row(s3, settings.s3.bucket, db_url, seg.s3_key, digest)


def test_attempts_made_while_the_catalog_is_down_land_when_it_is_back(
    make_settings: Any,
    s3_proxy: FaultProxy,
    pg_proxy: tuple[FaultProxy, str],
    s3: Any,
    db_url: str,
    tmp_path: Path,
) -> None:
    proxy, proxied_url = pg_proxy
    settings = _settings(
        make_settings, s3_proxy.url, database={"url": proxied_url, "connect_timeout_seconds": 1}
    )
    with App.open(settings) as app:
        app.catalog.upsert_camera("dock-3")
        seg = admit_blob(app, tmp_path / "big.mp4", "dock-3", T0, SIZE)
        digest = hashlib.sha256(Path(seg.path).read_bytes()).hexdigest()
        app.spool.lock_for_upload()
        pipeline = app.pipeline()
        pipeline.sweeper = None

        proxy.mode = "refuse"  # PostgreSQL goes away, open pool connections too
        proxy.cut_all()
        s3_proxy.cut_after(7 * MB, times=2, then="pass")
        tally = pipeline.drain(threading.Event())
        assert s3_proxy.cuts == 2
        assert tally.failed_attempts == 2 and tally.committed == 0
        assert tally.deferred_commits == 1  # in S3, its row waits in the reprocessing queue
        assert app.spool.get(seg.id).state is SegmentState.UPLOADED
        # both attempts and the round's outcome are in the spool's journal, not yet in PG
        assert pipeline.attempt_log.journal.count_unsynced() == 2
        assert _rows(db_url, "SELECT * FROM upload_attempts") == []

        proxy.restore()
        # each drain probes PostgreSQL first, then flushes and commits (the pool may take a
        # few of its own reconnect back-offs to notice it is back)
        rec.wait_for(
            lambda: pipeline.drain(threading.Event()).committed == 1, 60, "the commit", poll=1
        )
        assert pipeline.attempt_log.journal.count_unsynced() == 0
        assert app.spool.get(seg.id).state is SegmentState.COMMITTED

    _assert_two_recovered_attempts(db_url, seg.id)
    _assert_one_object_one_row(s3, settings.s3.bucket, db_url, seg.s3_key, digest)
