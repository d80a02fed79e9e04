"""The spool's scheduling after an endpoint outage, and the attempt journal (real SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from camvault.attempt_log import AttemptJournal
from camvault.catalog.attempts import AttemptRecord
from camvault.spool import Spool
from tests.support.spool import new_segment, stored_object

LATER = datetime.now(UTC) + timedelta(hours=1)


def test_clearing_endpoint_holds_keeps_segment_specific_delays(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    outage = spool.admit(new_segment(tmp_path, "a.mp4", 0))
    own = spool.admit(new_segment(tmp_path, "b.mp4", 5))
    assert spool.claim() is not None and spool.claim() is not None
    for seg, hold in ((outage, "endpoint"), (own, None)):
        spool.release(seg.id, error="x", next_attempt_at=LATER, round_exhausted=True, hold=hold)
    assert spool.claim() is None  # both wait

    assert spool.clear_holds("endpoint") == 1
    assert spool.get(outage.id).next_attempt_at is None
    assert spool.get(own.id).next_attempt_at == LATER
    claimed = spool.claim()
    assert claimed is not None and claimed.id == outage.id
    assert spool.claim() is None  # the segment's own backoff stands
    assert spool.clear_holds("endpoint") == 0


def test_deferred_commits_become_due_at_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    seg = spool.admit(new_segment(tmp_path, "a.mp4"))
    assert spool.claim() is not None
    spool.mark_uploaded(seg.id, stored_object(seg.s3_key))
    spool.defer_commit(seg.id, error="down", delay=lambda n: 3600)
    assert spool.due_commits() == []
    assert spool.commits_due_now() == 1
    assert [s.id for s in spool.due_commits()] == [seg.id]


def _rec(attempt: int) -> AttemptRecord:
    return AttemptRecord(
        camera_id="cam",
        segment_id="s1",
        s3_key="cam/a.mp4",
        round=1,
        attempt=attempt,
        error_class="network",
        error_code="ConnectionClosedError",
        message="cut",
        bytes_sent=None,
        node="n",
        occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
    )


def test_attempt_journal_keeps_rows_until_their_final_outcome_is_synced(tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    j = AttemptJournal(tmp_path / "spool")
    j.add(_rec(1))
    j.add(_rec(1))  # a replay is one row
    j.add(_rec(2))
    rows = j.unsynced()
    assert [(r.attempt, r.round_outcome, v) for r, v in rows] == [
        (1, "pending", 1),
        (2, "pending", 1),
    ]
    for r, v in rows:  # PostgreSQL has them, still pending: kept, not resent
        j.synced(r, v)
    assert j.unsynced() == []
    assert j.end_round("s1", "succeeded", datetime.now(UTC)) == 2
    rows = j.unsynced()
    assert [(r.attempt, r.round_outcome, v) for r, v in rows] == [
        (1, "succeeded", 2),
        (2, "succeeded", 2),
    ]
    j.synced(rows[0][0], 1)  # a stale version (changed while flushing) is not forgotten
    assert j.count_unsynced() == 2
    for r, v in rows:
        j.synced(r, v)
    assert j.count_unsynced() == 0 and j.unsynced() == []
    assert j.end_round(None, "interrupted", datetime.now(UTC)) == 0  # rows are gone
    j.close()
