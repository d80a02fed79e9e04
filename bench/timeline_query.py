"""Benchmark: the timeline query (gaps and islands in SQL) under row-level security.

Builds one camera with 30 days of 5-minute segments (8,640 recordings; a minute missing
at noon every third day, the oldest 10 days archived to GLACIER, one restore in progress) in a
fresh database, then times ``TimelineCatalog.spans`` exactly as the API calls it — as
``camvault_api`` with the acting user set, through a psycopg pool — for a 1-day and a
30-day range, as a user with a camera grant and as an admin. Prints a table and writes
bench/results/timeline.json.

    .venv/bin/python bench/timeline_query.py [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from _common import ADMIN_URL, create_db
from camvault.catalog.access import AccessCatalog, Identity, RoleConnector
from camvault.catalog.connector import PsycopgConnector
from camvault.catalog.timeline import TimelineCatalog

SEGMENT = timedelta(minutes=5)
DAYS = 30
T0 = datetime(2026, 10, 1, tzinfo=UTC)
DEFAULT_URL = ADMIN_URL
DB = "camvault_bench_timeline"


def build(url: str) -> tuple[str, int]:
    db_url = create_db(DB, admin=url, replace=True)
    rows = 0
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO cameras (id, name) VALUES ('cam-1', 'bench')")
        for month in (T0, T0 + timedelta(days=DAYS)):
            conn.execute("SELECT camvault_ensure_partition(%s)", (month,))
        with conn.cursor().copy(
            "COPY recordings (camera_id, start_time, end_time, duration_seconds, s3_bucket,"
            " s3_key, size_bytes, checksum_algorithm, checksum, codec, width, height,"
            " storage_class, etag) FROM STDIN"
        ) as copy:
            for i in range(DAYS * 24 * 12):
                s = T0 + i * SEGMENT
                # a minute missing at noon every third day: 10 gaps, every row kept
                e = (
                    s
                    + SEGMENT
                    - (
                        timedelta(minutes=1)
                        if s.day % 3 == 0 and s.hour == 12 and s.minute == 0
                        else timedelta(0)
                    )
                )
                cls = "GLACIER" if s < T0 + timedelta(days=10) else "STANDARD"
                copy.write_row(
                    ("cam-1", s, e, (e - s).total_seconds(), "b", f"cam-1/{i}.mp4", 10**7, "sha256",
                     f"{i:064x}", "h264", 1920, 1080, cls, "etag")
                )  # fmt: skip
                rows += 1
        conn.execute(
            "INSERT INTO restores (recording_id, recording_start, camera_id, s3_bucket, s3_key,"
            " status, tier, days) SELECT id, start_time, camera_id, s3_bucket, s3_key,"
            " 'in_progress', 'Bulk', 1 FROM recordings ORDER BY start_time LIMIT 1 OFFSET 100"
        )
        conn.execute("ANALYZE")
    return db_url, rows


class _owner:  # a context manager closing the owner's connector
    def __init__(self, url: str) -> None:
        self.c = PsycopgConnector(url, max_size=1)

    def __enter__(self) -> AccessCatalog:
        return AccessCatalog(self.c)

    def __exit__(self, *exc: object) -> None:
        self.c.close()


def measure(cat: TimelineCatalog, days: int, n: int) -> dict[str, float]:
    times = []
    spans = 0
    for i in range(n):
        start = T0 + timedelta(hours=(i * 7) % max(1, (DAYS - days) * 24 + 1))
        began = time.perf_counter()
        spans = len(cat.spans("cam-1", start, start + timedelta(days=days)))
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
        "max_ms": round(times[-1], 2),
        "spans": spans,
        "queries": n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=DEFAULT_URL)
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    db_url, rows = build(args.url)
    with _owner(db_url) as acc:
        guard = acc.add_user("guard")
        boss = acc.add_user("boss", is_admin=True)
        acc.add_grant(camera_id="cam-1", user="guard")
    pool = PsycopgConnector(db_url, max_size=1, application_name="bench-timeline")
    api = RoleConnector(pool, "camvault_api")
    results: dict[str, dict[str, float]] = {}
    try:
        for who in (guard, boss):
            cat = TimelineCatalog(api, Identity(who.id, who.name, who.is_admin, 0))
            cat.spans("cam-1", T0, T0 + timedelta(days=1))  # warm the pool and plan cache
            for days in (1, 30):
                results[f"{who.name} {days}d"] = measure(cat, days, args.queries)
    finally:
        pool.close()
    print(f"timeline query, {rows:,} recordings (30 days of 5-min segments), as camvault_api")
    print(f"{'caller / range':<14} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'spans':>6}")
    for name, r in results.items():
        print(f"{name:<14} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8} {r['spans']:>6}")
    out = Path(__file__).parent / "results" / "timeline.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"recordings": rows, "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
