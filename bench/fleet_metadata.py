"""Benchmark: the catalog side of a 10,000-camera fleet on the local PostgreSQL.

Simulates what 10,000 cameras with 5-minute segments and 60 nodes ask of PostgreSQL:

* **commits**: 10,000 / 300 s = 33.3 recordings committed per second, through the real
  ``Catalog.commit_recording`` (partition check, insert, read-back), paced evenly;
* **leases**: 60 nodes each running the real ``Node.tick`` (heartbeat, renew all its
  leases in one statement, fleet view, claims / hand-off requests) every ``ttl/3``
  (default lease 15 s → a tick every 5 s per node, 12 ticks/s); the first ticks claim
  the 10,000 cameras (~167 per node).

Measures commit latency p50/p99, renewal latency p50/p99 (one renew statement = every
lease of a node), tick p99, and PostgreSQL's CPU: the CPU seconds of the backends serving
this benchmark per wall second, and of every postgres process on the machine (which
includes whatever else uses that server). Prints a table, writes
``bench/results/fleet.json``.

    .venv/bin/python bench/fleet_metadata.py [--duration 60] [--cameras 10000] [--nodes 60]

Use ``--duration 300`` (or more) for the figure the README quotes as a 5-minute run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from camvault.catalog import Catalog, PsycopgConnector
from camvault.catalog.migrate import migrate
from camvault.fleet.leases import LeaseTiming
from camvault.fleet.node import Node
from camvault.fleet.store import FleetStore, Held
from camvault.models import Recording

DEFAULT_URL = os.environ.get(
    "CAMVAULT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
TICKS = os.sysconf("SC_CLK_TCK")


def _with_db(url: str, dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


def postgres_pids() -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "comm").read_text().strip() == "postgres":
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


class TimedStore(FleetStore):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.renewals: list[float] = []
        self.lock = threading.Lock()

    def renew(self, node_id: str, ttl: float, ends: Any = None) -> list[Held]:
        t = time.perf_counter()
        held = super().renew(node_id, ttl, ends)
        with self.lock:
            self.renewals.append(time.perf_counter() - t)
        return held


def setup(url: str, db: str, cameras: int) -> str:
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    target = _with_db(url, db)
    migrate(target)
    copy = "COPY cameras (id, name, segment_seconds, enabled, url) FROM STDIN"
    # urls are never connected to (no recorder runs here): loopback, to be safe
    with psycopg.connect(target) as conn, conn.cursor() as cur, cur.copy(copy) as cp:
        for i in range(cameras):
            cp.write_row((f"cam-{i:05d}", "", 300, True, f"rtsp://127.0.0.1:9/cam-{i}"))
    return target


def run(args: argparse.Namespace) -> dict[str, Any]:
    target = setup(args.url, args.db, args.cameras)
    stop = threading.Event()
    commits: list[float] = []
    ticks: list[float] = []
    lock = threading.Lock()
    commit_db = PsycopgConnector(target, max_size=4, statement_timeout_ms=30_000)
    lease_db = PsycopgConnector(target, max_size=args.pool, statement_timeout_ms=30_000)
    store = TimedStore(lease_db)
    catalog = Catalog(commit_db, node="bench")
    timing = LeaseTiming(args.lease_seconds, args.lease_seconds / 5)

    def node_loop(i: int) -> None:
        node = Node(f"node-{i:02d}", store, lambda *a: None, timing)  # type: ignore[arg-type,return-value]
        stop.wait(i * timing.renew_every / args.nodes)  # spread the ticks evenly
        while not stop.is_set():
            t = time.perf_counter()
            node.tick()
            with lock:
                ticks.append(time.perf_counter() - t)
            stop.wait(max(0.0, timing.renew_every - (time.perf_counter() - t)))

    rate = args.cameras / args.segment_seconds
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    seq = [0]

    def commit_loop(worker: int, workers: int) -> None:
        interval = workers / rate
        nxt = time.perf_counter() + worker / rate
        while not stop.is_set():
            delay = nxt - time.perf_counter()
            if delay > 0:
                stop.wait(delay)
            nxt += interval
            with lock:
                n = seq[0]
                seq[0] += 1
            cam = f"cam-{n % args.cameras:05d}"
            start = base + timedelta(seconds=args.segment_seconds * (n // args.cameras))
            rec = Recording(
                camera_id=cam, start_time=start,
                end_time=start + timedelta(seconds=args.segment_seconds),
                duration_seconds=float(args.segment_seconds), s3_bucket="bench",
                s3_key=f"{cam}/{start:%Y/%m/%d}/{cam}_{start:%Y%m%dT%H%M%S}Z.mp4",
                size_bytes=150_000_000, checksum_algorithm="sha256", checksum="0" * 64,
                codec="h264", width=1920, height=1080, storage_class="STANDARD",
                sse="AES256", etag="e", run_id=f"run-{cam}",
            )  # fmt: skip
            t = time.perf_counter()
            catalog.commit_recording(rec)
            with lock:
                commits.append(time.perf_counter() - t)

    threads = [
        threading.Thread(target=node_loop, args=(i,), daemon=True) for i in range(args.nodes)
    ]
    threads += [
        threading.Thread(target=commit_loop, args=(w, args.commit_workers), daemon=True)
        for w in range(args.commit_workers)
    ]
    for t in threads:
        t.start()
    # warm-up: the first ticks claim every camera; measure the steady state after it
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        held = store.view("x", timing.ttl).held
        if sum(held.values()) >= args.cameras:
            break
        time.sleep(1)
    with lock:
        commits.clear()
        ticks.clear()
    with store.lock:
        store.renewals.clear()
    with psycopg.connect(target) as conn:
        ours = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (args.db,),
        )]  # fmt: skip
    all_pg = postgres_pids()
    cpu0_ours, cpu0_all, wall0 = cpu_seconds(ours), cpu_seconds(all_pg), time.monotonic()
    load0 = os.getloadavg()[0]
    time.sleep(args.duration)
    wall = time.monotonic() - wall0
    cpu_ours, cpu_all = cpu_seconds(ours) - cpu0_ours, cpu_seconds(all_pg) - cpu0_all
    stop.set()
    for t in threads:
        t.join(30)
    with psycopg.connect(target) as conn:
        spread = conn.execute(
            "SELECT max(n), min(n) FROM (SELECT holder, count(*) n FROM camera_leases"
            " WHERE expires_at > now() GROUP BY holder) h"
        ).fetchone()
        rows = conn.execute("SELECT count(*) FROM recordings").fetchone()
    commit_db.close()
    lease_db.close()
    renewals = list(store.renewals)
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cameras": args.cameras,
        "nodes": args.nodes,
        "lease_seconds": args.lease_seconds,
        "segment_seconds": args.segment_seconds,
        "duration_seconds": round(wall, 1),
        "commits": len(commits),
        "commits_per_second": round(len(commits) / wall, 1),
        "commit_p50_ms": round(statistics.median(commits) * 1000, 2) if commits else None,
        "commit_p99_ms": round(pct(commits, 99) * 1000, 2),
        "renewals": len(renewals),
        "renew_p50_ms": round(statistics.median(renewals) * 1000, 2) if renewals else None,
        "renew_p99_ms": round(pct(renewals, 99) * 1000, 2),
        "tick_p99_ms": round(pct(ticks, 99) * 1000, 2),
        "leases_per_node_max_min": list(spread) if spread else None,
        "pg_cpu_cores_bench_backends": round(cpu_ours / wall, 3),
        "pg_cpu_cores_all_postgres": round(cpu_all / wall, 3),
        "machine_load_1min_at_start": round(load0, 2),
        "recordings_rows": rows[0] if rows else None,
        "note": "2-core machine shared with other jobs; PostgreSQL CPU of all processes "
        "includes their load",
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--db", default="camvault_bench_fleet")
    p.add_argument("--cameras", type=int, default=10_000)
    p.add_argument("--nodes", type=int, default=60)
    p.add_argument("--duration", type=float, default=60.0, help="measured seconds (≥300: 5 min)")
    p.add_argument("--lease-seconds", type=float, default=15.0)
    p.add_argument("--segment-seconds", type=int, default=300)
    p.add_argument("--commit-workers", type=int, default=4)
    p.add_argument("--pool", type=int, default=8, help="connections shared by the simulated nodes")
    p.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = p.parse_args()
    result = run(args)
    if not args.keep:
        with psycopg.connect(args.url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.db))
            )
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")
    out = Path(__file__).parent / "results" / "fleet.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
