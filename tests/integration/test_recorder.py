"""The recorder against a real RTSP camera (GStreamer's RTSP server), SeaweedFS and PostgreSQL.

The camera's frames carry their own numbers (``tests.rtsp_server`` counter pattern), so
"no frame lost or duplicated at a boundary" is checked frame by frame on what came back
from S3, not inferred from durations.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import pytest

from camvault.app import App
from camvault.cli.admin import cmd_status
from camvault.ingest import IngestResult
from tests import recording as rec
from tests.rtsp_server import RtspCamera, unavailable

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no RTSP test server: {REASON}")


def test_segments_are_contiguous_frame_by_frame(
    camera: RtspCamera, make_settings: Any, db_url: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    settings = rec.camera_settings(make_settings, camera.url)
    results: list[IngestResult] = []
    with App.open(settings) as app:
        app.register_cameras()
        recorder = app.recorder(on_result=results.append)
        with recorder:
            rec.wait_for(lambda: len(results) >= 4, 60, "4 recorded segments")
        rec.drain(app)
    assert all(r.ok for r in results), [r.reason for r in results]
    rows = rec.recordings(db_url)
    assert len(rows) == len(results) >= 5  # stop() spooled the open segment too
    assert len({r["run_id"] for r in rows}) == 1
    frames: list[int] = []
    for i, row in enumerate(rows):
        path = rec.download(s3, bucket, row["s3_key"], tmp_path / "back" / f"{i}.mp4")
        numbers, starts_key = rec.frames(path)
        assert starts_key, f"segment {i} does not start with a keyframe"
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), f"segment {i}"
        if frames:
            assert numbers[0] == frames[-1] + 1, f"frames lost/duplicated before segment {i}"
        frames += numbers
        # within a frame: ffmpeg may give a run's very first packet no timestamp of its own
        assert row["duration_seconds"] == pytest.approx(len(numbers) / rec.FPS, abs=1.01 / rec.FPS)
    # every frame the camera sent from the first recorded one on is there exactly once
    assert frames == list(range(frames[0], frames[0] + len(frames)))
    for a, b in itertools.pairwise(rows):
        assert abs((b["start_time"] - a["end_time"]).total_seconds()) <= 1 / rec.FPS
    # anchored on the recorder's clock: the last segment ended about when we stopped
    last_end = rows[-1]["end_time"]
    assert abs((rows[-1]["created_at"] - last_end).total_seconds()) < 60


def test_a_handed_on_floor_is_where_the_first_segment_starts(
    camera: RtspCamera, make_settings: Any, db_url: str, bucket: str
) -> None:
    """A fleet hand-off: the previous holder's last segment ends at ``floor`` by its clock
    (ahead of where this recorder anchors its own first segment). The first segment starts
    exactly there — it neither overlaps that one nor shares its start second (the key) —
    and the next ones abut it."""
    import imageio_ffmpeg

    from camvault.recorder import CameraRecorder, CameraSource

    settings = rec.camera_settings(make_settings, camera.url)
    results: list[IngestResult] = []
    with App.open(settings) as app:
        app.register_cameras()
        floor = datetime.now(UTC) + timedelta(seconds=10)  # later than any anchor of ours
        recorder = CameraRecorder(
            CameraSource(rec.CAM, camera.url, 2),
            app.ingestor().ingest,
            work_dir=settings.spool.dir / "recording",
            ffmpeg=imageio_ffmpeg.get_ffmpeg_exe(),
            on_result=results.append,
            floor=floor,
        )
        stop = threading.Event()
        thread = threading.Thread(target=recorder.run, args=(stop,), daemon=True)
        thread.start()
        try:
            rec.wait_for(lambda: len(results) >= 2, 60, "2 recorded segments")
        finally:
            stop.set()
            thread.join(30)
        rec.drain(app)
    assert all(r.ok for r in results), [r.reason for r in results]
    rows = rec.recordings(db_url)
    assert len(rows) >= 3 and rows[0]["start_time"] == floor
    for a, b in itertools.pairwise(rows):
        assert b["start_time"] == a["end_time"]


def test_camera_restart_keeps_partial_segment_and_records_gap(
    camera: RtspCamera,
    make_settings: Any,
    db_url: str,
    s3: Any,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = rec.camera_settings(make_settings, camera.url, segment_seconds=4)
    results: list[IngestResult] = []
    with App.open(settings) as app:
        app.register_cameras()
        with app.recorder(on_result=results.append):
            rec.wait_for(lambda: results, 60, "the first segment")
            time.sleep(1.5)  # mid-segment
            before = len(results)
            camera.stop()
            rec.wait_for(lambda: len(results) > before, 30, "the partial segment")
            # offline: the catalog says so, and `camvault status` shows it
            status = rec.wait_for(
                lambda: rec.rows(db_url, "SELECT * FROM camera_status WHERE state = 'offline'"),
                30,
                "camera_status offline",
            )
            assert status[0]["camera_id"] == rec.CAM
            cmd_status(settings, _namespace(json=False))
            out = capsys.readouterr().out
            assert f"{rec.CAM}" in out and "offline since" in out, out
            time.sleep(2)
            camera.start()
            rec.wait_for(lambda: len(_runs(results)) >= 2, 60, "a segment of a second run")
        rec.drain(app)
    assert all(r.ok for r in results)
    rows = rec.recordings(db_url)
    runs = list(dict.fromkeys(r["run_id"] for r in rows))
    assert len(runs) == 2
    first_run = [r for r in rows if r["run_id"] == runs[0]]
    partial = first_run[-1]
    assert 0 < partial["duration_seconds"] < 4 + 2  # cut by the loss, not by the timer
    s3.head_object(Bucket=bucket, Key=partial["s3_key"])  # the partial segment is uploaded
    gaps = rec.rows(db_url, "SELECT * FROM recording_gaps WHERE camera_id = %s", rec.CAM)
    assert len(gaps) == 1
    gap = gaps[0]
    assert (gap["run_before"], gap["run_after"]) == (runs[0], runs[1])
    assert gap["gap_end"] - gap["gap_start"] >= timedelta(seconds=1.5)
    assert gap["gap_start"] == partial["end_time"]
    ended = rec.rows(db_url, "SELECT * FROM recorder_runs WHERE id = %s", runs[0])
    assert ended[0]["ended_at"] is not None and ended[0]["segments"] == len(first_run)
    status = rec.rows(db_url, "SELECT * FROM camera_status")
    assert status[0]["state"] == "recording"


def _runs(results: list[IngestResult]) -> set[str | None]:
    return {r.segment.run_id for r in results if r.segment is not None}


def _namespace(**kw: Any) -> Any:
    import argparse

    return argparse.Namespace(**kw)


def test_camvault_run_records_to_s3_and_sigterm_keeps_open_segment(
    camera: RtspCamera, make_settings: Any, db_url: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    settings = rec.camera_settings(make_settings, camera.url)
    config = rec.write_toml(settings, tmp_path / "camvault.toml")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "camvault"), "-v", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    try:
        rec.wait_for(
            lambda: (
                proc.poll() is not None
                or rec.rows(db_url, "SELECT 1 FROM recordings WHERE camera_id = %s", rec.CAM)
            ),
            90,
            "a recording row from `camvault run`",
        )
        time.sleep(1.5)  # mid-segment
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            out, _ = proc.communicate()
            print(out.decode("utf-8", "replace")[-5000:])
    text = out.decode("utf-8", "replace")
    print("\n".join(ln for ln in text.splitlines() if "botocore" not in ln)[-8000:])
    assert proc.returncode == 0, text[-3000:]
    assert "s3cr3t-pw" not in text  # credentials are masked in every log line
    assert "viewer:***@" in text
    rows = rec.recordings(db_url)
    assert len(rows) >= 2
    for row in rows:  # every segment, including the one SIGTERM cut short, is in S3
        head = s3.head_object(Bucket=bucket, Key=row["s3_key"])
        assert head["ServerSideEncryption"] == "AES256"
        assert head["ContentLength"] == row["size_bytes"]
    assert rows[-1]["duration_seconds"] < 3 + 2.5
    for a, b in itertools.pairwise(rows):
        assert abs((b["start_time"] - a["end_time"]).total_seconds()) <= 1 / rec.FPS
    leftovers = list((settings.spool.dir / "recording").rglob("*.mp4"))
    assert leftovers == []


@pytest.mark.parametrize(
    ("option", "element", "kept"), [("audio", "voaacenc", True), ("pcma", "alawenc", False)]
)
def test_audio_aac_is_copied_other_audio_dropped_and_logged(
    option: str,
    element: str,
    kept: bool,
    make_settings: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    missing = unavailable(element)
    if missing:
        pytest.skip(missing)
    results: list[IngestResult] = []
    with RtspCamera(tmp_path / "rtsp.log", fps=rec.FPS, **{option: True}) as cam:
        settings = rec.camera_settings(make_settings, cam.url)
        with App.open(settings) as app:
            app.register_cameras()
            with app.recorder(on_result=results.append):
                rec.wait_for(lambda: results, 60, "a segment")
            segments = [r.segment for r in results if r.segment is not None]
            assert segments
            with av.open(segments[0].path) as c:
                audio = [s.codec_context.name for s in c.streams.audio]
                video = [s.codec_context.name for s in c.streams.video]
    assert video == ["h264"]
    assert audio == (["aac"] if kept else [])
    dropped = [r.getMessage() for r in caplog.records if "cannot go into MP4" in r.getMessage()]
    assert bool(dropped) is not kept


def test_rtsp_password_is_not_on_ffmpegs_command_line(
    camera: RtspCamera, make_settings: Any, tmp_path: Path
) -> None:
    """Any local user can read /proc/PID/cmdline: ffmpeg gets the URL from a 0600 ffconcat
    script, removed once it has connected. The camera requires the password, so a segment
    proves ffmpeg had it."""
    assert camera.password in camera.url
    settings = rec.camera_settings(make_settings, camera.url)
    results: list[IngestResult] = []
    spool = settings.spool.dir
    with App.open(settings) as app:
        app.register_cameras()
        with app.recorder(on_result=results.append):
            rec.wait_for(lambda: results, 60, "a recorded segment")
            pids = rec.ffmpeg_pids(spool)
            assert pids, "ffmpeg is recording"
            for pid in pids:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                assert b"-i" in cmdline.split(b"\0")
                assert camera.password.encode() not in cmdline
                assert b"rtsp://" not in cmdline
            assert list(spool.rglob("source.ffconcat")) == []  # read, then removed
    assert results[0].ok, results[0].reason


def _scrape(url: str) -> dict[tuple[str, str, str], float]:
    """The recorder's samples on ``/metrics``: (name, camera, node) → value."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, s.labels.get("camera", ""), s.labels.get("node", "")): s.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("camvault_recorder_")
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_recorder_metrics_are_served_on_metrics_labelled_by_node(
    camera: RtspCamera, make_settings: Any
) -> None:
    from camvault.api.server import start_api
    from camvault.recorder import REGISTRY

    settings = make_settings(
        cameras=[{"id": rec.CAM, "name": "Door", "url": camera.url, "segment_seconds": 2}],
        api={"port": 0},
        node="rec-node",
    )
    names = {
        "camvault_recorder_segments_total",
        "camvault_recorder_bytes_total",
        "camvault_recorder_reconnects_total",
        "camvault_recorder_quarantined_total",
        "camvault_recorder_last_segment_end_seconds",
        "camvault_recorder_connected",
    }
    # the registry is per process: earlier tests may have counted this camera already
    before = {n: REGISTRY.get_sample_value(n, {"camera": rec.CAM}) or 0.0 for n in names}
    results: list[IngestResult] = []
    with App.open(settings) as app:
        app.register_cameras()
        server, stop = start_api(app, host="127.0.0.1", port=0)
        try:
            with app.recorder(on_result=results.append):
                rec.wait_for(lambda: len(results) >= 2, 60, "2 recorded segments")
                live = _scrape(server.url)
            after = _scrape(server.url)
        finally:
            stop()
    key = {n: (n, rec.CAM, "rec-node") for n in names}
    assert set(key.values()) <= set(after), sorted(after)  # all six, every one labelled
    assert live[key["camvault_recorder_connected"]] == 1.0
    assert after[key["camvault_recorder_connected"]] == 0.0
    segments = [r.segment for r in results if r.segment is not None]
    assert len(segments) == len(results)
    delta = {n: after[key[n]] - before[n] for n in names if n.endswith("_total")}
    assert delta == {
        "camvault_recorder_segments_total": len(segments),
        "camvault_recorder_bytes_total": sum(s.size_bytes for s in segments),
        "camvault_recorder_reconnects_total": 0.0,
        "camvault_recorder_quarantined_total": 0.0,
    }
    last_end = max(s.end_time for s in segments).timestamp()
    last_gauge = after[key["camvault_recorder_last_segment_end_seconds"]]
    assert last_gauge == pytest.approx(last_end, abs=1e-3)
