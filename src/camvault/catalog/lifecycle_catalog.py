"""Catalog reads and writes of the lifecycle mirror (retention sync, tombstones, restores).

Named queries from ``lifecycle.sql``; all I/O through the ``Connector`` passed in.
``acting_user`` is passed through to the connector so the API's calls run under
row-level security: a user can only restore, and only see the restore state of, what a
grant lets them see.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from camvault.catalog.connector import Connector, Row
from camvault.catalog.queries import query

_FILE = "lifecycle.sql"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def q(name: str) -> str:
    return query(name, _FILE)


class LifecycleCatalog:
    """The lifecycle mirror on a ``Connector``: live rows per camera for retention sync, storage-
    class updates, tombstones, and restore requests/progress."""

    def __init__(self, connector: Connector) -> None:
        self._db = connector

    # retention sync ----------------------------------------------------------------------
    def cameras(self, bucket: str) -> list[str]:
        with self._db.transaction() as s:
            rows = s.fetchall(q("cameras_with_live_recordings"), {"s3_bucket": bucket})
        return [str(r["id"]) for r in rows]

    def live_recordings(self, bucket: str, camera_id: str, page: int = 1000) -> Iterator[Row]:
        after: tuple[datetime, int] = (_EPOCH, 0)
        while True:
            with self._db.transaction() as s:
                rows = s.fetchall(
                    q("live_recordings_page"),
                    {
                        "camera_id": camera_id,
                        "s3_bucket": bucket,
                        "after_start": after[0],
                        "after_id": after[1],
                        "limit": page,
                    },
                )
            yield from rows
            if len(rows) < page:
                return
            after = (rows[-1]["start_time"], rows[-1]["id"])

    def update_states(self, updates: Sequence[dict[str, Any]]) -> None:
        if not updates:
            return
        with self._db.transaction() as s:
            for u in updates:
                s.execute(q("update_lifecycle_state"), u)

    def tombstone(
        self,
        rec: Row,
        *,
        reason: str,
        at: datetime,
        expires_at: datetime | None,
    ) -> bool:
        with self._db.transaction() as s:
            row = s.fetchone(
                q("tombstone_recording"),
                {
                    "id": rec["id"],
                    "start_time": rec["start_time"],
                    "reason": reason,
                    "deleted_at": at,
                    "expires_at": expires_at,
                },
            )
        return row is not None

    # restores ----------------------------------------------------------------------------
    def recording(self, recording_id: int, *, acting_user: int | None = None) -> Row | None:
        with self._db.transaction(acting_user=acting_user) as s:
            row: Row | None = s.fetchone(q("get_recording_with_restore"), {"id": recording_id})
        return row

    def save_restore(
        self,
        rec: Row,
        *,
        status: str,
        tier: str,
        days: int,
        at: datetime,
        restored_until: datetime | None,
        detail: str,
        audit: dict[str, Any],
        acting_user: int | None = None,
    ) -> None:
        """The restore row and its audit entry, in one transaction."""
        with self._db.transaction(acting_user=acting_user) as s:
            s.execute(
                q("upsert_restore"),
                {
                    "recording_id": rec["id"],
                    "recording_start": rec["start_time"],
                    "camera_id": rec["camera_id"],
                    "s3_bucket": rec["s3_bucket"],
                    "s3_key": rec["s3_key"],
                    "status": status,
                    "tier": tier,
                    "days": days,
                    "requested_by": acting_user,
                    "at": at,
                    "restored_until": restored_until,
                    "detail": detail,
                },
            )
            s.execute(q("insert_audit"), _audit_params(rec, audit))

    def set_restore_status(
        self,
        rec: Row,
        *,
        status: str,
        restored_until: datetime | None,
        at: datetime,
        detail: str | None = None,
        audit: dict[str, Any] | None = None,
        acting_user: int | None = None,
    ) -> None:
        """A restore's new state (``detail`` kept when None) and its audit entry, in one
        transaction."""
        with self._db.transaction(acting_user=acting_user) as s:
            s.execute(
                q("update_restore_status"),
                {
                    "recording_id": rec["id"],
                    "recording_start": rec["start_time"],
                    "status": status,
                    "restored_until": restored_until,
                    "at": at,
                    "detail": detail,
                },
            )
            if audit is not None:
                s.execute(q("insert_audit"), _audit_params(rec, audit))

    def pending_restores(self, now: datetime, limit: int = 1000) -> list[Row]:
        with self._db.transaction() as s:
            rows: list[Row] = s.fetchall(q("pending_restores"), {"now": now, "limit": limit})
        return rows

    def audit(self, rec: Row | None, audit: dict[str, Any], acting_user: int | None = None) -> None:
        with self._db.transaction(acting_user=acting_user) as s:
            s.execute(q("insert_audit"), _audit_params(rec, audit))


def _audit_params(rec: Row | None, audit: dict[str, Any]) -> dict[str, Any]:
    rec = rec or {}
    return {
        "user_id": audit.get("user_id"),
        "user_name": audit.get("user_name", ""),
        "actor": audit.get("actor", "system"),
        "action": audit["action"],
        "camera_id": rec.get("camera_id"),
        "recording_id": rec.get("id", rec.get("recording_id")),
        "recording_start": rec.get("start_time", rec.get("recording_start")),
        "s3_key": rec.get("s3_key"),
        "client_addr": audit.get("client_addr"),
        "user_agent": (audit.get("user_agent") or "")[:512] or None,
        "detail": json.dumps(audit.get("detail", {}), default=str),
    }
