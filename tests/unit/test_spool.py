"""The spool journal on a real SQLite file (local, no server involved)."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from camvault.errors import SpoolError
from camvault.models import SegmentState
from camvault.spool import _STEPS, SCHEMA_VERSION, Spool, digest_file
from tests.support.spool import new_segment, stored_object

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def test_admit_moves_file_and_records_digest(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    new = new_segment(tmp_path, "a.mp4", body=b"hello world")
    seg = spool.admit(new)
    assert not new.source.exists() and Path(seg.path).read_bytes() == b"hello world"
    assert seg.state is SegmentState.QUEUED
    assert seg.checksum == digest_file(Path(seg.path)).sha256_hex
    assert seg.size_bytes == 11


def test_full_lifecycle_deletes_file_only_when_committed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    seg = spool.admit(new_segment(tmp_path, "a.mp4"))
    claimed = spool.claim()
    assert claimed is not None and claimed.id == seg.id
    assert claimed.state is SegmentState.UPLOADING
    assert spool.claim() is None
    spool.mark_uploaded(seg.id, stored_object(seg.s3_key))
    assert Path(seg.path).exists(), "uploaded is not enough to delete"
    assert spool.due_commits() == [], "a commit in progress is not 'due' for housekeeping"
    assert [s.id for s in spool.due_commits(ignore_delay=True)] == [seg.id]
    spool.defer_commit(seg.id, error="db down", delay=lambda n: 0.0)
    assert [s.id for s in spool.due_commits()] == [seg.id]
    spool.mark_committed(seg.id)
    assert not Path(seg.path).exists()
    assert spool.stats()["pending"] == 0


def test_redrive_delay_is_respected_unless_draining(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    seg = spool.admit(new_segment(tmp_path, "a.mp4"))
    assert spool.claim() is not None
    later = datetime.now(UTC) + timedelta(hours=1)
    spool.release(seg.id, error="boom", next_attempt_at=later, round_exhausted=True)
    assert spool.claim() is None
    again = spool.claim(ignore_delay=True)
    assert again is not None and again.rounds == 1 and again.last_error == "boom"


def test_two_segments_with_one_key_never_upload_at_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.admit(new_segment(tmp_path, "a.mp4"))
    twin = new_segment(tmp_path, "b.mp4")
    spool.admit(dataclasses.replace(twin, s3_key="cam/a.mp4"))
    first = spool.claim()
    assert first is not None
    assert spool.claim() is None, "the twin waits until the first upload ends"
    spool.mark_uploaded(first.id, stored_object(first.s3_key))
    assert spool.claim() is not None


def test_recover_requeues_and_finishes_interrupted_work(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    a = spool.admit(new_segment(tmp_path, "a.mp4", 0))
    b = spool.admit(new_segment(tmp_path, "b.mp4", 5))
    assert spool.claim() is not None and spool.claim() is not None  # both "uploading"
    spool.mark_uploaded(b.id, stored_object(b.s3_key))
    spool.close()
    again = Spool(tmp_path / "spool")  # a new process after a crash
    fixed = again.recover()
    assert fixed["uploading"] == 1
    assert again.get(a.id).state is SegmentState.QUEUED
    assert again.get(b.id).state is SegmentState.UPLOADED
    assert [s.id for s in again.due_commits()] == [b.id], "a cut-off commit is due at once"


def test_recover_deletes_the_file_of_a_commit_cut_off_before_the_unlink(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    done = spool.admit(new_segment(tmp_path, "a.mp4", 0))
    pending = spool.admit(new_segment(tmp_path, "b.mp4", 5))
    for seg in (done, pending):
        assert spool.claim() is not None
        spool.mark_uploaded(seg.id, stored_object(seg.s3_key), attempted=True)
    body = Path(done.path).read_bytes()
    spool.mark_committed(done.id)
    Path(done.path).write_bytes(body)  # as if killed between the commit and the unlink
    part = Path(done.path).with_name(Path(done.path).name + ".part")
    part.write_bytes(b"a copy in progress is not ours to delete")
    spool.close()
    again = Spool(tmp_path / "spool")
    assert again.recover()["committed_files"] == 1
    assert not Path(done.path).exists() and part.exists()
    assert Path(pending.path).exists(), "an uploaded, uncommitted segment keeps its file"
    assert again.get(pending.id).attempts == 1


def test_crash_during_staging_is_recovered(tmp_path: Path) -> None:
    """Kill a process right after the journal row, before the file move."""
    spool_dir = tmp_path / "spool"
    src = tmp_path / "in" / "a.mp4"
    src.parent.mkdir()
    src.write_bytes(b"payload")
    code = f"""
import os, signal
from datetime import datetime, timezone, timedelta
from pathlib import Path
import camvault.spool as sp
from camvault.spool import Spool, NewSegment
sp._move_durably = lambda s, d, **kw: os.kill(os.getpid(), signal.SIGKILL)
t = datetime(2026, 11, 20, tzinfo=timezone.utc)
Spool(Path({str(spool_dir)!r})).admit(NewSegment("cam", Path({str(src)!r}), t,
    t + timedelta(seconds=1), 1.0, "h264", 1, 1, "mp4", "cam/a.mp4"))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=60, env={**os.environ}
    )
    assert proc.returncode == -9, proc.stderr
    spool = Spool(spool_dir)
    assert [s.state for s in spool.segments()] == [SegmentState.STAGING]
    assert spool.recover()["staging"] == 1
    (seg,) = spool.segments()
    assert seg.state is SegmentState.QUEUED and Path(seg.path).read_bytes() == b"payload"
    assert not src.exists()


def test_segment_and_quarantine_ids_are_uuid4_hex(tmp_path: Path) -> None:
    import uuid

    spool = Spool(tmp_path / "spool")
    ids = [spool.admit(new_segment(tmp_path, f"{i}.mp4", body=b"x")).id for i in range(8)]
    assert len(set(ids)) == 8
    for seg_id in ids:
        u = uuid.UUID(hex=seg_id)
        assert u.hex == seg_id and u.version == 4 and u.variant == uuid.RFC_4122
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00")
    qid, _, name = spool.quarantine(bad, "not a video container").name.partition("_")
    assert name == "bad.mp4" and len(qid) == 12 and set(qid) <= set("0123456789abcdef")


def test_quarantine_keeps_the_file_and_the_reason(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 10)
    dest = spool.quarantine(bad, "not a video container", camera_id="cam")
    assert dest.read_bytes() == b"\x00" * 10 and not bad.exists()
    reason = json.loads(Path(str(dest) + ".reason.json").read_text())
    assert reason["reason"] == "not a video container" and reason["original_path"] == str(bad)
    assert spool.quarantined()[0]["reason"] == "not a video container"


def test_one_uploader_per_spool(tmp_path: Path) -> None:
    a, b = Spool(tmp_path / "spool"), Spool(tmp_path / "spool")
    a.lock_for_upload()
    with pytest.raises(SpoolError, match="another camvault uploader"):
        b.lock_for_upload()
    a.close()
    b.lock_for_upload()  # released with the first owner
    b.close()


def test_locally_journaled_errors_round_trip(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.journal_error({"segment_id": "s", "attempts": 4})
    ((eid, payload),) = spool.pending_errors()
    assert payload == {"segment_id": "s", "attempts": 4}
    spool.drop_pending_error(eid)
    assert spool.pending_errors() == []


def test_overlong_file_is_quarantined_not_spooled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file longer than the catalog allows is refused at the door with a reason (a real
    6-hour video would be slow to make, so the probe result is substituted)."""
    import camvault.ingest as ingest_mod
    from camvault.models import MediaInfo

    long_media = MediaInfo(
        "h264", 640, 360, ingest_mod.MAX_RECORDING_SECONDS + 1.0, "mpegts", None, False, 10
    )
    monkeypatch.setattr(ingest_mod, "probe", lambda path: long_media)
    src = tmp_path / "long.ts"
    src.write_bytes(b"x" * 100)
    ingestor = ingest_mod.Ingestor(Spool(tmp_path / "spool"), lambda cam: True, prefix="")
    res = ingestor.ingest(src, "cam", start=T0)
    assert res.segment is None and res.reason and "longer than the 6 h" in res.reason
    assert res.quarantined_to is not None and res.quarantined_to.read_bytes() == b"x" * 100


def test_committed_rows_are_pruned_after_the_keep_period(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    old = spool.admit(new_segment(tmp_path, "old.mp4", 0))
    live = spool.admit(new_segment(tmp_path, "live.mp4", 5))
    spool.mark_uploaded(old.id, stored_object(old.s3_key))
    spool.mark_committed(old.id)
    assert spool.prune_committed(timedelta(days=7)) == 0, "committed just now: kept"
    assert spool.prune_committed(timedelta(seconds=-1)) == 1
    assert [s.id for s in spool.segments()] == [live.id], "only committed rows go"


def test_spool_and_quarantine_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """Footage is readable by camvault's user only: dirs 0700, files 0600, set explicitly
    (a permissive umask must not leak through)."""
    old = os.umask(0)
    try:
        spool = Spool(tmp_path / "spool")
        seg = spool.admit(new_segment(tmp_path, "a.mp4"))
        bad = tmp_path / "in" / "bad.mp4"
        bad.write_bytes(b"junk")
        os.chmod(bad, 0o666)
        q = spool.quarantine(bad, "not a video", camera_id="cam")
        spool.lock_for_upload()
    finally:
        os.umask(old)
    modes = {
        str(p.relative_to(tmp_path)): p.stat().st_mode & 0o777
        for p in [tmp_path / "spool", *(tmp_path / "spool").rglob("*")]
    }
    assert Path(seg.path).exists() and q.exists()
    assert str(Path(seg.path).relative_to(tmp_path)) in modes
    assert "spool/journal.sqlite3-wal" in modes  # the WAL too
    assert "spool/uploader.lock" in modes
    for name, mode in modes.items():
        is_dir = (tmp_path / name).is_dir()
        assert mode == (0o700 if is_dir else 0o600), (name, oct(mode))
    spool.close()


def test_new_journal_is_at_the_current_schema_version(tmp_path: Path) -> None:
    Spool(tmp_path / "spool").close()
    conn = sqlite3.connect(tmp_path / "spool" / "journal.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(segments)")}
    assert {"commit_attempts", "hold"} <= cols
    conn.close()


@pytest.mark.parametrize("legacy_columns", [0, 1, 2])
def test_journal_from_before_user_version_is_upgraded(tmp_path: Path, legacy_columns: int) -> None:
    """A journal written by older camvault (no user_version, 0-2 of the later columns) is
    brought to the current version, keeping its rows."""
    (tmp_path / "spool").mkdir()
    path = tmp_path / "spool" / "journal.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(_STEPS[0])
    for step in _STEPS[1 : 1 + legacy_columns]:
        conn.execute(step)
    conn.execute(
        "INSERT INTO segments (id, camera_id, source_path, path, start_time, end_time,"
        " duration_seconds, size_bytes, checksum_algorithm, checksum, codec, width, height,"
        " ext, s3_key, state, created_at, updated_at) VALUES ('old', 'cam', 's', 'p',"
        " 't0', 't1', 1.0, 5, 'sha256', 'c', 'h264', 1, 1, 'mp4', 'cam/old', 'queued',"
        " 't0', 't0')"
    )
    conn.close()
    Spool(tmp_path / "spool").close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("SELECT id, commit_attempts, hold FROM segments").fetchall() == [
        ("old", 0, None)
    ]
    conn.close()


def test_journal_from_a_newer_camvault_is_refused(tmp_path: Path) -> None:
    Spool(tmp_path / "spool").close()
    conn = sqlite3.connect(tmp_path / "spool" / "journal.sqlite3")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SpoolError, match="newer than this camvault"):
        Spool(tmp_path / "spool")
