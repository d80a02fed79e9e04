"""Recorder CPU and memory per camera: N simulated 4 Mbit/s cameras recorded at once.

One GStreamer RTSP server (``tests/rtsp_server.py``, shared mount: one encoder, N client
sessions) serves a constant-bitrate H.264 stream (CBR with filler NAL units, so every
camera really sends ``--mbps``). camvault records each session as its own camera — one
ffmpeg per camera, stream copy, RTSP over TCP — and spools every finished segment through
the real ``Ingestor`` (probe + hash + journal). Measured per phase: CPU seconds of the
ffmpegs plus this (camvault) process, memory as **PSS** (``/proc/PID/smaps_rollup``: a page
shared by k processes counts 1/k — the ffmpegs share one binary, which RSS counts N times;
RSS is printed beside it), the bitrate actually recorded. Reported: CPU % of one core per
camera normalized to 4 Mbit/s, PSS MB per camera (median over the steady state).

Phases compare ffmpeg set-ups (``--variants``, default ``before,tuned``: ffmpeg's defaults
vs camvault's ``recorder.command.INPUT_OPTIONS`` + ``FFMPEG_ENV``; also ``threads1``, ``probe``,
``arena1`` to measure one change each, and ``unflushed``: camvault's set-up but each MP4
fragment one GOP long and left in ffmpeg's I/O buffer), in ABBA order on one server.

A phase in which the RTSP server died, nothing (or a camera nothing) was recorded, or
fewer ffmpegs than cameras ran is a FAILURE: the bench prints it, writes
``meets_goal: false`` and exits 1 — it never reports a goal met on no data.

    python bench/recorder_cpu.py [--cameras 20] [--seconds 60] [--variants before,tuned]

Needs Debian's python3 with GStreamer's RTSP server (see scripts/test); writes
bench/results/recorder_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import imageio_ffmpeg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.rtsp_server import RtspCamera, unavailable  # noqa: E402

import camvault.recorder.command as command_mod  # noqa: E402
from camvault.ingest import Ingestor, IngestResult  # noqa: E402
from camvault.recorder import CameraRecorder, CameraSource, Recorder  # noqa: E402
from camvault.retry import RetryPolicy  # noqa: E402
from camvault.spool import Spool  # noqa: E402

GOAL_PCT = 0.5  # % of one core per 4 Mbit/s camera
GOAL_PSS_MB = 20.0  # memory per camera, shared pages counted once
# (ffmpeg input options, environment, segment MP4 options) per variant; "tuned" is what
# camvault runs (recorder.command.INPUT_OPTIONS / FFMPEG_ENV / MP4_OPTIONS)
_MP4 = command_mod.MP4_OPTIONS
# before each fragment was flushed as it completed (and fragments were one GOP long)
_MP4_UNFLUSHED = "movflags=+frag_keyframe+empty_moov+default_base_moof"
VARIANTS: dict[str, tuple[tuple[str, ...], dict[str, str], str]] = {
    "before": ((), {}, _MP4),
    "threads1": (("-threads", "1"), {}, _MP4),
    "probe": (("-probesize", "1000000", "-analyzeduration", "2000000"), {}, _MP4),
    "arena1": ((), {"MALLOC_ARENA_MAX": "1"}, _MP4),
    "unflushed": (command_mod.INPUT_OPTIONS, command_mod.FFMPEG_ENV, _MP4_UNFLUSHED),
    "tuned": (command_mod.INPUT_OPTIONS, command_mod.FFMPEG_ENV, _MP4),
}


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


def _mem_kb(pid: int | str) -> tuple[int, int]:
    """(RSS, PSS) in kB. PSS counts a page shared by k processes as 1/k to each — the 20
    ffmpegs share one binary and its libraries, which RSS counts 20 times."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def _cpu_seconds() -> tuple[float, float]:
    """(camvault process, waited-for children = the ffmpegs) CPU seconds."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _proc_cpu(pid: int | str) -> float | None:
    """CPU seconds (user + system) of one process so far, from /proc; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _steady(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots by the processes alive at both."""
    return sum(after[p] - before[p] for p in before if p in after)


def _alive(server: RtspCamera) -> bool:
    proc = server._proc
    return proc is not None and proc.poll() is None


def run_phase(
    server: RtspCamera, work: Path, args: argparse.Namespace, variant: str
) -> dict[str, Any]:
    """Record ``args.cameras`` cameras for ``args.seconds`` with ffmpeg input options
    ``VARIANTS[variant]``; a result with ``problems`` measured nothing trustworthy."""
    command_mod.INPUT_OPTIONS, command_mod.FFMPEG_ENV, command_mod.MP4_OPTIONS = VARIANTS[variant]
    phase_dir = work / variant / str(time.monotonic_ns())
    spool = Spool(phase_dir / "spool")
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
            work_dir=phase_dir / "spool" / "recording",
            ffmpeg=imageio_ffmpeg.get_ffmpeg_exe(),
            backoff=RetryPolicy(base_seconds=0.5, cap_seconds=2.0),
            on_result=on_result,
        )
        for i in range(args.cameras)
    ]
    recorder = Recorder(cams, stagger_seconds=args.stagger)
    samples: list[tuple[int, int, int, int, int]] = []  # rss, pss, ffmpeg pss, self pss, n
    stop_sampling = threading.Event()
    started_all = time.monotonic() + args.stagger * len(cams) + 3.0
    # Steady state: CPU between the first sample with every camera connected and the last
    # one, per process from /proc — ffmpeg's start-up (it decodes ~5 s of stream to probe
    # it) and this sampler's own /proc reading (its thread CPU) are left out.
    steady: dict[str, Any] = {}

    def snapshot() -> tuple[float, dict[int, float], float, float]:
        kids = {p: c for p in _ffmpeg_pids() if (c := _proc_cpu(p)) is not None}
        return time.monotonic(), kids, _proc_cpu("self") or 0.0, time.thread_time()

    def sample() -> None:
        while not stop_sampling.wait(1.0):
            if time.monotonic() < started_all:
                continue  # steady state only: every camera connected
            steady.setdefault("first", snapshot())
            steady["last"] = snapshot()
            pids = _ffmpeg_pids()
            me = _mem_kb("self")
            kids = [_mem_kb(p) for p in pids]
            samples.append(
                (
                    me[0] + sum(k[0] for k in kids),
                    me[1] + sum(k[1] for k in kids),
                    sum(k[1] for k in kids),
                    me[1],
                    len(pids),
                )
            )

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
    spool.close()
    if not args.keep:
        shutil.rmtree(phase_dir, ignore_errors=True)

    ok = [r.segment for r in results if r.segment is not None]
    per_cam = {c.source.camera_id: 0 for c in cams}
    for seg in ok:
        per_cam[seg.camera_id] += 1
    recorded_bytes = sum(s.size_bytes for s in ok)
    recorded_seconds = sum(s.duration_seconds for s in ok)
    mbps = recorded_bytes * 8 / recorded_seconds / 1e6 if recorded_seconds else 0.0
    pct_per_cam = 100.0 * cpu / wall / args.cameras
    pct_per_4mbps = pct_per_cam * (4.0 / mbps) if mbps else 0.0
    expected = args.seconds - args.stagger * len(cams)
    steady_ffmpeg = steady_camvault = steady_wall = 0.0
    survivors = 0  # ffmpeg processes alive from the first to the last steady snapshot
    if "first" in steady and steady["last"] is not steady["first"]:
        (w0, k0, me0, th0), (w1, k1, me1, th1) = steady["first"], steady["last"]
        steady_wall = w1 - w0
        steady_ffmpeg = _steady(k0, k1)
        survivors = len(k0.keys() & k1.keys())
        steady_camvault = (me1 - me0) - (th1 - th0)  # the sampler thread is the bench's
    steady_pct = (
        100.0 * (steady_ffmpeg + steady_camvault) / steady_wall / args.cameras
        if steady_wall
        else 0.0
    )
    problems = []
    if not _alive(server):
        problems.append("the RTSP server died")
    if not ok:
        problems.append("nothing was recorded")
    silent = sorted(c for c, n in per_cam.items() if n == 0)
    if silent:
        problems.append(f"{len(silent)} camera(s) recorded no segment: {', '.join(silent[:5])}")
    if ok and recorded_seconds / args.cameras < 0.5 * expected:
        problems.append(
            f"only {recorded_seconds / args.cameras:.0f} s recorded per camera of ~{expected:.0f} s"
        )
    if not samples or max(x[4] for x in samples) < args.cameras:
        problems.append("fewer ffmpeg processes than cameras while sampling")
    if survivors < args.cameras:
        # a restarted ffmpeg's CPU falls out of the steady figure (down to 0): not a result
        problems.append(
            f"only {survivors} of {args.cameras} ffmpeg processes ran through the whole steady "
            "window (restarted: the stream broke off?); the steady CPU does not count them"
        )
    mib = 1024 * args.cameras

    def median(i: int) -> float:
        return statistics.median(x[i] for x in samples) if samples else 0.0

    pss_per_cam = median(1) / mib
    return {
        "variant": variant,
        "ffmpeg_input_options": " ".join(VARIANTS[variant][0]),
        "ffmpeg_env": VARIANTS[variant][1],
        "cameras": args.cameras,
        "seconds": round(wall, 1),
        "segments": len(ok),
        "quarantined": len(results) - len(ok),
        "recorded_seconds_per_camera": round(recorded_seconds / args.cameras, 1),
        "recorded_mbps_per_camera": round(mbps, 2),
        "cpu_seconds_ffmpeg": round(cpu_ffmpeg, 2),
        "cpu_seconds_camvault": round(cpu_self, 2),
        "cpu_pct_per_4mbps_camera": round(pct_per_4mbps, 3),
        "steady_seconds": round(steady_wall, 1),
        "steady_cpu_pct_per_camera": round(steady_pct, 3),
        "steady_cpu_pct_per_4mbps_camera": round(steady_pct * (4.0 / mbps) if mbps else 0.0, 3),
        "steady_cpu_pct_ffmpeg_per_camera": round(
            100.0 * steady_ffmpeg / steady_wall / args.cameras if steady_wall else 0.0, 3
        ),
        "steady_cpu_pct_camvault_per_camera": round(
            100.0 * steady_camvault / steady_wall / args.cameras if steady_wall else 0.0, 3
        ),
        "pss_mb_per_camera": round(pss_per_cam, 1),
        "pss_mb_ffmpeg_each": round(median(2) / mib, 1),
        "pss_mb_camvault_process": round(median(3) / 1024, 1),
        "rss_mb_per_camera": round(median(0) / mib, 1),
        "peak_pss_mb_per_camera": round(max((x[1] for x in samples), default=0) / mib, 1),
        "cameras_per_2_core_node_at_70pct": int(140 / pct_per_4mbps) if pct_per_4mbps else 0,
        "load1": round(os.getloadavg()[0], 2),
        "problems": problems,
    }


def run_anchor(server: RtspCamera, args: argparse.Namespace) -> dict[str, Any]:
    """The reference in the same run: ``args.cameras`` bare ffmpegs receiving the same
    stream (RTSP/TCP, stream copy) into ``-f null`` — no segments, no files, no camvault.
    What any ffmpeg-based recorder pays at least; measured over the same steady window."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    cmd = [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error", "-threads", "1",
           "-rtsp_transport", "tcp", "-i", server.url, "-map", "0:v:0", "-c", "copy",
           "-f", "null", "-"]  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(args.cameras):
            procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL))
            time.sleep(args.stagger)
        time.sleep(3.0)
        w0, k0 = time.monotonic(), {p.pid: _proc_cpu(p.pid) for p in procs}
        time.sleep(max(1.0, args.seconds - args.stagger * args.cameras - 3.0))
        w1, k1 = time.monotonic(), {p.pid: _proc_cpu(p.pid) for p in procs}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    alive = [p for p in k0 if k0[p] is not None and k1.get(p) is not None]
    cpu = sum(k1[p] - k0[p] for p in alive)  # type: ignore[operator]
    problems = [] if len(alive) == args.cameras else [f"only {len(alive)} ffmpegs ran through"]
    if not _alive(server):
        problems.append("the RTSP server died")
    pct = 100.0 * cpu / (w1 - w0) / args.cameras
    return {"variant": "anchor", "steady_seconds": round(w1 - w0, 1),
            "steady_cpu_pct_per_camera": round(pct, 3), "problems": problems}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cameras", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60.0, help="per phase")
    p.add_argument("--segment-seconds", type=int, default=30)
    p.add_argument("--mbps", type=float, default=4.0)
    p.add_argument("--size", default="1280x720")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--stagger", type=float, default=0.5, help="seconds between camera starts")
    p.add_argument(
        "--variants",
        default="before,tuned",
        help=f"ffmpeg input options to compare, from {', '.join(VARIANTS)}",
    )
    p.add_argument("--repeats", type=int, default=2, help="passes over the variants (ABBA…)")
    p.add_argument("--keep", action="store_true", help="keep the recorded files")
    args = p.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    reason = unavailable()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="camvault-bench-rec-"))
    server = RtspCamera(
        work / "rtsp.log",
        shared=True,
        pattern="smpte",
        size=args.size,
        fps=args.fps,
        gop=args.fps * 2,
        bitrate=int(args.mbps * 1000),
        cbr=True,
    )
    phases: list[dict[str, Any]] = []
    server.start()
    try:
        for rep in range(args.repeats):
            # alternate the order (ABBA) so drift in the machine's load hits all variants
            order = [*variants, "anchor"]
            for variant in order if rep % 2 == 0 else order[::-1]:
                if not _alive(server):
                    phases.append({"variant": variant, "problems": ["the RTSP server died"]})
                    break
                if variant == "anchor":
                    r = run_anchor(server, args)
                    phases.append(r)
                    print(
                        f"  anchor    bare ffmpeg → null: steady cpu "
                        f"{r['steady_cpu_pct_per_camera']:.3f} %/cam"
                        + (f"  PROBLEMS: {r['problems']}" if r["problems"] else ""),
                        file=sys.stderr,
                        flush=True,
                    )
                    continue
                r = run_phase(server, work, args, variant)
                phases.append(r)
                print(
                    f"  {variant:<9} cpu {r['cpu_pct_per_4mbps_camera']:.3f} %/cam (steady "
                    f"{r['steady_cpu_pct_per_camera']:.3f}: ffmpeg "
                    f"{r['steady_cpu_pct_ffmpeg_per_camera']:.3f} + camvault "
                    f"{r['steady_cpu_pct_camvault_per_camera']:.3f})  "
                    f"PSS {r['pss_mb_per_camera']:5.1f} MB/cam (ffmpeg {r['pss_mb_ffmpeg_each']}"
                    f" each, camvault {r['pss_mb_camvault_process']} in all)  RSS "
                    f"{r['rss_mb_per_camera']:5.1f} MB/cam  {r['segments']} segments  "
                    f"load {r['load1']}"
                    + (f"  PROBLEMS: {r['problems']}" if r["problems"] else ""),
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    problems = [f"{ph['variant']}: {x}" for ph in phases for x in ph["problems"]]
    summary: dict[str, Any] = {}
    for v in variants:
        mine = [ph for ph in phases if ph["variant"] == v and not ph["problems"]]
        if not mine:
            continue
        summary[v] = {
            k: round(statistics.median(ph[k] for ph in mine), 3)
            for k in (
                "cpu_pct_per_4mbps_camera",
                "steady_cpu_pct_per_camera",
                "steady_cpu_pct_per_4mbps_camera",
                "steady_cpu_pct_ffmpeg_per_camera",
                "steady_cpu_pct_camvault_per_camera",
                "pss_mb_per_camera",
                "pss_mb_ffmpeg_each",
                "rss_mb_per_camera",
                "cameras_per_2_core_node_at_70pct",
            )
        }
    anchors = [ph for ph in phases if ph["variant"] == "anchor" and not ph["problems"]]
    anchor = (
        round(statistics.median(ph["steady_cpu_pct_per_camera"] for ph in anchors), 3)
        if anchors
        else 0.0
    )
    main_variant = "tuned" if "tuned" in summary else (variants[-1] if variants else "")
    best = summary.get(main_variant, {})
    valid = not problems and bool(best) and bool(anchors)
    result = {
        "cameras": args.cameras,
        "seconds_per_phase": args.seconds,
        "mbps": args.mbps,
        "phases": phases,
        "summary": summary,
        "goal_pct_per_camera": GOAL_PCT,
        "goal_pss_mb_per_camera": GOAL_PSS_MB,
        "anchor_bare_ffmpeg_steady_cpu_pct_per_camera": anchor,
        "steady_ratio_to_anchor": (
            round(best["steady_cpu_pct_per_camera"] / anchor, 2) if valid and anchor else None
        ),
        "meets_cpu_goal": valid and best["steady_cpu_pct_per_4mbps_camera"] <= GOAL_PCT,
        "meets_memory_goal": valid and best["pss_mb_per_camera"] <= GOAL_PSS_MB,
        "meets_goal": valid
        and best["steady_cpu_pct_per_4mbps_camera"] <= GOAL_PCT
        and best["pss_mb_per_camera"] <= GOAL_PSS_MB,
        "problems": problems,
        "at": datetime.now(UTC).isoformat(),
    }
    print(f"\n{args.cameras} cameras x {args.mbps} Mbit/s, {args.seconds:.0f} s per phase")
    print(
        f"{'variant':<10}{'CPU %/cam':>10}{'steady':>8}{'ffmpeg':>8}{'camvault':>9}"
        f"{'PSS MB/cam':>11}{'ffmpeg PSS':>11}{'RSS MB/cam':>11}"
    )
    for v, m in summary.items():
        print(
            f"{v:<10}{m['cpu_pct_per_4mbps_camera']:>10.3f}{m['steady_cpu_pct_per_camera']:>8.3f}"
            f"{m['steady_cpu_pct_ffmpeg_per_camera']:>8.3f}"
            f"{m['steady_cpu_pct_camvault_per_camera']:>9.3f}{m['pss_mb_per_camera']:>11.1f}"
            f"{m['pss_mb_ffmpeg_each']:>11.1f}{m['rss_mb_per_camera']:>11.1f}"
        )
    print(f"{'anchor':<10}{'':>10}{anchor:>8.3f}  (bare ffmpeg RTSP → -f null, same run)")
    if result["steady_ratio_to_anchor"] is not None:
        print(f"{main_variant} steady CPU / anchor: {result['steady_ratio_to_anchor']}")
    print(
        f"goals: steady CPU <= {GOAL_PCT} %/cam: {result['meets_cpu_goal']}; "
        f"PSS <= {GOAL_PSS_MB} MB/cam: {result['meets_memory_goal']}; "
        f"meets_goal {result['meets_goal']}"
    )
    out = ROOT / "bench" / "results" / "recorder_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    if problems:
        print("FAILED: the bench measured nothing trustworthy:", file=sys.stderr)
        for x in problems:
            print(f"  - {x}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
