"""`camvault upload --once` while another process owns the spool: it waits for the lock
(`--lock-timeout`, with a progress message) instead of failing at once."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from camvault.app import App
from camvault.cli import main
from tests.media import make_h264

T0 = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)

# A real second camvault process: takes the spool's uploader lock as `run` does, says so,
# and lets go (by exiting) after the given number of seconds.
HOLDER = """
import sys, time
from camvault.spool import Spool
spool = Spool(sys.argv[1])
spool.lock_for_upload()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
spool.close()
"""


def _hold(spool_dir: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(spool_dir), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(10)
    assert proc.stdout is not None
    proc.stdout.close()


def _spool_one(cfg: Path, tmp_path: Path) -> tuple[str, Path]:
    from camvault.config import load_settings

    settings = load_settings(str(cfg))
    with App.open(settings) as app:
        app.catalog.upsert_camera("lobby-1")
        res = app.ingestor().ingest(make_h264(tmp_path / "a.mp4"), "lobby-1", start=T0)
        assert res.segment is not None
        return res.segment.s3_key, settings.spool.dir


def test_upload_once_waits_for_the_lock_then_drains(
    config: Path,
    tmp_path: Path,
    db_url: str,
    s3: Any,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, spool_dir = _spool_one(config, tmp_path)
    holder = _hold(spool_dir, 3)
    try:
        began = time.monotonic()
        code = main(["-c", str(config), "upload", "--once", "--lock-timeout", "60"])
        waited = time.monotonic() - began
        out, err = capsys.readouterr()
        assert holder.wait(30) == 0  # the holder exited on its own: it let go, then we ran
    finally:
        _stop(holder)
    assert code == 0, err
    assert "another uploader holds the spool" in err and "waiting" in err
    assert waited > 0  # (the wait itself is the holder's sleep; no threshold asserted)
    assert "committed 1 segment(s)" in out
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT s3_key FROM recordings").fetchall() == [(key,)]


@pytest.mark.parametrize("timeout", ["0", "1"])
def test_upload_once_gives_up_when_the_lock_stays_taken(
    timeout: str,
    config: Path,
    tmp_path: Path,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, spool_dir = _spool_one(config, tmp_path)
    holder = _hold(spool_dir, 60)
    try:
        code = main(["-c", str(config), "upload", "--once", "--lock-timeout", timeout])
        _, err = capsys.readouterr()
        assert holder.poll() is None  # still holding it: we gave up, it did not let go
    finally:
        _stop(holder)
    assert code == 1
    assert "another camvault uploader is already using the spool" in err
    assert ("waited 1 s" in err) == (timeout == "1")
    assert ("waiting for it" in err) == (timeout == "1")
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM recordings").fetchone() == (0,)


def test_lock_timeout_must_be_seconds(
    config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["-c", str(config), "upload", "--once", "--lock-timeout", "soon"])
    assert exc.value.code == 2
    assert "--lock-timeout" in capsys.readouterr().err
