"""The recorder's reports in the catalog: runs, camera status ("offline since …"), gaps.

Implements ``camvault.recorder.RunLog`` on a ``Connector``; queries in ``recorder.sql``.
"""

from __future__ import annotations

from datetime import datetime

from camvault.catalog.connector import Connector, Row
from camvault.catalog.queries import query

_SQL = "recorder.sql"


class CatalogRunLog:
    """The recorder's ``RunLog`` on a ``Connector``: runs started/ended, camera status and recorded
    gaps, attributed to ``node``."""

    def __init__(self, connector: Connector, node: str) -> None:
        self._db = connector
        self._node = node

    def run_started(self, camera_id: str, run_id: str, at: datetime) -> None:
        params = {"run_id": run_id, "camera_id": camera_id, "node": self._node, "at": at}
        with self._db.transaction() as s:
            s.execute(query("run_started", _SQL), params)
            s.execute(query("set_camera_status", _SQL), self._status(camera_id, "recording", at))

    def run_ended(
        self, camera_id: str, run_id: str, at: datetime, reason: str, segments: int, size: int
    ) -> None:
        params = {
            "run_id": run_id,
            "camera_id": camera_id,
            "node": self._node,
            "at": at,
            "reason": reason[:500],
            "segments": segments,
            "size": size,
        }
        with self._db.transaction() as s:
            s.execute(query("run_ended", _SQL), params)

    def camera_offline(self, camera_id: str, since: datetime, reason: str) -> None:
        with self._db.transaction() as s:
            s.execute(
                query("set_camera_status", _SQL),
                self._status(camera_id, "offline", since, reason),
            )

    def statuses(self) -> list[Row]:
        with self._db.transaction() as s:
            rows: list[Row] = s.fetchall(query("camera_status", _SQL))
        return rows

    def gaps(self, camera_id: str) -> list[Row]:
        with self._db.transaction() as s:
            rows: list[Row] = s.fetchall(query("recording_gaps", _SQL), {"camera_id": camera_id})
        return rows

    def _status(self, camera_id: str, state: str, since: datetime, detail: str = "") -> Row:
        return {
            "camera_id": camera_id,
            "state": state,
            "since": since,
            "detail": detail[:500],
            "node": self._node,
        }
