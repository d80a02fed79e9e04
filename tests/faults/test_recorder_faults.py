"""The recorder under real faults: ffmpeg SIGKILLed mid-segment, a camera that goes silent
without closing the connection (its server SIGSTOPped), camvault itself SIGKILLed.

Each test records from the real RTSP test server into the real spool, drains it to
SeaweedFS and PostgreSQL, and asserts the objects (SSE-S3), the rows, and the frame
numbers read back from S3 (``tests.rtsp_server`` counter pattern).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from camvault.app import App
from camvault.errors import InvalidMedia
from camvault.ingest import IngestResult
from camvault.probe import probe
from tests import recording as rec
from tests.rtsp_server import RtspCamera, unavailable

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no RTSP test server: {REASON}")


def _run_dirs(settings: Any) -> list[Path]:
    return sorted(p for p in (settings.spool.dir / "recording" / rec.CAM).glob("*") if p.is_dir())


def _frames_of(rows: list[dict[str, Any]], s3: Any, bucket: str, dest: Path) -> list[list[int]]:
    """Frame numbers of each recording, read back from its S3 object (SSE-S3 checked)."""
    out = []
    for row in rows:
        path = rec.download(s3, bucket, row["s3_key"], dest / f"{row['start_time']:%H%M%S%f}.mp4")
        numbers, starts_key = rec.frames(path)
        assert starts_key, row["s3_key"]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), row["s3_key"]
        assert row["duration_seconds"] == pytest.approx(len(numbers) / rec.FPS, abs=1.01 / rec.FPS)
        out.append(numbers)
    return out


def _assert_one_run_contiguous(frames: list[list[int]], rows: list[dict[str, Any]]) -> None:
    """Consecutive segments of one run: no frame lost or duplicated, times abut."""
    for i in range(1, len(frames)):
        assert frames[i][0] == frames[i - 1][-1] + 1, f"frames lost/duplicated before {i}"
    for a, b in itertools.pairwise(rows):
        assert abs((b["start_time"] - a["end_time"]).total_seconds()) <= 1 / rec.FPS


# --- 1. ffmpeg SIGKILLed mid-segment ---------------------------------------------------------
@pytest.mark.parametrize("fragments", [True, False], ids=["complete-fragments", "no-fragment"])
def test_ffmpeg_killed_mid_segment_keeps_fragments_and_reconnects(
    fragments: bool,
    make_settings: Any,
    db_url: str,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Contract: the segment a killed ffmpeg was writing keeps every fragment ffmpeg
    completed (each written out as it completes, at most 1 s long) and is spooled; bytes
    of a fragment cut off mid-write are quarantined. Killed before its first fragment was
    complete, the file holds only its header — no footage — and is dropped with a log
    line (quarantining an empty stub after every crash would only bury real problems).
    Either way no footage is deleted, a new run starts, the gap shows."""
    # 1 s GOPs = 1 s fragments; 2 Mbit/s: a fragment takes several writes to reach the disk
    opts: dict[str, Any] = {"gop": 15, "cbr": True, "bitrate": 2000} if fragments else {}
    seg_seconds = 4
    results: list[IngestResult] = []
    with RtspCamera(tmp_path / "rtsp.log", fps=rec.FPS, **opts) as cam:
        settings = rec.camera_settings(make_settings, cam.url, segment_seconds=seg_seconds)
        with App.open(settings) as app:
            app.register_cameras()
            with app.recorder(on_result=results.append):
                second = rec.wait_for(
                    lambda: [p for d in _run_dirs(settings) for p in d.glob("seg_000001.mp4")],
                    60,
                    "the second segment file",
                    poll=0.05,
                )[0]
                # kill ~3 s into the 4 s segment: its first two 1 s fragments are on disk,
                # the third is in ffmpeg's memory — or (no-fragment) within the first second
                time.sleep(2.9 if fragments else 0.3)
                (pid,) = rec.ffmpeg_pids(settings.spool.dir)
                os.kill(pid, signal.SIGKILL)
                killed_at = datetime.now(UTC)
                rec.wait_for(
                    lambda: any(r.segment and r.segment.start_time > killed_at for r in results),
                    60,
                    "a segment of the next run",
                )
            rec.drain(app)
            quarantined = app.spool.quarantined()
    run_a = second.parent.name
    rows = rec.recordings(db_url)
    runs = list(dict.fromkeys(r["run_id"] for r in rows))
    assert runs[0] == run_a and len(runs) == 2, runs  # reconnected: a new run id
    first_run = [r for r in rows if r["run_id"] == run_a]
    frames = _frames_of(first_run, s3, bucket, tmp_path / "back")
    _assert_one_run_contiguous(frames, first_run)
    # what of the killed segment is no video: at most a fragment cut off mid-write
    assert len(quarantined) <= 1 if fragments else quarantined == [], quarantined
    if fragments:
        # the killed segment is in S3: whole 1 s fragments, up to ffmpeg's last complete one
        assert len(first_run) == 2
        partial = first_run[-1]
        assert len(frames[-1]) % 15 == 0 and 30 <= len(frames[-1]) < seg_seconds * rec.FPS
        names = {"seg_000001.tail.mp4"}
    else:
        assert len(first_run) == 1  # only the segment ffmpeg finished
        partial = first_run[-1]
        names = set()
        assert not second.exists()  # the header-only stub: dropped, not spooled
        assert "held a header and no footage" in caplog.text
    for q in quarantined:
        assert q["camera_id"] == rec.CAM
        kept = Path(q["path"])
        assert kept.stat().st_size > 0 and Path(q["original_path"]).parent == second.parent
        assert Path(q["original_path"]).name in names
        assert q["reason"].startswith(("truncated", "not a video")), q["reason"]
        with pytest.raises(InvalidMedia):
            probe(kept)  # truly not playable on its own: quarantining it lost no footage
    ended = rec.rows(db_url, "SELECT * FROM recorder_runs WHERE id = %s", run_a)[0]
    assert ended["ended_at"] is not None and ended["segments"] == len(first_run)
    assert ended["end_reason"] == "ffmpeg killed by SIGKILL"
    gaps = rec.rows(db_url, "SELECT * FROM recording_gaps WHERE camera_id = %s", rec.CAM)
    assert [(g["run_before"], g["run_after"]) for g in gaps] == [(run_a, runs[1])]
    assert gaps[0]["gap_start"] == partial["end_time"] <= gaps[0]["gap_end"]
    for row in rows:
        head = s3.head_object(Bucket=bucket, Key=row["s3_key"])
        assert head["ServerSideEncryption"] == "AES256"
        assert head["ContentLength"] == row["size_bytes"]


# --- 2. the camera goes silent without closing the connection ------------------------------
def test_silent_stall_is_noticed_within_timeout_and_recording_resumes(
    camera: RtspCamera,
    make_settings: Any,
    db_url: str,
    s3: Any,
    bucket: str,
    tmp_path: Path,
) -> None:
    timeout, seg_seconds = 3.0, 4
    settings = rec.camera_settings(
        make_settings, camera.url, segment_seconds=seg_seconds, timeout_seconds=timeout
    )
    assert camera._proc is not None
    server = camera._proc.pid
    results: list[IngestResult] = []
    with App.open(settings) as app:
        app.register_cameras()
        with app.recorder(on_result=results.append):
            rec.wait_for(lambda: results, 60, "the first segment")
            time.sleep(1.5)  # mid-segment
            os.kill(server, signal.SIGSTOP)  # the TCP connection stays open, nothing comes
            stalled_at = datetime.now(UTC)
            try:
                offline = rec.wait_for(
                    lambda: rec.rows(db_url, "SELECT * FROM camera_status WHERE state = 'offline'"),
                    timeout * 2 + 30,
                    "camera_status offline",
                )[0]
                run_a = results[0].segment.run_id if results[0].segment else None
                ended = rec.rows(db_url, "SELECT * FROM recorder_runs WHERE id = %s", run_a)[0]
                assert ended["ended_at"] is not None
                # noticed after the configured silence, not twice that (ffmpeg retries a read)
                noticed = (ended["ended_at"] - stalled_at).total_seconds()
                assert timeout - 0.5 <= noticed <= timeout + 1.5, noticed
                assert offline["since"] >= ended["ended_at"] and offline["detail"]
                before = len(results)
                time.sleep(timeout + 1)  # a reconnect attempt fails against the stalled server
                assert len(results) == before
            finally:
                os.kill(server, signal.SIGCONT)
            rec.wait_for(
                lambda: len({r.segment.run_id for r in results if r.segment}) >= 2,
                60,
                "a segment of the next run",
            )
        rec.drain(app)
    assert all(r.ok for r in results), [r.reason for r in results]
    rows = rec.recordings(db_url)
    runs = list(dict.fromkeys(r["run_id"] for r in rows))
    assert runs[0] == run_a and len(runs) == 2
    first_run = [r for r in rows if r["run_id"] == run_a]
    frames = _frames_of(first_run, s3, bucket, tmp_path / "back")
    _assert_one_run_contiguous(frames, first_run)
    # the segment open when the camera went silent is kept: cut short, ends at the stall
    partial = first_run[-1]
    assert len(first_run) == 2 and partial["duration_seconds"] < seg_seconds
    assert abs(partial["end_time"] - stalled_at) < timedelta(seconds=1.5)
    gaps = rec.rows(db_url, "SELECT * FROM recording_gaps WHERE camera_id = %s", rec.CAM)
    assert [(g["run_before"], g["run_after"]) for g in gaps] == [(run_a, runs[1])]
    assert gaps[0]["gap_end"] - gaps[0]["gap_start"] >= timedelta(seconds=timeout)
    status = rec.rows(db_url, "SELECT * FROM camera_status")[0]
    assert status["state"] == "recording"  # resumed after the stall ended
    for row in rows:
        assert s3.head_object(Bucket=bucket, Key=row["s3_key"])["ServerSideEncryption"] == "AES256"


# --- 3. camvault SIGKILLed mid-recording ------------------------------------------------------
class _Record:
    """``camvault record`` as a subprocess; its stdout lines collected as they come."""

    def __init__(self, config: Path, log: Path) -> None:
        exe = str(Path(sys.executable).parent / "camvault")
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [exe, "-v", "--config", str(config), "record"],
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").strip())

    def spooled_runs(self) -> list[str]:
        return [ln.rsplit(" ", 1)[-1] for ln in self.lines if ln.startswith("spooled ")]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


def test_camvault_killed_finished_segments_salvaged_exactly_once(
    camera: RtspCamera,
    make_settings: Any,
    db_url: str,
    s3: Any,
    bucket: str,
    tmp_path: Path,
) -> None:
    settings = rec.camera_settings(make_settings, camera.url, segment_seconds=2)
    config = rec.write_toml(settings, tmp_path / "camvault.toml", segment_seconds=2)
    with App.open(settings) as app:
        app.register_cameras()
    first = _Record(config, tmp_path / "record-1.log")
    try:
        rec.wait_for(lambda: len(first.spooled_runs()) >= 2, 60, "2 spooled segments")
        # freeze camvault while its ffmpeg goes on: segments finish on disk, unspooled
        first.proc.send_signal(signal.SIGSTOP)
        time.sleep(4.5)
        first.proc.kill()
    finally:
        first.close()
    (run_dir,) = _run_dirs(settings)
    run_a = run_dir.name
    assert first.spooled_runs()[0] == run_a
    state = json.loads((run_dir / "state.json").read_text())
    handed = set(state["handed"])
    listed = [ln.split(",")[0] for ln in (run_dir / "list.csv").read_text().splitlines()]
    unspooled = [n for n in listed if n not in handed]
    assert unspooled, "precondition: a finished segment waits on disk, not spooled"
    assert len(handed) >= len(first.spooled_runs()) >= 2

    second = _Record(config, tmp_path / "record-2.log")
    try:
        rec.wait_for(
            lambda: len([r for r in second.spooled_runs() if r != run_a]) >= 2,
            60,
            "2 segments of the restarted recorder's own run",
        )
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(60) == 0
    finally:
        second.close()
    salvaged = [r for r in second.spooled_runs() if r == run_a]
    assert len(salvaged) >= len(unspooled)  # + the one the leftover ffmpeg then finished
    assert rec.ffmpeg_pids(settings.spool.dir) == []  # no ffmpeg left recording behind us
    assert not run_dir.exists()

    with App.open(settings) as app:
        rec.drain(app)
        assert app.spool.quarantined() == []
    rows = rec.recordings(db_url)
    first_run = [r for r in rows if r["run_id"] == run_a]
    assert len(first_run) == len(handed) + len(salvaged)  # each segment exactly once
    frames = _frames_of(first_run, s3, bucket, tmp_path / "back")
    _assert_one_run_contiguous(frames, first_run)  # nothing lost or doubled by the salvage
    runs = list(dict.fromkeys(r["run_id"] for r in rows))
    assert runs[0] == run_a and len(runs) == 2
    for a, b in itertools.pairwise(rows):
        assert b["start_time"] >= a["end_time"] - timedelta(seconds=1 / rec.FPS)  # no overlap
    listing = s3.list_objects_v2(Bucket=bucket)
    assert sorted(o["Key"] for o in listing.get("Contents", [])) == sorted(
        r["s3_key"] for r in rows
    )
    for row in rows:
        head = s3.head_object(Bucket=bucket, Key=row["s3_key"])
        assert head["ServerSideEncryption"] == "AES256"
        assert head["ContentLength"] == row["size_bytes"]
