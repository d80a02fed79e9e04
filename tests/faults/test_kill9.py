"""Crash safety: SIGKILL the worker at a random point of ingest → upload → commit, restart
it, and check that every segment is in S3 and in the catalog exactly once.

Each trial kills a real ``python -m tests.faults.worker`` process — either right after a
randomly chosen step it reports (``ingested``/``uploaded``/``committed`` of some segment,
plus a few milliseconds of jitter) or after a random delay — then runs the same worker
code again (the restart) and asserts: 0 lost, 0 duplicate rows, 0 orphans (objects
without a row), 0 leftover multipart parts, nothing left in the spool or the inbox.
Every trial includes one segment large enough for a multipart upload.

``CAMVAULT_TEST_KILL9_TRIALS`` sets the number of trials (default 20);
``CAMVAULT_TEST_KILL9_SEED`` replays a run.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from camvault.config import Settings
from camvault.keys import object_key
from tests.faults import worker
from tests.media import make_big_h264, make_h264

ROOT = Path(__file__).resolve().parents[2]
TRIALS = int(os.environ.get("CAMVAULT_TEST_KILL9_TRIALS", "20"))
SEED = int(os.environ.get("CAMVAULT_TEST_KILL9_SEED", str(random.randrange(1 << 30))))
T0 = datetime(2025, 6, 1, 0, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("kill9-media")
    small = [make_h264(d / f"s{i}.mp4", seconds=1.0 + i / 5) for i in range(3)]
    return [*small, make_big_h264(d / "big.mp4")]


class Trial:
    def __init__(self, n: int, base: Settings, tmp: Path, media: list[Path]) -> None:
        self.camera = f"k9-{n:03d}"
        self.dir = tmp / self.camera
        self.inbox = self.dir / "inbox"
        self.inbox.mkdir(parents=True)
        self.settings = base.model_copy(
            update={
                "spool": base.spool.model_copy(update={"dir": self.dir / "spool"}),
                "data_dir": self.dir / "data",
            }
        )
        self.expected: dict[str, str] = {}  # key → sha256
        for i, src in enumerate(media):
            start = T0 + timedelta(hours=n, minutes=5 * i)
            name = f"{self.camera}_{start:%Y%m%dT%H%M%S}Z.mp4"
            shutil.copy(src, self.inbox / name)
            key = object_key(base.s3.prefix, self.camera, start, "mp4")
            self.expected[key] = hashlib.sha256(src.read_bytes()).hexdigest()

    def events(self) -> int:
        return 1 + 3 * len(self.expected)  # start + ingested/uploaded/committed each


def _kill_run(trial: Trial, rng: random.Random) -> str:
    """Start the worker, SIGKILL it per a random plan; describe what happened."""
    cfg = trial.dir / "settings.json"
    cfg.write_text(trial.settings.model_dump_json())
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.worker", str(cfg), str(trial.inbox), trial.camera],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    if rng.random() < 0.25:
        plan = f"after {rng.uniform(0.2, 1.5):.2f} s"
        timer = threading.Timer(float(plan.split()[1]), proc.send_signal, (signal.SIGKILL,))
        timer.start()
        seen = [line.split()[0] for line in proc.stdout if line.strip()]
        timer.cancel()
    else:
        target = rng.randrange(trial.events())
        jitter = rng.uniform(0, 0.03)
        seen = []
        for line in proc.stdout:
            if not line.strip():
                continue
            seen.append(line.split()[0])
            if len(seen) > target:
                time.sleep(jitter)
                proc.send_signal(signal.SIGKILL)
                break
        plan = f"after event #{target} ({seen[-1] if seen else '-'}) + {jitter * 1000:.0f} ms"
    proc.wait()
    proc.stdout.close()
    killed = proc.returncode == -signal.SIGKILL
    return f"{plan}: {'killed' if killed else 'finished first'} after {len(seen)} event(s)"


def _check(trial: Trial, s3: Any, db_url: str) -> None:
    bucket = trial.settings.s3.bucket
    prefix = f"{trial.settings.s3.prefix}{trial.camera}/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    assert sorted(o["Key"] for o in listed) == sorted(trial.expected), "lost or orphaned object"
    for key, digest in trial.expected.items():
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest, f"{key}: wrong bytes"
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT s3_key, checksum FROM recordings WHERE camera_id = %s", (trial.camera,)
        ).fetchall()
    assert len(rows) == len({k for k, _ in rows}), "duplicate rows"
    assert dict(rows) == trial.expected, "lost rows or rows without objects"
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    assert uploads == [], "leftover multipart parts"
    assert list(trial.inbox.iterdir()) == [], "file left behind in the inbox"
    seg_dir = trial.settings.spool.dir / "segments"
    assert [p for p in seg_dir.rglob("*") if p.is_file()] == [], "file left in the spool"
    assert not any(trial.settings.spool.quarantine.rglob("*.*")), "file quarantined"


@pytest.fixture
def base_settings(make_settings: Any) -> Iterator[Settings]:
    yield make_settings(
        s3={
            "conditional_writes": "off",
            "multipart_threshold_mb": 5,
            "multipart_chunk_mb": 5,
            "transfer_concurrency": 2,
        },
        upload={"concurrency": 2},
    )


def test_sigkill_anywhere_loses_and_duplicates_nothing(
    base_settings: Settings, media: list[Path], s3: Any, db_url: str, tmp_path: Path
) -> None:
    from camvault.app import App

    rng = random.Random(SEED)
    with App.open(base_settings) as app:
        for n in range(TRIALS):
            app.catalog.upsert_camera(f"k9-{n:03d}")
    log = []
    for n in range(TRIALS):
        trial = Trial(n, base_settings, tmp_path, media)
        what = _kill_run(trial, rng)
        log.append(f"trial {n}: {what}")
        worker.run(trial.settings, trial.inbox, trial.camera, lambda kind, detail: None)
        try:
            _check(trial, s3, db_url)
        except AssertionError as exc:
            raise AssertionError(f"seed {SEED}, trial {n} ({what}): {exc}") from exc
    print("\n".join([f"seed {SEED}", *log]))
