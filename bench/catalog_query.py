"""Benchmark: the time-range listing through row-level security vs. a plain query.

Builds a catalog of N recordings (default 10 M: 1,000 cameras x 5-minute segments) with
COPY, 1,000 users whose grants are realistic (each sees 5-50 cameras, directly or through
a group; some hold footage-window grants), then measures p50/p99 latency of the API's
listing query for 1 h and 24 h windows:

* ``rls``: as the API does it — SET LOCAL ROLE camvault_api, the acting user set with
  set_config(..., true), the listing query with no access condition of its own;
* ``plain``: the same listing as the owner (superuser: no RLS) with the access check
  written out as an explicit WHERE;
* ``rls_heap``: the ``rls`` query with index-only scans switched off for the transaction
  (``SET LOCAL enable_indexonlyscan = off``): an index scan plus a heap read per row, the
  access path before migration 0013's covering index (no DDL, so no plan invalidation
  skews the other modes). The EXPLAIN shows the real pre-0013 plan too: the index is
  dropped in a rolled-back transaction after the timing.

The three alternate query by query (rotating which goes first), so load and cache effects
hit all of them alike.

Prints a table, the EXPLAIN (ANALYZE, BUFFERS) of the RLS query, and writes JSON to
bench/results/catalog_query.json. The database is built once and kept (``--rebuild`` to
start over), so re-runs only measure.

    .venv/bin/python bench/catalog_query.py [--rows 10000000] [--queries 2000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from _common import ADMIN_URL, create_db, db_exists, with_db
from camvault.catalog.connector import PLAN_CACHE_OPTION
from camvault.catalog.migrate import migrate
from camvault.catalog.queries import query

SEGMENT = timedelta(minutes=5)
MODES = ("rls", "plain", "rls_heap")
GOAL_P99_MS = 5.0
DEFAULT_URL = ADMIN_URL
PLAIN_SQL = """
SELECT * FROM recordings r
 WHERE r.camera_id = %(camera_id)s
   AND r.end_time > %(start)s
   AND r.start_time < %(end)s
   AND r.start_time > %(start)s::timestamptz - interval '6 hours'
   AND EXISTS (
       SELECT 1 FROM grants g
        WHERE g.camera_id = r.camera_id
          AND g.revoked_at IS NULL
          AND (g.expires_at IS NULL OR g.expires_at > now())
          AND (g.user_id = %(user_id)s
               OR g.group_id IN (SELECT m.group_id FROM group_members m
                                  WHERE m.user_id = %(user_id)s))
          AND (g.window_start IS NULL
               OR (g.window_start <= r.start_time AND r.end_time <= g.window_end)))
 ORDER BY r.start_time, r.id
 LIMIT %(limit)s
"""


def build(url: str, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    if db_exists(args.db, admin=url) and not args.rebuild:
        with psycopg.connect(with_db(url, args.db)) as conn:
            meta = conn.execute("SELECT value FROM bench_meta WHERE key = 'meta'").fetchone()
        if meta and meta[0]["recordings"] == args.recordings:
            print(f"reusing database {args.db} ({args.recordings:,} recordings)", file=sys.stderr)
            db = with_db(url, args.db)
            if migrate(db):  # e.g. built before 0013: add the index, then the visibility map
                with psycopg.connect(db, autocommit=True) as conn:
                    conn.execute("VACUUM (ANALYZE) recordings")
            return dict(meta[0])
    db = create_db(args.db, admin=url, replace=True)
    per_camera = max(1, args.recordings // args.cameras)
    end = datetime(2026, 11, 1, tzinfo=UTC)
    start = end - per_camera * SEGMENT
    cams = [f"cam-{i:04d}" for i in range(args.cameras)]
    t_build = time.perf_counter()
    with psycopg.connect(db) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(
            "SELECT camvault_ensure_partition(d) FROM generate_series(%s::timestamptz,"
            " %s::timestamptz + interval '1 month', interval '1 month') d",
            (start, end),
        )
        with conn.cursor().copy("COPY cameras (id, name) FROM STDIN") as cp:
            for c in cams:
                cp.write_row((c, f"Camera {c}"))
        with conn.cursor().copy("COPY users (name) FROM STDIN") as cp:
            for u in range(args.users):
                cp.write_row((f"user{u:04d}",))
        n_groups = max(1, args.users // 20)
        with conn.cursor().copy("COPY groups (name) FROM STDIN") as cp:
            for g in range(n_groups):
                cp.write_row((f"group{g:03d}",))
        user_ids = [r[0] for r in conn.execute("SELECT id FROM users ORDER BY id")]
        group_ids = [r[0] for r in conn.execute("SELECT id FROM groups ORDER BY id")]
        visible: dict[int, list[str]] = {}
        grant_rows: list[tuple[Any, ...]] = []
        member_rows: list[tuple[int, int]] = []
        group_cams = {g: rng.sample(cams, rng.randint(3, 10)) for g in group_ids}
        for g, gc in group_cams.items():
            grant_rows += [(None, g, c, "view", None, None) for c in gc]
        for u in user_ids:
            mine = rng.sample(group_ids, rng.choice((0, 1, 1, 2)))
            member_rows += [(g, u) for g in mine]
            direct = rng.sample(cams, rng.randint(5, 45))
            grant_rows += [
                (u, None, c, rng.choice(("view", "view", "export")), None, None) for c in direct
            ]
            if rng.random() < 0.1:  # an investigator's footage window elsewhere
                c = rng.choice(cams)
                w0 = start + rng.random() * (end - start - timedelta(hours=2))
                grant_rows.append((u, None, c, "view", w0, w0 + timedelta(hours=2)))
            # the listing is benchmarked on cameras the user sees whole
            visible[u] = sorted(set(direct).union(*(group_cams[g] for g in mine)))
        with conn.cursor().copy("COPY group_members (group_id, user_id) FROM STDIN") as cp:
            for row in member_rows:
                cp.write_row(row)
        with conn.cursor().copy(
            "COPY grants (user_id, group_id, camera_id, permission, window_start, window_end)"
            " FROM STDIN"
        ) as cp:
            for row in grant_rows:
                cp.write_row(row)
        mean_seen = statistics.mean(len(v) for v in visible.values())
        print(
            f"grants: {len(user_ids)} users see {mean_seen:.1f} cameras on average",
            file=sys.stderr,
        )
        conn.commit()
        t0 = time.perf_counter()
        batch = 200_000
        rows = 0
        with conn.cursor().copy(
            "COPY recordings (camera_id, start_time, end_time, duration_seconds, s3_bucket,"
            " s3_key, size_bytes, checksum_algorithm, checksum, codec, width, height, etag)"
            " FROM STDIN"
        ) as cp:
            buf = io.StringIO()
            for slot in range(per_camera):
                s = start + slot * SEGMENT
                e = s + SEGMENT
                si, ei = s.isoformat(), e.isoformat()
                stamp = s.strftime("%Y/%m/%d/{}_%Y%m%dT%H%M%SZ.mp4")
                for c in cams:
                    buf.write(
                        f"{c}\t{si}\t{ei}\t300\tbench\t{c}/{stamp.format(c)}\t{37_500_000}\t"
                        f"sha256\t{slot:064x}\th264\t1920\t1080\tetag\n"
                    )
                    rows += 1
                if rows % batch < args.cameras:
                    cp.write(buf.getvalue())
                    buf = io.StringIO()
                    rate = rows / (time.perf_counter() - t0)
                    print(
                        f"\r  copied {rows:,} recordings ({rate:,.0f}/s)", end="", file=sys.stderr
                    )
            cp.write(buf.getvalue())
        conn.commit()
        print(
            f"\r  copied {rows:,} recordings in {time.perf_counter() - t0:.0f} s", file=sys.stderr
        )
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) recordings")
        conn.execute("ANALYZE")
        meta = {
            "recordings": args.recordings,
            "rows": rows,
            "cameras": args.cameras,
            "users": args.users,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "visible": {str(k): v for k, v in visible.items()},
            "build_seconds": round(time.perf_counter() - t_build, 1),
        }
        conn.execute("CREATE TABLE bench_meta (key text PRIMARY KEY, value jsonb)")
        conn.execute("INSERT INTO bench_meta VALUES ('meta', %s)", (json.dumps(meta),))
    return meta


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure(db: str, meta: dict[str, Any], args: argparse.Namespace, rng: random.Random) -> Any:
    start, end = datetime.fromisoformat(meta["start"]), datetime.fromisoformat(meta["end"])
    visible = {int(k): v for k, v in meta["visible"].items() if v}
    users = sorted(visible)
    listing = query("recordings_page", "access.sql")
    results: dict[str, Any] = {}
    explain: dict[str, str] = {}
    # the session options of camvault's own pool (connector.PLAN_CACHE_OPTION)
    with psycopg.connect(db, options=PLAN_CACHE_OPTION) as conn:
        for window in (timedelta(hours=1), timedelta(hours=24)):
            cases = []
            for _ in range(args.queries):
                u = rng.choice(users)
                t = start + rng.random() * (end - start - window)
                cases.append(
                    {
                        "user_id": u,
                        "camera_id": rng.choice(visible[u]),
                        "start": t,
                        "end": t + window,
                        "limit": args.limit,
                    }
                )
            times: dict[str, list[float]] = {m: [] for m in MODES}
            counts: dict[str, int] = dict.fromkeys(MODES, 0)
            for i, params in enumerate(cases):
                # interleaved, rotating which goes first, so cache effects hit all alike
                for mode in MODES[i % 3 :] + MODES[: i % 3]:
                    with conn.transaction(force_rollback=True):
                        if mode == "rls_heap":
                            conn.execute("SET LOCAL enable_indexonlyscan = off")
                        if mode != "plain":
                            conn.execute("SET LOCAL ROLE camvault_api")
                            conn.execute(
                                "SELECT set_config('camvault.user_id', %s, true)",
                                (str(params["user_id"]),),
                            )
                            # its own statement text for rls_heap: psycopg prepares each text
                            # once per connection, and a plan cached under one setting would
                            # otherwise serve the other mode too
                            text = listing if mode == "rls" else "/* heap */ " + listing
                            began = time.perf_counter()
                            n = len(conn.execute(text, params).fetchall())
                        else:
                            began = time.perf_counter()
                            n = len(conn.execute(PLAIN_SQL, params).fetchall())
                        elapsed = time.perf_counter() - began
                    if i >= args.warmup:
                        times[mode].append(elapsed * 1000)
                        counts[mode] += n
            label = f"{int(window.total_seconds() // 3600)}h"
            results[label] = {
                mode: {
                    "p50_ms": round(_pct(v, 50), 3),
                    "p99_ms": round(_pct(v, 99), 3),
                    "mean_ms": round(statistics.mean(v), 3),
                    "queries": len(v),
                    "rows_per_query": round(counts[mode] / max(1, len(v)), 1),
                }
                for mode, v in times.items()
            }
            r = results[label]
            r["rls_over_plain_p50"] = round(r["rls"]["p50_ms"] / r["plain"]["p50_ms"], 3)
            r["rls_over_plain_p99"] = round(r["rls"]["p99_ms"] / r["plain"]["p99_ms"], 3)
            r["rls_over_heap_p99"] = round(r["rls"]["p99_ms"] / r["rls_heap"]["p99_ms"], 3)
            if window == timedelta(hours=24):
                p = cases[-1]
                for mode in ("rls", "rls_pre0013"):
                    # rolled back: the dropped index is back afterwards
                    with conn.transaction(force_rollback=True):
                        if mode == "rls_pre0013":
                            conn.execute("DROP INDEX recordings_listing_idx")
                        conn.execute("SET LOCAL ROLE camvault_api")
                        conn.execute(
                            "SELECT set_config('camvault.user_id', %s, true)",
                            (str(p["user_id"]),),
                        )
                        explain[mode] = "\n".join(
                            row[0]
                            for row in conn.execute(
                                sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") + sql.SQL(listing),
                                p,  # type: ignore[arg-type]
                            )
                        )
    return results, explain


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", default=DEFAULT_URL, help="superuser URL of the PostgreSQL server")
    ap.add_argument("--db", default="camvault_bench", help="database to build (kept)")
    ap.add_argument("--rows", "--recordings", dest="recordings", type=int, default=10_000_000)
    ap.add_argument("--cameras", type=int, default=1000)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=2000, help="per window, per mode")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--limit", type=int, default=1000, help="LIMIT of the listing (page size)")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "catalog_query.json"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    meta = build(args.url, args, rng)
    results, explain = measure(with_db(args.url, args.db), meta, args, rng)
    print(
        f"\ncatalog: {meta['rows']:,} recordings, {meta['cameras']} cameras, {meta['users']} users"
        f" (built in {meta['build_seconds']} s)"
    )
    print(f"{'window':<8}{'mode':<7}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'rows/q':>8}")
    for label, r in results.items():
        for mode in MODES:
            m = r[mode]
            print(
                f"{label:<8}{mode:<7}{m['p50_ms']:>9.3f}{m['p99_ms']:>9.3f}{m['mean_ms']:>9.3f}"
                f"{m['rows_per_query']:>8}"
            )
        print(
            f"{label:<8}rls/plain  p50 x{r['rls_over_plain_p50']}  p99 x{r['rls_over_plain_p99']}"
            f"   rls/rls_heap p99 x{r['rls_over_heap_p99']}"
        )
    print(f"goal: 24h rls p99 <= {GOAL_P99_MS} ms: {results['24h']['rls']['p99_ms']} ms")
    for mode, text in explain.items():
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the {mode} listing, 24 h window:\n" + text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "catalog": {k: v for k, v in meta.items() if k != "visible"},
                "results": results,
                "explain_24h": explain,
                "goal_p99_ms_24h": GOAL_P99_MS,
                "meets_goal": results["24h"]["rls"]["p99_ms"] <= GOAL_P99_MS,
                "load_avg": os.getloadavg(),
                "at": datetime.now(UTC).isoformat(),
            },
            indent=2,
        )
    )
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
