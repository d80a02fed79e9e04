"""Crash between the stages, then restart: exactly one object and exactly one row.

The worker runs in a subprocess that SIGKILLs itself at the chosen point (a real kill -9:
no finally blocks, no flush), then a fresh process replays the journal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from camvault.app import App
from camvault.models import SegmentState
from tests.media import make_h264

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)

WORKER = """
import os, signal, sys, threading
from camvault.app import App
from camvault.config import Settings
from camvault.catalog import Catalog
import camvault.spool as sp

point = sys.argv[2]
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
if point == "before_commit":
    Catalog.commit_recording = die
elif point == "after_commit":
    sp.Spool.mark_committed = die
settings = Settings.model_validate_json(open(sys.argv[1]).read())
with App.open(settings) as app:
    app.spool.lock_for_upload()
    app.spool.recover()
    app.pipeline().drain(threading.Event())
"""


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_kill9_between_stages_then_replay(
    point: str, make_settings: Any, s3: Any, db_url: str, tmp_path: Path
) -> None:
    settings = make_settings()
    with App.open(settings) as app:
        app.catalog.upsert_camera("lobby-1")
        seg = app.ingestor().ingest(make_h264(tmp_path / "a.mp4"), "lobby-1", start=T0).segment
    assert seg is not None
    cfg = tmp_path / "settings.json"
    cfg.write_text(settings.model_dump_json())
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, str(cfg), point],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert proc.returncode == -9, proc.stderr

    # the object is in S3 after the crash; the file is still in the spool
    assert s3.head_object(Bucket=settings.s3.bucket, Key=seg.s3_key)["ContentLength"] > 0
    assert Path(seg.path).exists()

    with App.open(settings) as app:  # restart
        app.spool.lock_for_upload()
        app.spool.recover()
        tally = app.pipeline().drain(threading.Event())
        assert tally.committed == 1
        assert app.spool.get(seg.id).state is SegmentState.COMMITTED
    assert not Path(seg.path).exists()
    listed = s3.list_objects_v2(Bucket=settings.s3.bucket)["Contents"]
    assert [o["Key"] for o in listed] == [seg.s3_key]
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT s3_key, checksum FROM recordings").fetchall()
    assert rows == [(seg.s3_key, seg.checksum)]
