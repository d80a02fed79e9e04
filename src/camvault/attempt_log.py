"""Every failed upload attempt, journaled in the spool first and flushed to PostgreSQL.

The attempt is written to the spool's SQLite journal (its own table, its own connection)
*before* PostgreSQL is tried, so an attempt made while the catalog is down is not lost:
it is flushed when the catalog answers again. When the round ends, the rows of that round
get its outcome (``succeeded``/``failed``/``interrupted``) the same way. A row leaves the
local journal only once PostgreSQL holds its final outcome; the upsert is idempotent per
(segment, attempt), and a ``version`` guards against marking a row synced that changed
while it was being flushed.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from camvault.breaker import CircuitBreaker
from camvault.catalog.attempts import AttemptCatalog, AttemptRecord, Outcome
from camvault.errors import CamvaultError, CatalogUnavailable, SpoolError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS upload_attempts (
    segment_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    payload TEXT NOT NULL,
    outcome TEXT NOT NULL DEFAULT 'pending',
    ended_at TEXT,
    synced INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (segment_id, attempt)
);
CREATE INDEX IF NOT EXISTS upload_attempts_unsynced_idx ON upload_attempts (synced);
"""


def _now() -> datetime:
    return datetime.now(UTC)


class AttemptJournal:
    """The spool-side table (``journal.sqlite3`` in the spool directory)."""

    def __init__(self, spool_dir: Path) -> None:
        try:
            self._conn = sqlite3.connect(
                Path(spool_dir) / "journal.sqlite3",
                timeout=30,
                isolation_level=None,
                check_same_thread=False,
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise SpoolError(f"attempt journal in {spool_dir} unusable: {exc}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise SpoolError(f"attempt journal error: {exc}") from exc

    def add(self, rec: AttemptRecord) -> None:
        payload = json.dumps({**asdict(rec), "occurred_at": rec.occurred_at.isoformat()})
        with self._tx() as c:
            c.execute(
                "INSERT OR IGNORE INTO upload_attempts (segment_id, attempt, payload)"
                " VALUES (?, ?, ?)",
                (rec.segment_id, rec.attempt, payload),
            )

    def end_round(self, segment_id: str | None, outcome: Outcome, at: datetime) -> int:
        """Give the pending rows of a segment (all segments: None) their round's outcome."""
        where = "outcome='pending'" + ("" if segment_id is None else " AND segment_id=?")
        args: tuple[Any, ...] = (outcome, at.isoformat())
        if segment_id is not None:
            args += (segment_id,)
        with self._tx() as c:
            return c.execute(
                "UPDATE upload_attempts SET outcome=?, ended_at=?, synced=0,"  # noqa: S608
                f" version=version+1 WHERE {where}",
                args,
            ).rowcount

    def unsynced(self) -> list[tuple[AttemptRecord, int]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT payload, outcome, ended_at, version FROM upload_attempts"
                " WHERE synced=0 ORDER BY segment_id, attempt"
            ).fetchall()
        out = []
        for payload, outcome, ended_at, version in rows:
            p = json.loads(payload)
            p["occurred_at"] = datetime.fromisoformat(p["occurred_at"])
            rec = AttemptRecord(**{**p, "round_outcome": "pending", "round_ended_at": None})
            rec = replace(
                rec,
                round_outcome=outcome,
                round_ended_at=None if ended_at is None else datetime.fromisoformat(ended_at),
            )
            out.append((rec, int(version)))
        return out

    def synced(self, rec: AttemptRecord, version: int) -> None:
        """PostgreSQL holds this version: forget a final row, remember a pending one."""
        with self._tx() as c:
            if rec.round_outcome == "pending":
                c.execute(
                    "UPDATE upload_attempts SET synced=1 WHERE segment_id=? AND attempt=?"
                    " AND version=?",
                    (rec.segment_id, rec.attempt, version),
                )
            else:
                c.execute(
                    "DELETE FROM upload_attempts WHERE segment_id=? AND attempt=? AND version=?",
                    (rec.segment_id, rec.attempt, version),
                )

    def count_unsynced(self) -> int:
        with self._lock:
            return int(
                self._conn.execute(
                    "SELECT count(*) FROM upload_attempts WHERE synced=0"
                ).fetchone()[0]
            )


class AttemptLog:
    """Journal first, then PostgreSQL (unless its breaker is open); flush retries later."""

    def __init__(
        self, journal: AttemptJournal, catalog: AttemptCatalog, breaker: CircuitBreaker
    ) -> None:
        self.journal = journal
        self.catalog = catalog
        self.breaker = breaker
        self._flush_lock = threading.Lock()

    def failed(self, rec: AttemptRecord) -> None:
        self.journal.add(rec)
        self.flush()

    def round_ended(self, segment_id: str, outcome: Outcome) -> None:
        if self.journal.end_round(segment_id, outcome, _now()):
            self.flush()

    def interrupt_stale(self) -> int:
        """At start, before any worker runs: rounds still pending were cut off by a crash."""
        n = self.journal.end_round(None, "interrupted", _now())
        if n:
            self.flush()
        return n

    def flush(self) -> int:
        """Write unsynced rows to PostgreSQL; stops at the first sign it is down."""
        if self.breaker.is_open:
            return 0
        done = 0
        with self._flush_lock:  # two flushers would only write the same rows twice
            for rec, version in self.journal.unsynced():
                try:
                    self.catalog.upsert(rec)
                except CatalogUnavailable as exc:
                    self.breaker.failure("attempt-journal")
                    log.info("upload attempts stay journaled: %s", exc)
                    break
                except CamvaultError as exc:
                    # refused for good (a CHECK): keeping it would block the rows behind it
                    log.error("dropping journaled upload attempt %s: %s", rec, exc)
                self.breaker.success()
                self.journal.synced(rec, version)
                done += 1
        return done


class SentBytes:
    """Body bytes s3transfer reports as sent during one attempt (its callback may also
    report negative amounts when it rewinds a part; those are not "unsent" bytes)."""

    def __init__(self) -> None:
        self.total = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        if n > 0:
            with self._lock:
                self.total += n
