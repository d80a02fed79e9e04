"""Recorder CPU per camera: N simulated 4 Mbit/s cameras recorded for a fixed time.

One GStreamer RTSP server (``tests/rtsp_server.py``, shared mount: one encoder, N client
sessions) serves a constant-bitrate H.264 stream (CBR with filler NAL units, so every
camera really sends ``--mbps``). camvault records each session as its own camera — one
ffmpeg per camera, stream copy, RTSP over TCP — and spools every finished segment through
the real ``Ingestor`` (probe + hash + journal). Measured: CPU seconds of the ffmpeg
processes plus this (camvault) process over the recording window, peak memory (sum of the
ffmpeg RSS + ours), the bitrate actually recorded. Reported: CPU % of one core per camera,
normalized to 4 Mbit/s, and the cameras a 2-core node could take at 100 % / 70 % load.

    python bench/recorder_cpu.py [--cameras 20] [--seconds 60] [--segment-seconds 30]

Needs Debian's python3 with GStreamer's RTSP server (see scripts/test); writes
bench/results/recorder_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import imageio_ffmpeg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.rtsp_server import RtspCamera, unavailable  # noqa: E402

from camvault.ingest import Ingestor, IngestResult  # noqa: E402
from camvault.recorder import CameraRecorder, CameraSource, Recorder  # noqa: E402
from camvault.retry import RetryPolicy  # noqa: E402
from camvault.spool import Spool  # noqa: E402

GOAL_PCT = 0.5  # % of one core per 4 Mbit/s camera


def _ffmpeg_pids() -> list[int]:
    me = str(os.getpid())
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = stat[stat.rindex(")") + 2 :].split()[1]
        if ppid == me and comm.startswith("ffmpeg"):
            pids.append(int(entry.name))
    return pids


def _rss_kb(pid: int | str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds() -> tuple[float, float]:
    """(camvault process, waited-for children = the ffmpegs) CPU seconds."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="camvault-bench-rec-"))
    kbps = int(args.mbps * 1000)
    server = RtspCamera(
        work / "rtsp.log",
        shared=True,
        pattern="smpte",
        size=args.size,
        fps=args.fps,
        gop=args.fps * 2,
        bitrate=kbps,
        cbr=True,
    )
    server.start()
    spool = Spool(work / "spool")
    ingestor = Ingestor(spool, lambda cam: True, prefix="", future_tolerance=timedelta(hours=1))
    results: list[IngestResult] = []
    lock = threading.Lock()

    def on_result(r: IngestResult) -> None:
        with lock:
            results.append(r)

    cams = [
        CameraRecorder(
            CameraSource(f"cam-{i:03d}", server.url, args.segment_seconds),
            ingestor.ingest,
            work_dir=work / "spool" / "recording",
            ffmpeg=imageio_ffmpeg.get_ffmpeg_exe(),
            backoff=RetryPolicy(base_seconds=0.5, cap_seconds=2.0),
            on_result=on_result,
        )
        for i in range(args.cameras)
    ]
    recorder = Recorder(cams, stagger_seconds=args.stagger)
    peak_kb = 0
    stop_sampling = threading.Event()

    def sample() -> None:
        nonlocal peak_kb
        while not stop_sampling.wait(1.0):
            total = _rss_kb("self") + sum(_rss_kb(p) for p in _ffmpeg_pids())
            peak_kb = max(peak_kb, total)

    sampler = threading.Thread(target=sample, daemon=True)
    cpu0, t0 = _cpu_seconds(), time.monotonic()
    sampler.start()
    recorder.start()  # one camera after the other: GStreamer's shared media dislikes bursts
    time.sleep(max(0.0, args.seconds - args.stagger * len(cams)))
    recorder.stop()
    wall = time.monotonic() - t0
    cpu1 = _cpu_seconds()
    cpu_self, cpu_ffmpeg = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    cpu = cpu_self + cpu_ffmpeg
    stop_sampling.set()
    sampler.join()
    server.stop()
    spool.close()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)

    ok = [r.segment for r in results if r.segment is not None]
    recorded_bytes = sum(s.size_bytes for s in ok)
    recorded_seconds = sum(s.duration_seconds for s in ok)
    mbps = recorded_bytes * 8 / recorded_seconds / 1e6 if recorded_seconds else 0.0
    pct_per_cam = 100.0 * cpu / wall / args.cameras
    pct_per_4mbps = pct_per_cam * (4.0 / mbps) if mbps else 0.0
    return {
        "cameras": args.cameras,
        "seconds": round(wall, 1),
        "segment_seconds": args.segment_seconds,
        "size": args.size,
        "fps": args.fps,
        "segments": len(ok),
        "quarantined": len(results) - len(ok),
        "recorded_seconds_per_camera": round(recorded_seconds / args.cameras, 1),
        "recorded_mbps_per_camera": round(mbps, 2),
        "cpu_seconds": round(cpu, 2),
        "cpu_seconds_ffmpeg": round(cpu_ffmpeg, 2),
        "cpu_seconds_camvault": round(cpu_self, 2),
        "cpu_pct_per_camera": round(pct_per_cam, 3),
        "cpu_pct_per_4mbps_camera": round(pct_per_4mbps, 3),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "peak_rss_mb_per_camera": round(peak_kb / 1024 / args.cameras, 1),
        "cameras_per_2_core_node_at_100pct": int(200 / pct_per_4mbps) if pct_per_4mbps else 0,
        "cameras_per_2_core_node_at_70pct": int(140 / pct_per_4mbps) if pct_per_4mbps else 0,
        "goal_pct_per_camera": GOAL_PCT,
        "meets_goal": pct_per_4mbps <= GOAL_PCT,
        "work_dir": str(work),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cameras", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--segment-seconds", type=int, default=30)
    p.add_argument("--mbps", type=float, default=4.0)
    p.add_argument("--size", default="1280x720")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--stagger", type=float, default=0.5, help="seconds between camera starts")
    p.add_argument("--keep", action="store_true", help="keep the recorded files")
    args = p.parse_args()
    reason = unavailable()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    result = run(args)
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    out = ROOT / "bench" / "results" / "recorder_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
