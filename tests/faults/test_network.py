"""Network drops during upload: a multipart upload cut mid-way, a stalled server."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from camvault.app import App
from camvault.models import SegmentState
from tests.faults.proxy import FaultProxy
from tests.support.uploads import MB, admit_blob

T0 = datetime(2026, 11, 21, 9, 0, 0, tzinfo=UTC)


def _errors(db_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT error_class, attempts FROM upload_errors").fetchall()


def test_cut_multipart_is_aborted_swept_and_completed_later(
    make_settings: Any, s3_proxy: FaultProxy, s3: Any, db_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        s3={
            "endpoint_url": s3_proxy.url,
            "conditional_writes": "off",
            "multipart_threshold_mb": 5,
            "multipart_chunk_mb": 5,
            "transfer_concurrency": 2,
            "connect_timeout_seconds": 2,
            "read_timeout_seconds": 5,
        },
        upload={"max_retries": 1},
    )
    bucket = settings.s3.bucket
    with App.open(settings) as app:
        app.catalog.upsert_camera("dock-3")
        seg = admit_blob(app, tmp_path / "big.mp4", "dock-3", T0, 12 * MB)
        digest = hashlib.sha256(Path(seg.path).read_bytes()).hexdigest()
        app.spool.lock_for_upload()
        pipeline = app.pipeline()

        s3_proxy.cut_after(7 * MB)  # the network drops inside the second part, and stays down
        tally = pipeline.drain(threading.Event())
        assert tally.failed_rounds == 1 and tally.committed == 0
        assert _errors(db_url) == [("network", 2)]
        kept = app.spool.get(seg.id)
        assert kept.state is SegmentState.QUEUED and Path(kept.path).exists()
        # s3transfer's own abort could not get through: the parts are still on the server
        left = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert [u["Key"] for u in left] == [seg.s3_key]

        s3_proxy.restore()
        swept = pipeline.sweeper.sweep() if pipeline.sweeper else []
        assert [(u.key, u.reason) for u in swept] == [
            (seg.s3_key, "our segment, not being uploaded")
        ]
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

        tally = pipeline.drain(threading.Event())
        assert tally.committed == 1
        body = s3.get_object(Bucket=bucket, Key=seg.s3_key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(
                "SELECT checksum, size_bytes FROM recordings WHERE s3_key = %s", (seg.s3_key,)
            ).fetchall()
        assert rows == [(digest, 12 * MB)]


def test_stalled_server_times_out_and_the_segment_waits(
    make_settings: Any, s3_proxy: FaultProxy, s3: Any, db_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        s3={
            "endpoint_url": s3_proxy.url,
            "conditional_writes": "off",
            "connect_timeout_seconds": 1,
            "read_timeout_seconds": 1,
        },
        upload={"max_retries": 1},
    )
    with App.open(settings) as app:
        app.catalog.upsert_camera("dock-3")
        seg = admit_blob(app, tmp_path / "small.mp4", "dock-3", T0, 200_000)
        app.spool.lock_for_upload()
        pipeline = app.pipeline()
        pipeline.sweeper = None
        s3_proxy.mode = "stall"  # connections accepted, nothing ever answered
        pipeline.drain(threading.Event())  # returns: every attempt ends at the read timeout
        assert len(s3_proxy.attempts("stall")) == 2
        assert _errors(db_url) == [("network", 2)]
        assert app.spool.get(seg.id).state is SegmentState.QUEUED

        s3_proxy.restore()
        assert pipeline.drain(threading.Event()).committed == 1
        assert s3.head_object(Bucket=settings.s3.bucket, Key=seg.s3_key)["ContentLength"] == (
            200_000
        )
