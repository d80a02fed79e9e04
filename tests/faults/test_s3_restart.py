"""SeaweedFS killed (SIGKILL) while segments wait, then restarted on the same data: the
round fails into the spool, and the next drain archives everything, readable."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from camvault.app import App
from camvault.embedded import SeaweedFS
from camvault.models import SegmentState
from tests.media import make_h264

T0 = datetime(2026, 11, 25, 7, 0, 0, tzinfo=UTC)


def test_s3_killed_and_restarted(make_settings: Any, db_url: str, tmp_path: Path) -> None:
    weed = SeaweedFS(tmp_path / "weed").start()
    try:
        weed.client().create_bucket(Bucket="restart")
        settings = make_settings(
            s3={
                "endpoint_url": weed.endpoint_url,
                "bucket": "restart",
                "conditional_writes": "off",
                "connect_timeout_seconds": 1,
                "read_timeout_seconds": 2,
            },
            upload={"max_retries": 1},
        )
        with App.open(settings) as app:
            app.catalog.upsert_camera("lobby-1")
            segs = []
            for i in range(2):
                src = make_h264(tmp_path / f"{i}.mp4")
                res = app.ingestor().ingest(src, "lobby-1", start=T0 + timedelta(minutes=5 * i))
                assert res.segment is not None
                segs.append(res.segment)
            app.spool.lock_for_upload()
            pipeline = app.pipeline()
            weed.kill()
            tally = pipeline.drain(threading.Event())
            assert tally.failed_rounds == 2 and tally.committed == 0
            assert all(app.spool.get(s.id).state is SegmentState.QUEUED for s in segs)

            weed.start()  # same ports, same data dir, same SSE key
            assert pipeline.drain(threading.Event()).committed == 2
            s3 = weed.client()
            for s in segs:
                body = s3.get_object(Bucket="restart", Key=s.s3_key)["Body"].read()
                assert len(body) == s.size_bytes
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(
                "SELECT count(*), count(DISTINCT s3_key) FROM recordings"
            ).fetchone()
            errs = conn.execute("SELECT DISTINCT error_class FROM upload_errors").fetchall()
        assert rows == (2, 2)
        assert errs == [("network",)]
    finally:
        weed.stop()
