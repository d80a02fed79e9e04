"""Helpers shared by the recorder tests (integration and fault tests): waiting, reading the
catalog, reading frame numbers back from segments, draining the spool, a config file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import psycopg
from psycopg.rows import dict_row

from camvault.app import App
from camvault.recorder import launcher
from tests.rtsp_server import frame_number

FPS = 15
CAM = "door-1"


def wait_for(cond: Callable[[], Any], timeout: float, what: str, poll: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def camera_settings(
    make_settings: Any, url: str, segment_seconds: int = 2, **recording: Any
) -> Any:
    return make_settings(
        cameras=[{"id": CAM, "name": "Door", "url": url, "segment_seconds": segment_seconds}],
        recording={"reconnect_base_seconds": 0.5, "reconnect_max_seconds": 1.0, **recording},
    )


def rows(db_url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def recordings(db_url: str) -> list[dict[str, Any]]:
    return rows(db_url, "SELECT * FROM recordings WHERE camera_id = %s ORDER BY start_time", CAM)


def frames(path: Path) -> tuple[list[int], bool]:
    """Frame numbers decoded from a segment, and whether it starts with a keyframe."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        first = next(p for p in c.demux(stream) if p.size)
        starts_key = bool(first.is_keyframe)
    with av.open(str(path)) as c:
        numbers = []
        for frame in c.decode(c.streams.video[0]):
            plane = frame.planes[0]
            row = bytes(plane)[plane.line_size * 10 : plane.line_size * 10 + frame.width]
            numbers.append(frame_number(row, frame.width))
    return numbers, starts_key


def download(s3: Any, bucket: str, key: str, dest: Path) -> Path:
    """Fetch an object after checking it is stored with SSE-S3."""
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    dest.parent.mkdir(parents=True, exist_ok=True)
    s3.download_file(bucket, key, str(dest))
    return dest


def drain(app: App) -> None:
    app.spool.lock_for_upload()
    app.spool.recover()
    app.pipeline().drain(threading.Event())


def write_toml(settings: Any, path: Path, segment_seconds: int = 3) -> Path:
    """A config file for a ``camvault`` subprocess recording ``settings``' first camera."""
    cam = settings.cameras[0]
    path.write_text(
        f"""
data_dir = "{settings.data_dir}"
[database]
url = "{settings.database.url}"
[s3]
bucket = "{settings.s3.bucket}"
endpoint_url = "{settings.s3.endpoint_url}"
addressing_style = "path"
[spool]
dir = "{settings.spool.dir}"
[upload]
poll_seconds = 0.2
[api]
port = 0
[recording]
segment_seconds = {segment_seconds}
reconnect_base_seconds = 0.5
reconnect_max_seconds = 1.0
[[cameras]]
id = "{cam.id}"
name = "Door"
url = "{cam.url}"
"""
    )
    return path


def ffmpeg_pids(under: Path) -> list[int]:
    """Live processes (an ffmpeg, in practice) whose command line writes below ``under``;
    Linux ``/proc`` (a zombie has an empty command line, so it does not count). A fleet
    node's ffmpeg launcher (its argv holds ffmpeg's) is not one."""
    marker = str(under).encode()
    starter = launcher.NAME.encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if starter not in args and any(a.startswith(marker) for a in args[1:]):
            pids.append(int(proc.name))
    return pids
