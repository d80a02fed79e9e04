"""A fleet node (``camvault run`` with ``[node]``) killed with SIGKILL mid-segment keeps
that segment up to its last fragment: its ffmpeg dies with it (PR_SET_PDEATHSIG), every
fragment ffmpeg completed is already on disk (at most ~1 s each), and the restarted node
salvages and archives the partial segment, contiguous with the one before it.

A real RTSP camera (2 s GOP, so the 1 s bound comes from the fragment length, not the GOP),
real PostgreSQL and SeaweedFS; checked frame by frame on what came back from S3.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from camvault.app import App
from tests import recording as rec
from tests.rtsp_server import RtspCamera, unavailable

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no RTSP test server: {REASON}")

SEGMENT = 8  # seconds: long enough to kill well inside the second one
KILL_INTO = 5.0  # seconds into the second segment
FRAGMENT = 1.0  # the longest fragment ffmpeg keeps in memory (frag_duration)


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    exe = str(Path(sys.executable).parent / "camvault")
    with log.open("ab") as out:
        return subprocess.Popen(
            [exe, "-v", "--config", str(config), "run"], stdout=out, stderr=subprocess.STDOUT
        )


def test_killed_node_keeps_its_partial_segment(
    make_settings: Any, db_url: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    with RtspCamera(tmp_path / "rtsp.log", fps=rec.FPS, gop=2 * rec.FPS) as camera:
        settings = rec.camera_settings(make_settings, camera.url, segment_seconds=SEGMENT)
        config = rec.write_toml(settings, tmp_path / "node.toml", segment_seconds=SEGMENT)
        with config.open("a") as f:
            f.write('[node]\nid = "k9"\nlease_seconds = 6\nstop_margin_seconds = 2\n')
        with App.open(settings) as app:
            app.register_cameras()
        node = _start(config, tmp_path / "node-1.log")
        try:
            first = rec.wait_for(lambda: rec.recordings(db_url), 90, "the first segment committed")[
                0
            ]
            # the second segment started where the first ended: kill the node inside it
            kill_at = first["end_time"] + timedelta(seconds=KILL_INTO)
            time.sleep(max(0.0, (kill_at - datetime.now(UTC)).total_seconds()))
            assert len(rec.recordings(db_url)) == 1  # precondition: the second is still open
            node.kill()
            killed_at = datetime.now(UTC)
        finally:
            node.kill()
            node.wait()
        rec.wait_for(
            lambda: rec.ffmpeg_pids(settings.spool.dir) == [], 30, "ffmpeg to end with its node"
        )
        node = _start(config, tmp_path / "node-2.log")
        try:

            def salvaged() -> list[dict[str, Any]]:
                return [
                    r
                    for r in rec.recordings(db_url)
                    if r["run_id"] == first["run_id"] and r["start_time"] >= first["end_time"]
                ]

            (partial,) = rec.wait_for(salvaged, 90, "the killed run's partial segment archived")
        finally:
            node.send_signal(signal.SIGTERM)
            assert node.wait(90) == 0
    # contiguous with the segment before it, and it reaches to within a fragment of the kill
    # (within a frame: the timeline may slew a placement by a fraction of one)
    assert abs(partial["start_time"] - first["end_time"]) <= timedelta(seconds=1 / rec.FPS)
    assert partial["node_id"] == "k9"
    lost = (killed_at - partial["end_time"]).total_seconds()
    assert -0.5 <= lost <= FRAGMENT + 0.5, (lost, partial["duration_seconds"])
    # frame by frame from S3: not a frame lost or doubled between the two
    numbers = []
    for row in (first, partial):
        path = rec.download(s3, bucket, row["s3_key"], tmp_path / "back" / f"{row['id']}.mp4")
        frames, starts_key = rec.frames(path)
        assert starts_key
        assert frames == list(range(frames[0], frames[0] + len(frames)))
        assert row["duration_seconds"] == pytest.approx(len(frames) / rec.FPS, abs=1.01 / rec.FPS)
        numbers.append(frames)
    assert numbers[1][0] == numbers[0][-1] + 1
