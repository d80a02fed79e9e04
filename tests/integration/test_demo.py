"""DemoCamera: a real ffmpeg process writing real segments, handed on only when finished."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from camvault.demo import DemoCamera
from camvault.probe import probe, start_from_filename


def _collect(cam: DemoCamera, want: int, timeout: float) -> list[Path]:
    got: list[Path] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += cam.finished_segments()
        time.sleep(0.1)
    return got


def test_demo_camera_writes_finished_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Seoul")  # ffmpeg must still name files in UTC
    out = tmp_path / "out"
    out.mkdir()
    stale = out / "demo_20200101T000000Z.mp4"  # an earlier run's cut-off segment
    stale.write_bytes(b"\0\0\0\x20ftypisom")
    cam = DemoCamera(out, segment_seconds=2)
    assert cam.leftover_segments() == [stale]  # known before start(), too
    started = datetime.now(UTC)
    cam.start()
    try:
        got = _collect(cam, 2, timeout=8.0)
        assert len(got) >= 2, f"only {len(got)} segments; ffmpeg log: {cam.log_path.read_text()}"
        assert cam.is_running
        for path in got:
            info = probe(path)  # a handed-on segment is complete
            assert info.codec == "h264"
            assert (info.width, info.height) == (640, 360)
            assert info.duration_seconds == pytest.approx(2.0, abs=0.1)
            assert info.frame_count == 30
            stamp = start_from_filename(path.name)
            assert stamp is not None
            assert started - timedelta(seconds=2) <= stamp <= datetime.now(UTC)
        assert got == sorted(got)
    finally:
        cam.stop()
    assert not cam.is_running
    assert cam.returncode == 0
    rest = cam.finished_segments()
    assert rest, "stop() must finalize the segment in progress"
    for path in rest:
        info = probe(path)
        assert info.codec == "h264"
        assert 0 < info.duration_seconds <= 2.1
    assert cam.finished_segments() == []  # nothing is handed on twice
    on_disk = {p.name for p in out.glob("*.mp4")} - {stale.name}
    assert on_disk == {p.name for p in got + rest}  # no unfinished file left behind
    assert stale not in got + rest
    assert cam.leftover_segments() == [stale]


def test_unresponsive_ffmpeg_is_killed_after_grace(tmp_path: Path) -> None:
    cam = DemoCamera(tmp_path / "out", segment_seconds=2)
    cam.start()
    pid = cam.pid
    assert pid is not None
    time.sleep(0.5)
    os.kill(pid, signal.SIGSTOP)  # cannot read 'q' nor handle SIGINT any more
    t0 = time.monotonic()
    cam.stop(grace=1.0)
    assert time.monotonic() - t0 < 5
    assert not cam.is_running
    assert cam.returncode == -signal.SIGKILL


def test_stop_without_start_and_bad_arguments(tmp_path: Path) -> None:
    cam = DemoCamera(tmp_path, segment_seconds=2)
    cam.stop()  # no-op
    assert not cam.is_running
    assert cam.finished_segments() == []
    with pytest.raises(ValueError, match="segment_seconds"):
        DemoCamera(tmp_path, segment_seconds=1)
    with pytest.raises(ValueError, match="prefix"):
        DemoCamera(tmp_path, prefix="../x")
    assert "-strftime" in cam.command()
