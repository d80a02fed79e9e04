"""Latency: a recorded segment closed by ffmpeg → its row listed by the HTTP API.

`camvault run` records N cameras (one GStreamer RTSP test server, shared mount, each
session its own camera) into the spool, uploads to SeaweedFS and commits to PostgreSQL, as
in production. Two observers outside the process:

* *closed*: ffmpeg appends a segment to its run's ``list.csv`` once it has closed the file;
  the bench polls those lists every ``--poll-ms`` (stat + read);
* *queryable*: ``GET /api/cameras/{id}/recordings`` with an admin's bearer token, camera
  after camera in a loop; a row counts from the response that first lists it (so the
  figure is an upper bound, by up to one polling cycle, printed).

The k-th closed segment of a camera is matched with its k-th row (by start time). The
anchor, measured in the same run: a plain boto3 PUT of a segment-sized file to the same
SeaweedFS every few seconds (the "transfer time" of the goal p99 ≤ 1 s + transfer).

    python bench/latency.py [--cameras 8] [--seconds 60] [--segment-seconds 5]

Needs PostgreSQL (CAMVAULT_TEST_DATABASE_URL) and Debian's python3 with GStreamer's RTSP
server (see scripts/test); writes bench/results/latency.json. Exits 1 when nothing was
measured (no segment closed or matched, a server died).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.rtsp_server import RtspCamera, unavailable  # noqa: E402

from _common import create_db, drop_db, scratch_name  # noqa: E402
from camvault.embedded import SeaweedFS, free_port  # noqa: E402

GOAL_OVERHEAD_S = 1.0  # p99 ≤ this + transfer time


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Observer:
    def __init__(self, spool: Path, api: str, token: str, cameras: list[str]) -> None:
        self.spool = spool
        self.api = api
        self.headers = {"Authorization": f"Bearer {token}"}
        self.cameras = cameras
        self.closed: dict[str, list[float]] = {c: [] for c in cameras}
        self.seen: dict[str, list[tuple[str, float]]] = {c: [] for c in cameras}
        self.cycles: list[float] = []
        self.stop = threading.Event()
        self._lines: dict[Path, int] = {}

    def watch_closes(self, poll: float) -> None:
        while not self.stop.wait(poll):
            now = time.monotonic()
            for cam in self.cameras:
                for lst in (self.spool / "recording" / cam).glob("*/list.csv"):
                    try:
                        n = lst.read_text().count("\n")
                    except OSError:
                        continue
                    new = n - self._lines.get(lst, 0)
                    if new > 0:
                        self._lines[lst] = n
                        self.closed[cam] += [now] * new

    def poll_api(self) -> None:
        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        until = (datetime.now(UTC) + timedelta(hours=6)).isoformat()
        with httpx.Client(base_url=self.api, headers=self.headers, timeout=10) as client:
            while not self.stop.is_set():
                t0 = time.monotonic()
                for cam in self.cameras:
                    r = client.get(
                        f"/api/cameras/{cam}/recordings",
                        params={"start": since, "end": until, "limit": 1000},
                    )
                    r.raise_for_status()
                    now = time.monotonic()
                    known = {k for k, _ in self.seen[cam]}
                    for item in r.json()["items"]:
                        if item["s3_key"] not in known:
                            self.seen[cam].append((item["s3_key"], now))
                self.cycles.append(time.monotonic() - t0)


def transfer_anchor(weed: SeaweedFS, size: int, stop: threading.Event) -> list[float]:
    """Plain PUTs of a segment-sized body to the same server, every 3 s."""
    s3 = weed.client()
    body = os.urandom(size)
    out = []
    i = 0
    while not stop.wait(3.0):
        t0 = time.monotonic()
        s3.put_object(Bucket="bench", Key=f"anchor/{i}", Body=body, ServerSideEncryption="AES256")
        out.append(time.monotonic() - t0)
        i += 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--segment-seconds", type=int, default=5)
    ap.add_argument("--mbps", type=float, default=4.0)
    ap.add_argument("--poll-ms", type=float, default=20.0, help="list.csv polling")
    ap.add_argument(
        "--src", help="run the camvault package from this src/ dir (e.g. before a change)"
    )
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    reason = unavailable()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2

    dbname = scratch_name("camvault_bench_lat")
    db_url = create_db(dbname)
    work = Path(tempfile.mkdtemp(prefix="camvault-bench-lat-"))
    cameras = [f"cam-{i:02d}" for i in range(args.cameras)]
    problems: list[str] = []
    proc: subprocess.Popen[bytes] | None = None
    obs: Observer | None = None
    anchor: list[float] = []
    try:
        server = RtspCamera(
            work / "rtsp.log",
            shared=True,
            pattern="smpte",
            size="1280x720",
            fps=25,
            gop=25,
            bitrate=int(args.mbps * 1000),
            cbr=True,
        )
        with SeaweedFS(work / "weed") as weed, server:
            weed.client().create_bucket(Bucket="bench")
            port = free_port()
            config = work / "camvault.toml"
            config.write_text(
                f'data_dir = "{work / "data"}"\n[database]\nurl = "{db_url}"\n'
                f'[s3]\nbucket = "bench"\nendpoint_url = "{weed.endpoint_url}"\n'
                'addressing_style = "path"\n'
                f'[spool]\ndir = "{work / "spool"}"\n'
                f"[recording]\nsegment_seconds = {args.segment_seconds}\n"
                f"[api]\nport = {port}\n"
                + "".join(f'[[cameras]]\nid = "{c}"\nurl = "{server.url}"\n' for c in cameras)
            )
            env = {
                **os.environ,
                "AWS_ACCESS_KEY_ID": weed.access_key,
                "AWS_SECRET_ACCESS_KEY": weed.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1",
                **({"PYTHONPATH": args.src} if args.src else {}),
            }
            cli = [str(Path(sys.executable).parent / "camvault"), "-c", str(config)]
            subprocess.run([*cli, "users", "add", "bench", "--admin"], check=True, env=env)
            token = (
                subprocess.run(
                    [*cli, "tokens", "create", "--user", "bench"],
                    check=True,
                    env=env,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            proc = subprocess.Popen(
                [*cli, "run", "--no-demo"],
                env=env,
                stdout=(work / "run.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            api = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{api}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"camvault run did not come up; see {work / 'run.log'}")
                time.sleep(0.2)
            obs = Observer(work / "spool", api, token, cameras)
            seg_bytes = int(args.mbps * 1e6 / 8 * args.segment_seconds)
            anchor_stop = threading.Event()
            threads = [
                threading.Thread(target=obs.watch_closes, args=(args.poll_ms / 1000,)),
                threading.Thread(target=obs.poll_api),
                threading.Thread(
                    target=lambda: anchor.extend(transfer_anchor(weed, seg_bytes, anchor_stop))
                ),
            ]
            for t in threads:
                t.start()
            print(
                f"recording {args.cameras} cameras for {args.seconds:.0f} s …",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(args.seconds)
            # let the last closed segments arrive before stopping the observers
            time.sleep(min(10.0, 2.0 + args.segment_seconds))
            obs.stop.set()
            anchor_stop.set()
            for t in threads:
                t.join()
            if proc.poll() is not None:
                problems.append(f"camvault run exited early ({proc.returncode})")
            if server._proc is None or server._proc.poll() is not None:
                problems.append("the RTSP server died")
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        drop_db(dbname)
        log_tail = (work / "run.log").read_text()[-3000:] if (work / "run.log").exists() else ""
        shutil.rmtree(work, ignore_errors=True)

    assert obs is not None
    latencies: list[float] = []
    unmatched = 0
    for cam in cameras:
        closes, seen = obs.closed[cam], [t for _, t in obs.seen[cam]]
        # rows listed before the observer saw their close (startup races) are not timed
        n = min(len(closes), len(seen))
        unmatched += abs(len(closes) - len(seen))
        latencies += [s - c for c, s in zip(closes[:n], seen[:n], strict=True)]
    if not latencies:
        problems.append("no segment was both seen closed and listed by the API")
    silent = [c for c in cameras if not obs.closed[c]]
    if silent:
        problems.append(f"{len(silent)} of {len(cameras)} cameras closed no segment")
    negative = [x for x in latencies if x < 0]
    if negative:
        problems.append(f"{len(negative)} rows listed before their segment closed: mismatch")
    cycle = statistics.median(obs.cycles) if obs.cycles else 0.0
    transfer_p99 = _pct(anchor, 99) if anchor else 0.0
    result: dict[str, Any] = {
        "cameras": args.cameras,
        "seconds": args.seconds,
        "segment_seconds": args.segment_seconds,
        "segment_mb": round(args.mbps / 8 * args.segment_seconds, 2),
        "src": args.src or "this checkout",
        "segments_timed": len(latencies),
        "unmatched": unmatched,
        "p50_s": round(_pct(latencies, 50), 3) if latencies else None,
        "p99_s": round(_pct(latencies, 99), 3) if latencies else None,
        "max_s": round(max(latencies), 3) if latencies else None,
        "api_poll_cycle_s": round(cycle, 3),
        "anchor_put_p50_s": round(_pct(anchor, 50), 3) if anchor else None,
        "anchor_put_p99_s": round(transfer_p99, 3),
        "goal_p99_s": round(GOAL_OVERHEAD_S + transfer_p99, 3),
        "load1": round(os.getloadavg()[0], 2),
        "problems": problems,
        "at": datetime.now(UTC).isoformat(),
    }
    result["meets_goal"] = bool(
        not problems and latencies and _pct(latencies, 99) <= result["goal_p99_s"]
    )
    for cam in cameras[:3]:
        print(
            f"  {cam}: closed {len(obs.closed[cam])}, listed {len(obs.seen[cam])}", file=sys.stderr
        )
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")
    out = ROOT / "bench" / "results" / "latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "latencies_s": [round(x, 3) for x in latencies]}))
    print(f"wrote {out}")
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        print(log_tail, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
