"""A fleet on one machine: PostgreSQL, SeaweedFS, one RTSP camera server feeding 6 camera
entries, and 3 real ``camvault run`` node processes sharing them by leases (6 s leases,
2 s segments). Faults are real: ``kill -9`` of a node, PostgreSQL cut off from one node
by the TCP fault proxy.

Asserted from the catalog and the bucket: every camera held by exactly one node; a killed
node's cameras recorded elsewhere within the lease time + 10 s, with one bounded gap at
the kill; the restarted node's salvaged segments archived; every orderly hand-off (the
rejoin, the cut-off node's return) leaves a gap of at most 3 s between the old holder's
last segment and the new holder's first (issue 11's bound, from the catalog rows); no
overlapping segments of any camera, ever (also across the PostgreSQL cut); every row
names its node; nothing left in any spool. The measured failover, every change of node
with its gap and kind, and the overlap count are printed (run with ``-s``) and written to
``<tmp>/fleet_report.json``.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from camvault.app import App
from camvault.cli import main as cli
from camvault.config import load_settings
from camvault.models import SegmentState
from tests import recording as rec
from tests.faults import fleet_gaps as gaps
from tests.faults.proxy import FaultProxy
from tests.rtsp_server import RtspCamera, unavailable

REASON = unavailable()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(REASON is not None, reason=f"no RTSP test server: {REASON}"),
]

TTL, MARGIN, SEGMENT = 6, 2, 2
CAMERAS = [f"cam-{i}" for i in range(6)]
TOLERANCE = timedelta(seconds=1 / rec.FPS)  # segment times are exact to a frame
HANDOFF_GAP = 3.0  # seconds: issue 11's bound for an orderly hand-off (not a timing guess)


class NodeProc:
    """``camvault run`` as a subprocess; its stdout lines collected as they come."""

    def __init__(self, name: str, config: Path, log_dir: Path) -> None:
        self.name, self.config, self.log_dir = name, config, log_dir
        self.lines: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.terminated = False

    def start(self) -> NodeProc:
        self.starts += 1
        self.terminated = False
        err = (self.log_dir / f"{self.name}-{self.starts}.log").open("ab")
        exe = str(Path(sys.executable).parent / "camvault")
        self.proc = subprocess.Popen(
            [exe, "-v", "--config", str(self.config), "run"], stdout=subprocess.PIPE, stderr=err
        )
        err.close()
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        return self

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip())
        proc.stdout.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def terminate(self) -> None:
        """SIGTERM once (a second one is "stop now", without finalizing)."""
        if self.proc is not None and self.proc.poll() is None and not self.terminated:
            self.terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        assert self.proc is not None
        self.terminate()
        try:
            return self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def _toml(settings: Any, node: str, db_url: str, tmp: Path) -> Path:
    path = tmp / f"{node}.toml"
    path.write_text(
        f"""
data_dir = "{tmp / node}"
[database]
url = "{db_url}"
connect_timeout_seconds = 1
statement_timeout_ms = 2000
[s3]
bucket = "{settings.s3.bucket}"
endpoint_url = "{settings.s3.endpoint_url}"
addressing_style = "path"
[spool]
dir = "{tmp / node / "spool"}"
[upload]
poll_seconds = 0.2
backoff_base_seconds = 0.1
backoff_max_seconds = 0.5
redrive_base_seconds = 1
redrive_max_seconds = 2
[api]
port = 0
[recording]
segment_seconds = {SEGMENT}
reconnect_base_seconds = 0.5
reconnect_max_seconds = 1.0
[node]
id = "{node}"
lease_seconds = {TTL}
stop_margin_seconds = {MARGIN}
"""
    )
    return path


def _holders(db_url: str) -> dict[str, str | None]:
    rows = rec.rows(
        db_url,
        "SELECT camera_id, CASE WHEN expires_at > now() THEN holder END AS holder"
        " FROM camera_leases ORDER BY camera_id",
    )
    return {r["camera_id"]: r["holder"] for r in rows}


def _balanced(db_url: str, nodes: set[str]) -> bool:
    h = _holders(db_url)
    counts = {n: list(h.values()).count(n) for n in nodes}
    return (
        sorted(h) == CAMERAS
        and all(v in nodes for v in h.values())
        and max(counts.values()) - min(counts.values()) <= 1
    )


def _settled(db_url: str) -> bool:
    """Every camera's lease holder has committed a segment of it since taking it (the
    hand-offs of the start are over, not just decided)."""
    return not rec.rows(
        db_url,
        "SELECT l.camera_id FROM camera_leases l WHERE NOT EXISTS ("
        " SELECT 1 FROM recordings r WHERE r.camera_id = l.camera_id"
        " AND r.node_id = l.holder AND r.end_time > l.acquired_at)",
    )


def _recordings(db_url: str) -> list[dict[str, Any]]:
    return rec.rows(db_url, "SELECT * FROM recordings ORDER BY camera_id, start_time")


def _recorded_by(db_url: str, camera: str, since: datetime, not_node: str) -> bool:
    return bool(
        rec.rows(
            db_url,
            "SELECT 1 FROM recordings WHERE camera_id = %s AND start_time > %s AND node_id <> %s",
            camera,
            since,
            not_node,
        )
    )


def test_fleet_failover_handoff_and_cut_off_node(
    make_settings: Any,
    db_url: str,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings()
    report: dict[str, Any] = {}
    with (
        RtspCamera(tmp_path / "rtsp.log", fps=rec.FPS, gop=rec.FPS, shared=True) as camera,
        FaultProxy(_pg_address(db_url)) as proxy,
    ):
        proxied = _through(db_url, proxy.port)
        configs = {
            "n1": _toml(settings, "n1", db_url, tmp_path),
            "n2": _toml(settings, "n2", db_url, tmp_path),
            "n3": _toml(settings, "n3", proxied, tmp_path),
        }
        assert cli(["-c", str(configs["n1"]), "db", "migrate"]) == 0
        for cam in CAMERAS:
            args = ["cameras", "add", cam, "--url", camera.url, "--segment-seconds", str(SEGMENT)]
            assert cli(["-c", str(configs["n1"]), *args]) == 0
        nodes = {n: NodeProc(n, c, tmp_path) for n, c in configs.items()}
        try:
            for n in nodes.values():
                n.start()
            # 1. every camera held by exactly one node, balanced, all recording
            rec.wait_for(lambda: _balanced(db_url, set(nodes)), 90, "a balanced fleet", poll=0.5)
            rec.wait_for(
                lambda: _balanced(db_url, set(nodes)) and _settled(db_url),
                90,
                "a recording of every camera by its holder",
                poll=0.5,
            )
            holders = _holders(db_url)
            assert max(list(holders.values()).count(n) for n in nodes) <= math.ceil(6 / 3) + 1
            _check_visibility(nodes["n2"], configs["n2"], holders, capsys, db_url)

            # 2. kill -9 a node: its cameras move within the lease time + 10 s
            victim = "n1"
            moved = sorted(c for c, h in holders.items() if h == victim)
            killed_at = datetime.now(UTC)
            nodes[victim].kill()
            for cam in moved:
                rec.wait_for(
                    lambda cam=cam: _recorded_by(db_url, cam, killed_at, victim),
                    TTL + 60,
                    f"{cam} recorded by another node",
                    poll=0.5,
                )
            firsts = {
                cam: rec.rows(
                    db_url,
                    "SELECT min(start_time) AS t FROM recordings"
                    " WHERE camera_id = %s AND start_time > %s AND node_id <> %s",
                    cam,
                    killed_at,
                    victim,
                )[0]["t"]
                for cam in moved
            }
            failover = {c: (t - killed_at).total_seconds() for c, t in firsts.items()}
            report["failover_seconds"] = failover
            assert all(s <= TTL + 10 for s in failover.values()), failover

            # 3. restart it: its salvaged segments are archived, cameras rebalance
            rejoined_at = datetime.now(UTC)
            nodes[victim].start()
            rec.wait_for(lambda: _balanced(db_url, set(nodes)), 90, "rebalanced", poll=0.5)
            rec.wait_for(
                lambda: _recorded_by_node(db_url, victim, rejoined_at),
                60,
                "the restarted node recording",
                poll=0.5,
            )

            # 4. cut one node off from PostgreSQL only: it stops before others start
            holders = _holders(db_url)
            cut_node = "n3"
            cut_cams = sorted(c for c, h in holders.items() if h == cut_node)
            assert cut_cams
            cut_at = datetime.now(UTC)
            proxy.mode = "refuse"
            proxy.cut_all()
            for cam in cut_cams:
                rec.wait_for(
                    lambda cam=cam: _recorded_by(db_url, cam, cut_at, cut_node),
                    TTL + 60,
                    f"{cam} recorded elsewhere after the cut",
                    poll=0.5,
                )
            out = "\n".join(nodes[cut_node].lines)
            assert "cannot reach PostgreSQL" in out
            assert all(f"stopping camera {c}" in out for c in cut_cams), out
            proxy.mode = "pass"  # back: it catches up and takes its share again
            # what it recorded until it stopped (spooled while cut off) reaches the catalog
            rec.wait_for(
                lambda: _recorded_by_node(db_url, cut_node, cut_at),
                60,
                "the cut-off node's spooled segments committed",
                poll=0.5,
            )
            rec.wait_for(lambda: _balanced(db_url, set(nodes)), 90, "rebalanced after cut")
            time.sleep(3)
        finally:
            stop_at = datetime.now(UTC)
            for p in nodes.values():  # all at once: a node stopping later would pick up
                p.terminate()  # the cameras of one stopping sooner (no hand-off, that)
            codes = {n: p.stop() for n, p in nodes.items() if p.proc is not None}
            for n, p in nodes.items():
                (tmp_path / f"{n}.stdout").write_text("\n".join(p.lines))
        assert codes == {"n1": 0, "n2": 0, "n3": 0}, codes

    # whatever a node had not uploaded at shutdown: drain its spool (nothing may be lost)
    left = {}
    for name, config in configs.items():  # (directly: the proxy in front of n3 is gone)
        direct = load_settings(config, environ={}, overrides={"database": {"url": db_url}})
        with App.open(direct) as app:
            left[name] = app.spool.stats()["pending"]
            rec.drain(app)
            held = [(g.s3_key, g.last_error) for g in app.spool.segments(SegmentState.CONFLICT)]
            assert app.spool.stats()["pending"] == 0, (app.spool.stats()["by_state"], held)
    rows = _recordings(db_url)
    assert {r["node_id"] for r in rows} == {"n1", "n2", "n3"}
    # the killed node's last segments (its ffmpeg finalized them as it died) were salvaged
    # and archived by the restarted node: recorded before the kill, committed after
    salvaged = [
        r for r in rows
        if r["node_id"] == victim and r["start_time"] < killed_at < r["created_at"]
        and r["created_at"] > rejoined_at and r["camera_id"] in moved
    ]  # fmt: skip
    # the killed node's ffmpeg got one SIGINT (recorder.launcher) and finished its segment,
    # so its footage of every camera it held reaches the kill: the partial segment it was
    # writing was salvaged and archived (tests/faults/test_node_kill9.py in detail).
    # Measured -0.51 to 0.28 s in 5 runs (before the launcher 0.89 and 0.98 s: the last
    # fragment lost); the margin is for the timeline trailing the wall clock under load
    reach = {
        cam: max(
            r["end_time"]
            for r in rows
            if r["camera_id"] == cam and r["node_id"] == victim and r["start_time"] < killed_at
        )
        for cam in moved
    }
    lost = {c: round((killed_at - t).total_seconds(), 3) for c, t in reach.items()}
    report["killed_node_footage_lost_seconds"] = lost
    assert all(s <= 0.75 for s in lost.values()), lost
    # and nothing the killed node left behind is ignored: each file was either archived
    # (above) or quarantined with a reason
    leftovers = [
        p
        for p in (tmp_path / victim / "spool" / "recording").rglob("seg_*.mp4")
        if p.stat().st_size > 0
    ]
    assert leftovers == [], leftovers
    (tmp_path / "salvaged.txt").write_text(f"{len(salvaged)} salvaged segment(s)\n")
    keys = sorted(o["Key"] for o in _list_all(s3, bucket))
    assert keys == sorted(r["s3_key"] for r in rows)  # one object per row, nothing orphaned

    overlapping = gaps.overlaps(rows, TOLERANCE)
    released = [r for log in tmp_path.glob("n*-*.log") for r in gaps.releases(log.read_text())]
    kill_gaps, cut_gaps, passes = {}, {}, []
    for p in gaps.passes(rows):
        if (
            p.camera in moved
            and p.before == victim
            and p.start >= killed_at
            and p.end <= killed_at + timedelta(seconds=5)
        ):
            kill_gaps[p.camera] = p.gap
            passes.append(p.report("kill -9"))
        elif (
            p.camera in cut_cams
            and p.before == cut_node
            and cut_at - timedelta(seconds=SEGMENT) <= p.end <= cut_at + timedelta(seconds=TTL + 5)
        ):
            cut_gaps[p.camera] = p.gap
            passes.append(p.report("cut off from PostgreSQL"))
        elif gaps.is_handoff(p, released):
            passes.append(p.report("hand-off"))
        else:  # e.g. picked up after a release at shutdown, or a lease lost under load
            passes.append(p.report("after shutdown" if p.start >= stop_at else "other"))
    handoffs = [p["gap_seconds"] for p in passes if p["kind"] == "hand-off"]
    report.update(
        left_in_spool_at_stop=left,
        salvaged_segments=len(salvaged),
        overlaps=len(overlapping),
        kill_gaps_seconds=kill_gaps,
        cut_off_gaps_seconds=cut_gaps,
        handoff_gaps_seconds=sorted(handoffs),
        passes=passes,
        rows=len(rows),
    )
    (tmp_path / "fleet_report.json").write_text(json.dumps(report, indent=2, default=str))
    print("\nfleet report:", json.dumps(report, indent=2, default=str))
    assert overlapping == [], overlapping
    # each moved camera: exactly one gap at the kill, bounded by the lease time + 10 s
    assert sorted(kill_gaps) == moved, (kill_gaps, moved)
    assert all(0 <= g <= TTL + 10 for g in kill_gaps.values()), kill_gaps
    assert handoffs, "the rejoin and the cut-off node's return must have handed cameras over"
    # issue 11's acceptance bound, measured from the catalog rows: the old holder's last
    # frame to the new holder's first, for every orderly hand-off
    assert max(handoffs) <= HANDOFF_GAP, [p for p in passes if p["kind"] == "hand-off"]
    # and the new holder starts where the old one's last segment ended, never before (the
    # lease hands on that end: the two recorders' clocks place runs up to ~1 s apart, and
    # keys name segments by start second)
    assert min(handoffs) >= 0, [p for p in passes if p["kind"] == "hand-off"]


def _check_visibility(
    node: NodeProc, config: Path, holders: dict[str, str | None], capsys: Any, db_url: str
) -> None:
    """``camvault nodes --json``, ``camvault status --json`` and the node's /metrics agree
    with the lease table."""
    capsys.readouterr()
    assert cli(["-c", str(config), "nodes", "--json"]) == 0
    listed = {n["node_id"]: n["cameras"] for n in json.loads(capsys.readouterr().out)}
    assert {c: n for n, cams in listed.items() for c in cams} == holders
    assert cli(["-c", str(config), "status", "--json"]) == 0
    leases = json.loads(capsys.readouterr().out)["leases"]
    assert {r["camera_id"]: r["holder"] for r in leases if r["live"]} == holders
    url = next(
        re.search(r"(http://\S+?)/ ", ln).group(1)  # type: ignore[union-attr]
        for ln in node.lines
        if ln.startswith("API and web UI on ")
    )

    def metrics_agree() -> bool:  # a hand-off may be under way: wait for a settled state
        mine = [c for c, n in _holders(db_url).items() if n == node.name]
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        return f'camvault_leases_held{{node="{node.name}"}} {float(len(mine))}' in text and all(
            f'camvault_recorder_connected{{camera="{cam}",node="{node.name}"}} 1.0' in text
            for cam in mine
        )

    rec.wait_for(metrics_agree, 60, "the node's /metrics to show its leases and cameras")


def _recorded_by_node(db_url: str, node: str, since: datetime) -> bool:
    return bool(
        rec.rows(
            db_url, "SELECT 1 FROM recordings WHERE node_id = %s AND start_time > %s", node, since
        )
    )


def _list_all(s3: Any, bucket: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out += page.get("Contents", [])
    return out


def _pg_address(db_url: str) -> tuple[str, int]:
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(db_url)
    host = str(info.get("host") or "")
    if not host or host.startswith("/"):
        pytest.skip("PostgreSQL is reached by Unix socket here; the TCP proxy cannot cut it")
    return host, int(info.get("port") or 5432)


def _through(db_url: str, port: int) -> str:
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(db_url)
    info.update(host="127.0.0.1", port=str(port))
    return str(psycopg.conninfo.make_conninfo(**info))  # type: ignore[arg-type]
