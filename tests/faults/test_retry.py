"""S3 down: the retry schedule seen from the network, the error row, the Lambda alert,
the segment kept, and the recovery — on SeaweedFS behind a fault proxy and moto."""

from __future__ import annotations

import itertools
import random
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from camvault.app import App, retry_policy
from camvault.models import SegmentState
from tests.faults.proxy import FaultProxy
from tests.media import make_h264
from tests.support.aws import lambda_invocations

T0 = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
SEED = 1234


def _rows(db_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(sql, args).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def lambda_proxy(moto_url: str) -> Any:
    port = int(moto_url.rsplit(":", 1)[1])
    with FaultProxy(("127.0.0.1", port), record=True) as proxy:
        yield proxy


def test_s3_down_bounded_retries_error_row_one_alert_then_recovery(
    make_settings: Any,
    s3_proxy: FaultProxy,
    lambda_proxy: FaultProxy,
    alert_function: str,
    db_url: str,
    s3: Any,
    tmp_path: Path,
) -> None:
    settings = make_settings(
        node="node-a",
        s3={"endpoint_url": s3_proxy.url, "conditional_writes": "off"},
        upload={"max_retries": 3, "backoff_base_seconds": 0.2, "backoff_max_seconds": 0.5},
        alerts={
            "lambda_function": alert_function,
            "lambda_endpoint_url": lambda_proxy.url,
            "dedupe_seconds": 3600,
        },
    )
    with App.open(settings) as app:
        app.catalog.upsert_camera("lobby-1")
        res = app.ingestor().ingest(make_h264(tmp_path / "a.mp4"), "lobby-1", start=T0)
        assert res.segment is not None
        seg, key = res.segment, res.segment.s3_key
        app.spool.lock_for_upload()

        s3_proxy.mode = "refuse"  # S3 is down
        pipeline = app.pipeline(rng=random.Random(SEED))
        pipeline.sweeper = None  # count the upload's own connections only
        tally = pipeline.drain(threading.Event())

        # exactly 1 + 3 attempts, each one connection, spaced by the jittered backoff
        policy = retry_policy(settings)
        rng = random.Random(SEED)
        sleeps = [policy.backoff(i, rng) for i in range(3)]
        hits = s3_proxy.attempts("refuse")
        assert len(hits) == 4
        for i, (a, b) in enumerate(itertools.pairwise(hits)):
            assert sleeps[i] <= policy.backoff_bound(i)
            assert sleeps[i] <= b - a < sleeps[i] + 1.0, (i, b - a, sleeps)
        assert tally.failed_rounds == 1 and tally.committed == 0

        # (a) one upload_errors row naming everything
        errors = _rows(db_url, "SELECT * FROM upload_errors")
        assert len(errors) == 1
        e = errors[0]
        assert (e["camera_id"], e["segment_id"], e["s3_key"]) == ("lobby-1", seg.id, key)
        assert (e["attempts"], e["error_class"], e["node"]) == (4, "network", "node-a")
        assert "network" in e["message"]

        # (b) one asynchronous Lambda invocation with the alert payload
        calls = lambda_invocations(lambda_proxy)
        assert len(calls) == 1
        headers, payload = calls[0]
        assert headers["x-amz-invocation-type"] == "Event"
        assert payload["kind"] == "upload_failed"
        assert (payload["camera_id"], payload["segment_id"], payload["s3_key"]) == (
            "lobby-1",
            seg.id,
            key,
        )
        assert (payload["error_class"], payload["attempts"], payload["node"]) == (
            "network",
            4,
            "node-a",
        )
        assert datetime.fromisoformat(payload["occurred_at"]).tzinfo is not None

        # (c) the segment stays in the spool, redriven later
        kept = app.spool.get(seg.id)
        assert kept.state is SegmentState.QUEUED and kept.rounds == 1
        assert kept.next_attempt_at is not None and kept.next_attempt_at > datetime.now(UTC)
        assert Path(kept.path).exists()

        # a second round while still down: another error row, but no second alert
        pipeline.drain(threading.Event())
        assert len(s3_proxy.attempts("refuse")) == 8
        errors = _rows(db_url, "SELECT attempts FROM upload_errors ORDER BY attempts")
        assert [r["attempts"] for r in errors] == [4, 8]
        assert len(lambda_invocations(lambda_proxy)) == 1

        # S3 is back: it lands, and one recovery notice goes out
        s3_proxy.restore()
        tally = pipeline.drain(threading.Event())
        assert tally.committed == 1
        body = s3.get_object(Bucket=settings.s3.bucket, Key=key)["Body"].read()
        assert len(body) == seg.size_bytes
        assert len(_rows(db_url, "SELECT * FROM recordings WHERE s3_key = %s", key)) == 1
        assert app.spool.get(seg.id).state is SegmentState.COMMITTED
        assert not Path(kept.path).exists()
        calls = lambda_invocations(lambda_proxy)
        assert [p["kind"] for _, p in calls] == ["upload_failed", "recovered"]
        assert calls[1][1]["extra"]["suppressed"] == 1


def test_permanent_error_alerts_at_once_without_retrying(
    make_settings: Any, s3_proxy: FaultProxy, db_url: str, tmp_path: Path
) -> None:
    """A bucket that does not exist will not appear by retrying: one attempt, then alert."""
    sent: list[Any] = []

    class Sink:
        def send(self, alert: Any) -> None:
            sent.append(alert)

    settings = make_settings(
        s3={"endpoint_url": s3_proxy.url, "bucket": "no-such-bucket-x", "conditional_writes": "off"}
    )
    with App.open(settings) as app:
        app.catalog.upsert_camera("lobby-1")
        res = app.ingestor().ingest(make_h264(tmp_path / "a.mp4"), "lobby-1", start=T0)
        assert res.segment is not None
        app.spool.lock_for_upload()
        pipeline = app.pipeline(alerts=Sink())
        pipeline.sweeper = None
        pipeline.drain(threading.Event())
        assert len(s3_proxy.attempts()) >= 1
        errors = _rows(db_url, "SELECT * FROM upload_errors")
        assert [(e["attempts"], e["error_class"]) for e in errors] == [(1, "s3:NoSuchBucket")]
        assert [a.kind for a in sent] == ["upload_failed"]
        kept = app.spool.get(res.segment.id)
        assert kept.state is SegmentState.QUEUED and Path(kept.path).exists()
