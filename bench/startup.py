"""Start-up: the fixed cost of `camvault --help` and of `camvault ingest FILE`.

A camera's upload script runs `camvault ingest --camera CAM FILE` once per segment, so
whatever the process pays before and after its one file is paid per segment. Measured, in
alternating order, ``--reps`` times each, wall and CPU (user+sys) of:

* ``python``: ``python -c pass`` — the interpreter's own floor (the anchor);
* ``help``: ``camvault --help``;
* ``ingest``: ``camvault ingest --camera CAM FILE`` of one small segment (camera listed in
  the config, as drop-in cameras are), as a camera script runs it: the config validated
  once (the warm-up run) and its snapshot reused (``camvault.config_snapshot``);
* ``ingest_validating``: the same with no cache directory, so the whole config is
  validated (pydantic + pydantic-settings) on every run: a config's first ingest;
* with ``--before-src DIR``, ``help`` and ``ingest`` once more from that source tree
  (e.g. the commit before the change: ``git archive REV src | tar -x -C /tmp/x``).

Bytecode is cached (in a temp prefix, as an installed package has it) even where
``PYTHONDONTWRITEBYTECODE`` is set: the warm-up run writes it. The fixed cost of
``ingest`` is its wall time minus the in-process time of ingesting the
same file (probe + hash + journal, measured warm in this process). Also printed: the
slowest imports of each path (``python -X importtime``).

    python bench/startup.py [--reps 15] [--before-src /tmp/x/src]

Writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.media import make_h264  # noqa: E402

from camvault.config import load_settings  # noqa: E402
from camvault.wiring import IngestConfig, make_ingestor, open_spool  # noqa: E402

GOAL_S = 0.2
CAMERA = "dock-2"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    cpu0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, _children_cpu() - cpu0


def slowest_imports(code: str, env: dict[str, str], n: int = 6) -> list[tuple[str, float]]:
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    rows = []
    for line in err.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
        if m and len(m.group(2)) <= 2:  # top-level imports (and their first level)
            rows.append((m.group(3), int(m.group(1)) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--before-src", help="also time this camvault source tree (its src/)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="camvault-bench-start-"))
    master = make_h264(work / "master.mp4", seconds=2.0)
    db = os.environ.get("CAMVAULT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    config = work / "camvault.toml"
    config.write_text(
        f'data_dir = "{work / "data"}"\n[database]\nurl = "{db}"\n'
        '[s3]\nendpoint_url = "http://127.0.0.1:9"\n'
        f'[spool]\ndir = "{work / "spool"}"\n[[cameras]]\nid = "{CAMERA}"\n'
        f'drop_dir = "{work / "drop"}"\n'
    )
    camvault = str(Path(sys.executable).parent / "camvault")
    # this checkout's src/ (not whatever the venv's editable install points at)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "XDG_CACHE_HOME": str(work / "cache")}
    # bytecode cached as an installed package has it (pip compiles at install), in a
    # prefix of our own, even where PYTHONDONTWRITEBYTECODE is set: else every run
    # compiles camvault's sources again (~0.04 s) and measures that
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    no_cache = {k: v for k, v in env.items() if k not in ("XDG_CACHE_HOME", "HOME")}
    before_env = {**env, "PYTHONPATH": args.before_src} if args.before_src else None
    stamp = iter(range(1_000_000))

    def segment() -> str:
        t = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=5 * next(stamp))
        p = work / "in" / f"{CAMERA}_{t:%Y%m%dT%H%M%S}Z.mp4"
        p.parent.mkdir(exist_ok=True)
        shutil.copyfile(master, p)  # a copy: ingest refuses a file with two hard links
        return str(p)

    cases: dict[str, Any] = {
        "python": lambda: timed([sys.executable, "-c", "pass"], env),
        "help": lambda: timed([camvault, "--help"], env),
        "ingest": lambda: timed(
            [camvault, "-c", str(config), "ingest", "--camera", CAMERA, segment()], env
        ),
        "ingest_validating": lambda: timed(
            [camvault, "-c", str(config), "ingest", "--camera", CAMERA, segment()], no_cache
        ),
    }
    if before_env is not None:
        cases["help_before"] = lambda: timed([camvault, "--help"], before_env)
        cases["ingest_before"] = lambda: timed(
            [camvault, "-c", str(config), "ingest", "--camera", CAMERA, segment()], before_env
        )
    names = list(cases)
    for name in names:  # warm-up: page cache, .pyc files
        cases[name]()
    times: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for rep in range(args.reps):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(cases[name]())
        print(
            f"  rep {rep:>2}: "
            + "  ".join(f"{n} {times[n][-1][0]:.3f}" for n in names)
            + f"  load {os.getloadavg()[0]:.1f}",
            file=sys.stderr,
        )

    # the per-file work, warm, in this process: what a long-running ingest pays per file
    cfg = IngestConfig.from_settings(load_settings(config, environ={}))
    spool = open_spool(cfg)
    ingestor = make_ingestor(cfg, spool, lambda cam: False)
    per_file = []
    for _ in range(args.reps):
        path = Path(segment())
        t0 = time.perf_counter()
        assert ingestor.ingest(path, CAMERA).ok
        per_file.append(time.perf_counter() - t0)
    spool.close()

    summary: dict[str, Any] = {}
    for name in names:
        walls = [w for w, _ in times[name]]
        summary[name] = {
            "median_wall_s": round(statistics.median(walls), 4),
            "min_wall_s": round(min(walls), 4),
            "median_cpu_s": round(statistics.median(c for _, c in times[name]), 4),
        }
    work_s = statistics.median(per_file)
    summary["ingest_per_file_in_process_s"] = round(work_s, 4)
    for key in ("ingest", "ingest_validating", "ingest_before"):
        if key in summary:
            summary[f"{key}_fixed_s"] = round(summary[key]["median_wall_s"] - work_s, 4)
    imports = {
        "help": slowest_imports("import camvault.cli; camvault.cli.build_parser()", env),
        "ingest": slowest_imports(
            "import camvault.cli.archive, camvault.config_snapshot, camvault.wiring, "
            "camvault.ingest",
            env,
        ),
        "ingest_validating": slowest_imports(
            "import camvault.cli.archive, camvault.config, camvault.wiring, camvault.ingest", env
        ),
    }
    print(f"\n{'command':<16}{'median wall':>12}{'min wall':>10}{'median CPU':>12}")
    for name in names:
        s = summary[name]
        print(
            f"{name:<16}{s['median_wall_s']:>10.3f} s{s['min_wall_s']:>9.3f}"
            f"{s['median_cpu_s']:>10.3f} s"
        )
    print(f"ingest of the same file in-process (warm): {work_s:.3f} s")
    for key in ("ingest", "ingest_validating", "ingest_before"):
        if f"{key}_fixed_s" in summary:
            print(f"{key} fixed cost = wall - in-process work = {summary[f'{key}_fixed_s']:.3f} s")
    print(f"goal: help and ingest fixed cost <= {GOAL_S} s")
    for path, rows in imports.items():
        print(f"slowest imports ({path}): " + ", ".join(f"{m} {t:.3f}s" for m, t in rows))
    result = {
        "reps": args.reps,
        "summary": summary,
        "imports": imports,
        "goal_s": GOAL_S,
        "meets_goal": summary["help"]["median_wall_s"] <= GOAL_S
        and summary["ingest_fixed_s"] <= GOAL_S,
        "load1": round(os.getloadavg()[0], 2),
        "at": datetime.now(UTC).isoformat(),
    }
    out = ROOT / "bench" / "results" / "startup.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"meets_goal {result['meets_goal']}\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
