"""Chaos report: archive many segments through random real faults, count what got lost.

    .venv/bin/python bench/chaos_report.py [--segments 200] [--cameras 4] [--seed N]

Starts its own SeaweedFS and a fresh database on the PostgreSQL of the test suite
(``CAMVAULT_TEST_DATABASE_URL``, default postgresql://postgres@127.0.0.1:5432/test), puts
fault proxies in front of both, and feeds the segments in waves. Each wave runs the
worker process (``tests.faults.worker``: ingest → upload → commit) under one random fault:
S3 outage, PostgreSQL outage, a connection cut mid-transfer, a stalled S3, or SIGKILL of
the worker; then the fault is lifted and the worker restarted until the spool is empty,
and ``camvault reconcile`` runs. At the end every segment is checked in S3 (bytes) and in
the catalog (exactly one row). Prints a table, writes ``bench/results/chaos_report.json``.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from tests.faults.proxy import FaultProxy  # noqa: E402
from tests.media import make_big_h264, make_h264  # noqa: E402

from camvault.app import App  # noqa: E402
from camvault.catalog.migrate import migrate  # noqa: E402
from camvault.config import Settings  # noqa: E402
from camvault.embedded import SeaweedFS  # noqa: E402
from camvault.keys import object_key  # noqa: E402
from camvault.reconcile import Reconciler  # noqa: E402

FAULTS = ("none", "s3_outage", "db_outage", "cut", "stall", "kill9")
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def _db(admin: str) -> str:
    name = f"camvault_chaos_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin)
    info["dbname"] = name
    url = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    migrate(url)
    return url


def _worker(cfg: Path, inbox: Path, camera: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.worker", str(cfg), str(inbox), camera],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=200)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--wave", type=int, default=10, help="segments per wave")
    ap.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    admin = os.environ.get(
        "CAMVAULT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    work = Path(tempfile.mkdtemp(prefix="camvault-chaos-"))
    weed = SeaweedFS(work / "seaweedfs").start()
    db_url = _db(admin)
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    s3p = FaultProxy(("127.0.0.1", weed.s3_port)).start()
    pgp = FaultProxy((str(info.get("host")), int(info.get("port") or 5432))).start()
    info.update(host="127.0.0.1", port=str(pgp.port))
    bucket = "chaos"
    weed.client().create_bucket(Bucket=bucket)
    os.environ.update(
        AWS_ACCESS_KEY_ID=weed.access_key,
        AWS_SECRET_ACCESS_KEY=weed.secret_key,
        AWS_DEFAULT_REGION="us-east-1",
    )
    settings = Settings.model_validate(
        {
            "data_dir": str(work / "data"),
            "node": "chaos",
            "database": {
                "url": psycopg.conninfo.make_conninfo(**info),
                "connect_timeout_seconds": 1,
            },
            "s3": {
                "bucket": bucket,
                "endpoint_url": s3p.url,
                "addressing_style": "path",
                "conditional_writes": "off",
                "multipart_threshold_mb": 5,
                "multipart_chunk_mb": 5,
                "transfer_concurrency": 2,
                "connect_timeout_seconds": 1,
                "read_timeout_seconds": 2,
            },
            "spool": {"dir": str(work / "spool")},
            "upload": {
                "concurrency": 2,
                "backoff_base_seconds": 0.05,
                "backoff_max_seconds": 0.2,
                "redrive_base_seconds": 0.2,
                "redrive_max_seconds": 1.0,
            },
        }
    )
    cfg = work / "settings.json"
    cfg.write_text(settings.model_dump_json())
    media = work / "media"
    media.mkdir()
    small = [make_h264(media / f"s{i}.mp4", seconds=1.0 + i / 5) for i in range(3)]
    big = make_big_h264(media / "big.mp4")
    cameras = [f"chaos-{c}" for c in range(args.cameras)]
    with App.open(settings) as app:
        for cam in cameras:
            app.catalog.upsert_camera(cam)

    expected: dict[str, str] = {}
    faults: collections.Counter[str] = collections.Counter()
    leftover_parts = 0
    started = time.monotonic()
    for wave_no, first in enumerate(range(0, args.segments, args.wave)):
        camera = cameras[wave_no % len(cameras)]
        inbox = work / "inbox" / f"w{wave_no}"
        inbox.mkdir(parents=True)
        for i in range(first, min(first + args.wave, args.segments)):
            src = big if i % 20 == 19 else small[i % 3]
            start = T0 + timedelta(minutes=5 * i)
            shutil.copy(src, inbox / f"{camera}_{start:%Y%m%dT%H%M%S}Z.mp4")
            key = object_key("", camera, start, "mp4")
            expected[key] = hashlib.sha256(src.read_bytes()).hexdigest()
        fault = rng.choice(FAULTS)
        faults[fault] += 1
        proc = _worker(cfg, inbox, camera)
        delay = rng.uniform(0.5, 2.5)
        if fault == "kill9":
            threading.Timer(delay, proc.send_signal, (signal.SIGKILL,)).start()
        elif fault == "s3_outage":
            threading.Timer(delay, lambda: (setattr(s3p, "mode", "refuse"), s3p.cut_all())).start()
        elif fault == "db_outage":
            threading.Timer(delay, lambda: (setattr(pgp, "mode", "refuse"), pgp.cut_all())).start()
        elif fault == "stall":
            threading.Timer(delay, lambda: (setattr(s3p, "mode", "stall"), s3p.cut_all())).start()
        elif fault == "cut":
            threading.Timer(delay, s3p.cut_after, (rng.randrange(100_000, 6_000_000),)).start()
        deadline = time.monotonic() + 6
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None:  # the outage outlasted our patience: the operator restarts
            proc.kill()
            faults["kill9 (restart during outage)"] += 1
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
        time.sleep(0.3)
        s3p.restore()
        pgp.restore()
        leftover_parts += len(
            weed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        )
        for _ in range(10):  # restart until the spool is empty (redrive after the outage)
            r = _worker(cfg, inbox, camera)
            r.wait()
            if r.stdout:
                r.stdout.close()
            with App.open(settings) as app:
                if app.spool.stats()["pending"] == 0:
                    break
    with App.open(settings) as app:
        report = Reconciler(app.catalog, app.connector, app.store(), prefix="").run()
        upload_errors = len(app.catalog.list_upload_errors(limit=100_000))
    elapsed = time.monotonic() - started

    s3 = weed.client()
    listed = {
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    }
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT s3_key, checksum FROM recordings").fetchall()
    row_count = collections.Counter(k for k, _ in rows)
    lost = [k for k in expected if k not in listed or k not in row_count]
    wrong = [
        k
        for k in expected
        if k in listed
        and hashlib.sha256(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest()
        != expected[k]
    ]
    result: dict[str, Any] = {
        "seed": args.seed,
        "segments_in": len(expected),
        "objects_out": len(listed & set(expected)),
        "rows_out": len(set(row_count) & set(expected)),
        "lost": len(lost),
        "duplicated_rows": sum(n - 1 for n in row_count.values() if n > 1),
        "orphans": len(listed - set(row_count)),
        "wrong_bytes": len(wrong),
        "leftover_parts_after_faults": leftover_parts,
        "leftover_parts_at_end": len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])),
        "reconcile_rebuilt": len(report.rebuilt),
        "upload_error_rows": upload_errors,
        "faults": dict(faults),
        "elapsed_seconds": round(elapsed, 1),
    }
    s3p.stop()
    pgp.stop()
    weed.stop()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(str(psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]))
            )
        )
    shutil.rmtree(work, ignore_errors=True)

    print(f"\nchaos report (seed {args.seed}, {elapsed:.0f} s)")
    print(f"{'faults injected':<32}{sum(faults.values()):>8}")
    for name, n in sorted(faults.items()):
        print(f"  {name:<30}{n:>8}")
    for k in ("segments_in", "objects_out", "rows_out", "lost", "duplicated_rows", "orphans",
              "wrong_bytes", "leftover_parts_after_faults", "leftover_parts_at_end",
              "reconcile_rebuilt", "upload_error_rows"):  # fmt: skip
        print(f"{k.replace('_', ' '):<32}{result[k]:>8}")
    out = ROOT / "bench" / "results" / "chaos_report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwritten {out}")
    sys.exit(0 if not (lost or wrong or result["duplicated_rows"] or result["orphans"]) else 1)


if __name__ == "__main__":
    main()
