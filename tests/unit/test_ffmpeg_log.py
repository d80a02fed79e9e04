"""ffmpeg's stderr goes to ``ffmpeg.log`` in its run directory (a pipe would die with a
killed recorder, and ffmpeg with it before it wrote its last fragment): read back line by
line, redacted, kept small, and removed with the run. The run's ffmpeg is a stand-in
script here, so that what it writes, and where to, is known."""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from camvault.recorder import CameraRecorder, CameraSource
from camvault.recorder.ffmpeg_log import LOG_FILE, LogTail, open_for_ffmpeg

URL = "rtsp://viewer:s3cr%40t@127.0.0.1:9/cam"
FAKE_FFMPEG = """#!/bin/sh
# where ffmpeg's stderr goes: a file of its own (a pipe would end the test: exit 3)
[ -p /dev/stderr ] && exit 3
echo "stderr is a file of mode $(stat -L -c %a /dev/stderr)" >&2
echo "[in#0 @ 0x5] Error opening input $URL: Connection refused" >&2
printf 'Error opening input files: %s' "$URL" >&2
exit 1
"""


def test_lines_come_whole_and_the_last_one_at_the_end(tmp_path: Path) -> None:
    lines: list[str] = []
    fd = open_for_ffmpeg(tmp_path)
    assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
    tail = LogTail(tmp_path / LOG_FILE, lines.append)
    tail.read()  # nothing yet
    os.write(fd, b"one\r\n\ntw")
    tail.read()
    assert lines == ["one"]  # the blank line dropped, the half one held back
    os.write(fd, b"o\nthree")
    tail.read()
    assert lines == ["one", "two"]
    tail.read(final=True)  # ffmpeg is gone: its unterminated last line counts
    assert lines == ["one", "two", "three"]
    os.close(fd)
    (tmp_path / LOG_FILE).unlink()
    tail.read(final=True)  # no file (removed with its run): nothing, no error
    assert lines == ["one", "two", "three"]


def test_log_is_emptied_once_read_past_its_bound(tmp_path: Path) -> None:
    lines: list[str] = []
    fd = open_for_ffmpeg(tmp_path)
    path = tmp_path / LOG_FILE
    tail = LogTail(path, lines.append, max_bytes=1000)
    for i in range(50):
        os.write(fd, f"warning {i:03d} ".encode() + b"x" * 100 + b"\n")
        tail.read()
        assert path.stat().st_size < 1000 + 120  # never much more than the bound
    assert [line[:11] for line in lines] == [f"warning {i:03d}" for i in range(50)]
    os.close(fd)


def test_ffmpeg_failure_is_read_from_its_log_redacted_and_the_log_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ffmpeg = tmp_path / "ffmpeg"
    ffmpeg.write_text(FAKE_FFMPEG.replace("$URL", URL))
    ffmpeg.chmod(0o700)
    cam = CameraRecorder(
        CameraSource("cam1", URL),
        lambda *a, **k: pytest.fail("nothing was recorded"),
        work_dir=tmp_path / "recording",
        ffmpeg=str(ffmpeg),
        probe_stream=lambda url, timeout: ("h264", []),
        poll_seconds=0.05,
        die_with_parent=True,
    )
    cam.dir.mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="camvault.recorder"):
        run, reason = cam._run_once(threading.Event())
    said = [r.getMessage() for r in caplog.records if "ffmpeg: " in r.getMessage()]
    assert said[0] == "camera cam1: ffmpeg: stderr is a file of mode 600", said
    assert len(said) == 3
    # the run ends for ffmpeg's last word, its unterminated last line
    assert reason == "Error opening input files: rtsp://viewer:***@127.0.0.1:9/cam"
    assert "s3cr" not in caplog.text and "s3cr" not in reason
    assert run is not None and not run.dir.exists()  # the log went with its run
    assert list(cam.dir.iterdir()) == []
