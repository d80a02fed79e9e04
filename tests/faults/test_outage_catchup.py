"""Catch-up after an S3 outage, with a live RTSP camera and the whole node (``Runner``, as
`camvault run` starts it): S3 unreachable for over two minutes, then back.

Before the fix each segment waited out its own redrive delay (60 s doubling) after S3
came back. Now S3's circuit breaker holds the work and probes; the first answer lifts the
delays the outage caused and the backlog drains at full concurrency. Proven from outside:
the spool empties within (backlog bytes / throughput measured through the same proxy)
+ 10 s of S3's return, and the catalog over the whole run has no gap.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from camvault.embedded import SeaweedFS
from camvault.runner import Runner
from tests import recording as rec
from tests.faults.proxy import FaultProxy
from tests.rtsp_server import RtspCamera, unavailable

REASON = unavailable()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(REASON is not None, reason=f"no RTSP test server: {REASON}"),
]

OUTAGE_SECONDS = 125.0
SEGMENT_SECONDS = 3
SLACK_SECONDS = 10.0
PROBE_BYTES = 8 * 1024 * 1024


def _journal(spool_dir: Path, sql: str, *args: Any) -> tuple[Any, ...]:
    conn = sqlite3.connect(f"file:{spool_dir / 'journal.sqlite3'}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute(sql, args).fetchone()
    finally:
        conn.close()
    return tuple(row)


def _not_committed(spool_dir: Path, admitted_before: str | None = None) -> tuple[int, int]:
    """(segments, bytes) in the spool not yet committed [admitted before a time]."""
    sql = "SELECT count(*), coalesce(sum(size_bytes), 0) FROM segments WHERE state != 'committed'"
    if admitted_before is None:
        return _journal(spool_dir, sql)  # type: ignore[return-value]
    return _journal(spool_dir, sql + " AND created_at <= ?", admitted_before)  # type: ignore[return-value]


def _throughput(proxy: FaultProxy, seaweed: SeaweedFS, bucket: str) -> float:
    """Bytes/s of one SSE PUT through the same proxy to the same SeaweedFS."""
    s3 = boto3.client(
        "s3",
        endpoint_url=proxy.url,
        aws_access_key_id=seaweed.access_key,
        aws_secret_access_key=seaweed.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    body = os.urandom(PROBE_BYTES)
    began = time.monotonic()
    s3.put_object(
        Bucket=bucket, Key="throughput-probe/blob", Body=body, ServerSideEncryption="AES256"
    )
    return PROBE_BYTES / (time.monotonic() - began)


def test_backlog_drains_at_once_after_an_s3_outage_and_the_catalog_is_gapless(
    make_settings: Any,
    s3_proxy: FaultProxy,
    seaweed: SeaweedFS,
    s3: Any,
    bucket: str,
    db_url: str,
    tmp_path: Path,
) -> None:
    with RtspCamera(tmp_path / "rtsp.log", fps=rec.FPS) as cam:
        settings = make_settings(
            cameras=[{"id": rec.CAM, "url": cam.url, "segment_seconds": SEGMENT_SECONDS}],
            recording={"reconnect_base_seconds": 0.5, "reconnect_max_seconds": 1.0},
            s3={
                "endpoint_url": s3_proxy.url,
                "conditional_writes": "off",
                "connect_timeout_seconds": 1,
                "read_timeout_seconds": 5,
            },
            # production redrive delays: what made the old catch-up take minutes
            upload={
                "redrive_base_seconds": 60,
                "redrive_max_seconds": 3600,
                "probe_base_seconds": 0.5,
                "probe_max_seconds": 2,
            },
            api={"port": 0},
        )
        spool_dir = settings.spool.dir
        out = (tmp_path / "run.log").open("w")
        stop = threading.Event()
        result: list[int] = []
        runner = threading.Thread(
            target=lambda: result.append(
                Runner(settings, demo=False, out=out, progress_seconds=5).run(stop)
            ),
            daemon=True,
        )
        runner.start()
        try:
            rec.wait_for(lambda: len(rec.recordings(db_url)) >= 2, 90, "2 committed segments")
            throughput = _throughput(s3_proxy, seaweed, bucket)

            # S3 becomes unreachable (connections refused; open ones reset)
            s3_proxy.mode = "refuse"
            s3_proxy.cut_all()
            refused_before = len(s3_proxy.attempts("refuse"))
            time.sleep(OUTAGE_SECONDS)
            backlog, backlog_bytes = _not_committed(spool_dir)
            assert backlog >= 10, f"only {backlog} segments piled up during the outage"
            refused = len(s3_proxy.attempts("refuse")) - refused_before

            # S3 is back
            back_at = datetime.now(UTC).isoformat()  # the spool journal's own time format
            s3_proxy.restore()
            restored = time.monotonic()
            bound = backlog_bytes / throughput + SLACK_SECONDS
            rec.wait_for(
                lambda: _not_committed(spool_dir, back_at)[0] == 0,
                bound + 120,  # the assertion below is the real bound; this only ends the wait
                "the backlog to drain",
                poll=0.1,
            )
            drained = time.monotonic() - restored
            print(
                f"\noutage {OUTAGE_SECONDS:.0f} s: backlog {backlog} segments, "
                f"{backlog_bytes / 1e6:.2f} MB; throughput {throughput / 1e6:.1f} MB/s; "
                f"{refused} connections refused during the outage; drained in {drained:.1f} s "
                f"(bound {bound:.1f} s)"
            )
            assert drained <= bound, (drained, bound)
        finally:
            stop.set()
            runner.join(120)
            out.close()
    log = (tmp_path / "run.log").read_text()
    assert result == [0], log
    assert _not_committed(spool_dir) == (0, 0), log

    # the catalog over the whole run: one run, every segment abutting the next, no gap
    rows = rec.recordings(db_url)
    total = _journal(spool_dir, "SELECT count(*) FROM segments")[0]
    assert len(rows) == total >= backlog + 2
    assert len({r["run_id"] for r in rows}) == 1, "the recorder reconnected: not this test's point"
    for a, b in itertools.pairwise(rows):
        assert abs((b["start_time"] - a["end_time"]).total_seconds()) <= 1 / rec.FPS
    gaps = rec.rows(db_url, "SELECT * FROM recording_gaps WHERE camera_id = %s", rec.CAM)
    assert gaps == []
    for row in (rows[0], rows[len(rows) // 2], rows[-1]):  # objects really there, encrypted
        head = s3.head_object(Bucket=bucket, Key=row["s3_key"])
        assert head["ServerSideEncryption"] == "AES256"
        assert head["ContentLength"] == row["size_bytes"]
