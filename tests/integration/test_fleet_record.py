"""``camvault record`` takes the camera's lease like a fleet node: two record processes
configured with the same camera never record it at the same time — the second waits
(and says who holds it), records nothing, and takes over once the first stops.

Real processes, a real RTSP camera (GStreamer), the real PostgreSQL; each process has its
own spool, drained into the catalog at the end to compare what each recorded.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from camvault.app import App
from camvault.fleet.wiring import record_holder
from tests import recording as rec
from tests.rtsp_server import RtspCamera, unavailable

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no RTSP test server: {REASON}")


class Record:
    """``camvault record`` as a subprocess; stdout and stderr lines collected."""

    def __init__(self, config: Path) -> None:
        exe = str(Path(sys.executable).parent / "camvault")
        self.proc = subprocess.Popen(
            [exe, "--config", str(config), "record"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(pipe, lines), daemon=True)
            for pipe, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(pipe: Any, lines: list[str]) -> None:
        for raw in pipe:
            lines.append(raw.decode("utf-8", "replace").rstrip())

    def spooled(self) -> int:
        return sum(1 for ln in self.out if ln.startswith("spooled "))

    def said(self, text: str) -> bool:
        return any(text in ln for ln in self.err)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        for t in self._readers:
            t.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return code


def _settings(make_settings: Any, url: str, tmp: Path, name: str) -> Any:
    return make_settings(
        cameras=[{"id": rec.CAM, "name": "Door", "url": url, "segment_seconds": 2}],
        spool={"dir": str(tmp / name / "spool")},
        data_dir=str(tmp / name),
        recording={"reconnect_base_seconds": 0.5, "reconnect_max_seconds": 1.0},
    )


def test_two_record_processes_never_record_one_camera_at_once(
    make_settings: Any, db_url: str, tmp_path: Path
) -> None:
    with RtspCamera(tmp_path / "rtsp.log", fps=rec.FPS, gop=rec.FPS) as camera:
        sa = _settings(make_settings, camera.url, tmp_path, "a")
        sb = _settings(make_settings, camera.url, tmp_path, "b")
        a = Record(rec.write_toml(sa, tmp_path / "a.toml", segment_seconds=2))
        b: Record | None = None
        try:
            rec.wait_for(lambda: a.spooled() >= 1, 60, "a segment spooled by the first")
            holder = record_holder(sa.node, a.proc.pid)
            held = rec.rows(
                db_url, "SELECT holder FROM camera_leases WHERE camera_id = %s", rec.CAM
            )
            assert [r["holder"] for r in held] == [holder]
            b = Record(rec.write_toml(sb, tmp_path / "b.toml", segment_seconds=2))
            rec.wait_for(
                lambda: b is not None and b.said(f"{rec.CAM} (held by {holder})"),
                60,
                "the second to say who holds the camera",
            )
            before = a.spooled()
            rec.wait_for(lambda: a.spooled() >= before + 2, 60, "the first recording on")
            # the second recorded nothing meanwhile: no segment, no ffmpeg of its own
            assert b.spooled() == 0 and rec.ffmpeg_pids(sb.spool.dir) == []
            assert a.stop() == 0  # finalizes, releases the lease: the second takes over
            rec.wait_for(lambda: b is not None and b.spooled() >= 2, 60, "the second recording")
            assert b.stop() == 0
        finally:
            a.stop()
            if b is not None:
                b.stop()
    keys: dict[str, set[str]] = {}  # what each process recorded: drained one after the other
    for name, settings in (("a", sa), ("b", sb)):
        with App.open(settings) as app:
            rec.drain(app)
        keys[name] = {r["s3_key"] for r in rec.recordings(db_url)} - keys.get("a", set())
    rows = rec.recordings(db_url)  # by start time
    assert keys["a"] and keys["b"]
    # all of the first process's segments, then all of the second's, never overlapping
    assert [r["s3_key"] in keys["a"] for r in rows] == [True] * len(keys["a"]) + [False] * len(
        keys["b"]
    )
    for x, y in itertools.pairwise(rows):
        assert y["start_time"] >= x["end_time"] - timedelta(seconds=1 / rec.FPS)
