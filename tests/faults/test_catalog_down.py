"""PostgreSQL unreachable (fault proxy) after the upload: the reprocessing queue, across a
restart, drained by ``camvault reconcile``; upload errors journaled locally and flushed."""

from __future__ import annotations

import argparse
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from camvault.app import App
from camvault.cli.reconcile import cmd_reconcile
from camvault.models import SegmentState
from tests.faults.proxy import FaultProxy
from tests.media import make_h264

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)


def _count(db_url: str, sql: str, *args: Any) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(sql, args).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[0])


def test_commit_failure_goes_to_reprocessing_queue_and_lands_exactly_once(
    make_settings: Any,
    pg_proxy: tuple[FaultProxy, str],
    s3: Any,
    db_url: str,
    tmp_path: Path,
    capsys: Any,
) -> None:
    proxy, proxied_url = pg_proxy
    settings = make_settings(
        database={"url": proxied_url, "connect_timeout_seconds": 1},
        s3={"conditional_writes": "off"},
    )
    bucket = settings.s3.bucket
    with App.open(settings) as app:
        app.catalog.upsert_camera("gate-4")
        res = app.ingestor().ingest(make_h264(tmp_path / "a.mp4"), "gate-4", start=T0)
        assert res.segment is not None
        seg = res.segment
        app.spool.lock_for_upload()
        pipeline = app.pipeline()

        proxy.mode = "refuse"  # PostgreSQL becomes unreachable …
        proxy.cut_all()  # … including the pool's open connections
        tally = pipeline.drain(threading.Event())
        assert tally.committed == 0 and tally.deferred_commits == 1
        assert s3.head_object(Bucket=bucket, Key=seg.s3_key)["ContentLength"] == seg.size_bytes
        assert _count(db_url, "SELECT count(*) FROM recordings") == 0
        queued = app.spool.get(seg.id)
        assert queued.state is SegmentState.UPLOADED  # the reprocessing queue
        assert queued.next_attempt_at is not None and Path(queued.path).exists()
        # a second failed commit backs off further
        pipeline.retry_commits(ignore_delay=True)
        later = app.spool.get(seg.id)
        assert later.next_attempt_at is not None and later.next_attempt_at > queued.next_attempt_at

    # the process restarts while the database is still down: the queue is on disk
    proxy.restore()
    args = argparse.Namespace(
        dry_run=False, no_orphans=False, no_missing=False, inventory=None, json=True
    )
    assert cmd_reconcile(settings, args) == 0
    out = capsys.readouterr().out
    assert '"queue_committed": 1' in out
    assert _count(db_url, "SELECT count(*) FROM recordings WHERE s3_key = %s", seg.s3_key) == 1
    assert _count(db_url, "SELECT count(*) FROM recordings") == 1
    with App.open(settings) as app:
        done = app.spool.get(seg.id)
        assert done.state is SegmentState.COMMITTED
        assert not Path(done.path).exists()
        # running it again changes nothing
    assert cmd_reconcile(settings, args) == 0
    assert _count(db_url, "SELECT count(*) FROM recordings") == 1


def test_error_rows_are_journaled_while_the_catalog_is_down_and_flushed_later(
    make_settings: Any,
    pg_proxy: tuple[FaultProxy, str],
    s3_proxy: FaultProxy,
    db_url: str,
    tmp_path: Path,
) -> None:
    proxy, proxied_url = pg_proxy
    settings = make_settings(
        database={"url": proxied_url, "connect_timeout_seconds": 1},
        s3={"endpoint_url": s3_proxy.url, "conditional_writes": "off"},
        upload={"max_retries": 0},
    )
    with App.open(settings) as app:
        app.catalog.upsert_camera("gate-4")
        res = app.ingestor().ingest(make_h264(tmp_path / "a.mp4"), "gate-4", start=T0)
        assert res.segment is not None
        app.spool.lock_for_upload()
        pipeline = app.pipeline()
        pipeline.sweeper = None
        s3_proxy.mode = "refuse"
        proxy.mode = "refuse"
        proxy.cut_all()
        pipeline.drain(threading.Event())
        assert app.spool.stats()["unflushed_errors"] == 1
        assert _count(db_url, "SELECT count(*) FROM upload_errors") == 0

        proxy.restore()
        # the pool reconnects with its own backoff: the flush lands once it has a connection
        flushed, deadline = 0, time.monotonic() + 30
        while flushed == 0 and time.monotonic() < deadline:
            flushed = pipeline.flush_errors()
            if flushed == 0:
                time.sleep(0.5)
        assert flushed == 1
        assert app.spool.stats()["unflushed_errors"] == 0
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(
                "SELECT camera_id, segment_id, attempts, error_class FROM upload_errors"
            ).fetchall()
        assert rows == [("gate-4", res.segment.id, 1, "network")]
        assert pipeline.flush_errors() == 0  # flushed once, never twice
