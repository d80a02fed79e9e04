"""``upload_attempts`` (migration 0006): every failed upload attempt and its round's outcome.

Written by the pipeline through the local journal (``camvault.attempt_log``) so that an
attempt made while PostgreSQL is down still lands later, once. Read by ``camvault status``
(service connection) and ``GET /api/upload-errors`` (as the API role, admins only by RLS).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

from camvault.catalog.connector import Connector, Row
from camvault.catalog.queries import query

_SQL = "attempts.sql"

Outcome = Literal["pending", "succeeded", "failed", "interrupted"]
OUTCOMES: tuple[Outcome, ...] = ("pending", "succeeded", "failed", "interrupted")


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One failed upload attempt, as journaled by the pipeline and upserted into
    ``upload_attempts``."""

    camera_id: str
    segment_id: str
    s3_key: str
    round: int  # 1-based round of retries this attempt belonged to
    attempt: int  # cumulative attempt number of the segment (1-based)
    error_class: str  # network, s3:<Code>, conflict, … (``retry.error_class``)
    error_code: str  # the S3 error code or the exception type
    message: str
    bytes_sent: int | None  # body bytes handed to the connection; None = unknown
    node: str
    occurred_at: datetime
    round_outcome: Outcome = "pending"
    round_ended_at: datetime | None = None


class AttemptCatalog:
    """``upload_attempts`` on a ``Connector``: upsert journaled attempts, read them back for status
    and the API, and ``ping`` for the PostgreSQL breaker."""

    def __init__(self, connector: Connector) -> None:
        self._db = connector

    def upsert(self, rec: AttemptRecord) -> None:
        params = asdict(rec)
        params["message"] = rec.message[:2000]
        with self._db.transaction() as s:
            s.execute(query("upsert_attempt", _SQL), params)

    def ping(self) -> None:
        """``SELECT 1``: the PostgreSQL circuit breaker's probe."""
        with self._db.transaction() as s:
            s.fetchone(query("ping", _SQL))

    def recent(
        self, *, camera_id: str | None = None, limit: int = 100, acting_user: int | None = None
    ) -> list[Row]:
        """Newest first. Through the API role only admins see rows (RLS)."""
        with self._db.transaction(acting_user=acting_user) as s:
            rows: list[Row] = s.fetchall(
                query("recent_attempts", _SQL), {"camera_id": camera_id, "limit": limit}
            )
        return rows

    def per_camera(self, since: datetime, *, acting_user: int | None = None) -> list[Row]:
        with self._db.transaction(acting_user=acting_user) as s:
            rows: list[Row] = s.fetchall(query("attempts_per_camera", _SQL), {"since": since})
        return rows
