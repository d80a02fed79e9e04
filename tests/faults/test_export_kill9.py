"""Crash safety of clip exports: SIGKILL the process running an export at each step
(after the claim, while the clip is written, while uploading, after the upload but before
the row says done), restart, and check that the job completes — or, once its worker has
died too often, fails clearly — and that no partial or orphaned object is left under
exports/. The footage qualifies for the splice (``export.jobsplice``: no ffmpeg); with an
MP2 audio track (``FFMPEG``: the splice copies only AAC) the job keeps it, so ffmpeg
cuts it, and its temporary script and fed ffmpeg are what a kill leaves behind.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from camvault.app import App
from camvault.config import Settings
from camvault.export.jobs import MAX_ATTEMPTS, ExportRequests
from camvault.export.worker import export_runner
from tests.integration.access_env import T0, add_cameras
from tests.integration.export_env import upload_footage

ROOT = Path(__file__).resolve().parents[2]
SEC = timedelta(seconds=1)
CAM = "k9x"
# footage with MP2 audio: the job keeps it (keyframe-before cut) and the splice copies
# only AAC, so ffmpeg cuts the clip
FFMPEG = pytest.mark.parametrize("settings", ["audio"], indirect=True, ids=["ffmpeg"])


@pytest.fixture
def settings(
    make_settings: Any, db_url: str, s3: Any, bucket: str, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Settings:  # fmt: skip
    add_cameras(db_url, CAM)
    audio = getattr(request, "param", "") == "audio"
    starts = [T0, T0 + 20 * SEC, T0 + 50 * SEC]
    upload_footage(s3, bucket, db_url, CAM, starts, 20, tmp_path, audio="mp2" if audio else False)
    st: Settings = make_settings(api={"export_stale_seconds": 2, "export_workers": 0})
    return st


def request(settings: Settings) -> int:
    with App.open(settings) as app:
        reqs = ExportRequests(app.connector, max_minutes=60)
        return reqs.request(None, CAM, T0 + 3.5 * SEC, T0 + 65 * SEC).id


def kill_at(settings: Settings, tmp: Path, step: str) -> None:
    cfg = tmp / "settings.json"
    cfg.write_text(settings.model_dump_json())
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.export_worker", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line.strip())
        if line.strip() == step:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(30)
    proc.stdout.close()
    assert seen[-1] == step, seen
    assert proc.returncode == -signal.SIGKILL


def row(db_url: str, export_id: int) -> dict[str, Any]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        r = conn.execute("SELECT * FROM exports WHERE id = %s", (export_id,)).fetchone()
    assert r is not None
    return r


def beat(db_url: str, export_id: int, age_seconds: float) -> None:
    """Set the job's heartbeat to ``age_seconds`` ago."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE exports SET heartbeat_at = now() - make_interval(secs => %s) WHERE id = %s",
            (age_seconds, export_id),
        )


def restart(settings: Settings) -> None:
    """A new process's worker: picks the dead worker's job up once its heartbeat is stale."""
    with App.open(settings) as app:
        runner = export_runner(app)
        deadline = time.monotonic() + 60
        while not runner.run_next():
            assert time.monotonic() < deadline, "the dead worker's job was never taken over"
            time.sleep(0.5)


def export_objects(s3: Any, bucket: str) -> list[str]:
    resp = s3.list_objects_v2(Bucket=bucket, Prefix="exports/")
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix="exports/").get("Uploads", [])
    assert uploads == []  # never a dangling multipart upload
    return [o["Key"] for o in resp.get("Contents", [])]


@pytest.mark.parametrize("step", ["claimed", "progress", "uploading", "uploaded"])
def test_kill9_during_export_then_restart_completes(
    settings: Settings, db_url: str, s3: Any, bucket: str, tmp_path: Path, step: str
) -> None:
    export_id = request(settings)
    kill_at(settings, tmp_path, step)
    assert row(db_url, export_id)["state"] == "running"  # what the dead worker left
    restart(settings)
    r = row(db_url, export_id)
    assert (r["state"], r["attempts"], r["error"], r["assembly"]) == ("done", 2, None, "splice")
    assert export_objects(s3, bucket) == [r["s3_key"]]
    body = s3.get_object(Bucket=bucket, Key=r["s3_key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == r["sha256"] and len(body) == r["size_bytes"]
    assert not list((settings.data_dir / "exports-tmp").glob("export-*"))


def test_worker_dying_too_often_fails_the_job_clearly(
    settings: Settings, db_url: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    export_id = request(settings)
    kill_at(settings, tmp_path, "uploaded")  # an object exists, the row is not done
    with psycopg.connect(db_url) as conn:  # as if it had died MAX_ATTEMPTS times
        conn.execute("UPDATE exports SET attempts = %s WHERE id = %s", (MAX_ATTEMPTS, export_id))
    restart(settings)
    r = row(db_url, export_id)
    assert r["state"] == "failed" and "died" in r["error"], r
    assert export_objects(s3, bucket) == []  # the orphaned object was removed
    assert not list((settings.data_dir / "exports-tmp").glob("export-*"))


@FFMPEG
def test_start_up_sweeps_what_a_killed_process_left(
    settings: Settings, db_url: str, tmp_path: Path
) -> None:
    export_id = request(settings)
    kill_at(settings, tmp_path, "progress")  # ffmpeg was writing the clip
    tmp = settings.data_dir / "exports-tmp"
    assert (tmp / f"export-{export_id}.ffconcat").exists()  # its presigned URLs
    assert not (tmp / f"export-{export_id}.mp4").exists()  # the clip goes straight to S3
    with App.open(settings) as app:
        runner = export_runner(app)
        # heartbeat ages set, not waited for: a loaded machine must not decide the outcome
        beat(db_url, export_id, 0)
        assert runner.sweep_tmp() == 0  # the job's heartbeat is fresh: maybe still alive
        beat(db_url, export_id, 3600)
        assert runner.sweep_tmp() == 1  # the ffconcat script
    assert not list(tmp.iterdir())


def ffmpegs_of(script: Path) -> list[str]:
    """Processes running with ``script`` on their command line (the job's ffmpeg)."""
    out = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and str(script).encode() in (d / "cmdline").read_bytes():
                out.append(d.name)
        except OSError:
            continue
    return out


@FFMPEG
def test_kill9_while_fed_leaves_no_ffmpeg_then_restart_completes(
    make_settings: Any, settings: Settings, db_url: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """Fed by ranged GETs (FIFOs): a killed worker's ffmpeg does not outlive it (waiting on
    a FIFO nobody writes); the job is then completed as above."""
    fed: Settings = make_settings(
        api={"export_stale_seconds": 2, "export_workers": 0, "export_fetch_parallel": 2,
             "export_fetch_part_mb": 1, "export_fetch_ahead": 2},
    )  # fmt: skip
    export_id = request(fed)
    kill_at(fed, tmp_path, "progress")
    script = fed.data_dir / "exports-tmp" / f"export-{export_id}.ffconcat"
    deadline = time.monotonic() + 30
    while ffmpegs_of(script):
        assert time.monotonic() < deadline, f"the dead worker's ffmpeg lives: {ffmpegs_of(script)}"
        time.sleep(0.1)
    restart(fed)
    r = row(db_url, export_id)
    assert (r["state"], r["attempts"], r["error"], r["assembly"]) == ("done", 2, None, "ffmpeg")
    body = s3.get_object(Bucket=bucket, Key=r["s3_key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == r["sha256"]
