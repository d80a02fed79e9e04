"""Alert de-duplication state in PostgreSQL, shared by every node and process.

``DedupingSink`` (``camvault.alerts``) kept "camera X is down, alerted at T, N suppressed
since" in process memory: each node, and each restart, alerted on its own. With this
store the decision is made under a row lock in the catalog, by the database clock, so a
fleet sends one alert per camera per interval whoever hits the failure.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from camvault.alerts import Alert
from camvault.catalog.connector import Connector
from camvault.catalog.queries import query

_SQL = "fleet.sql"


class PgAlertState:
    """Implements ``camvault.alerts.DedupeStore``."""

    def __init__(self, connector: Connector) -> None:
        self._db = connector

    def filter(self, alert: Alert, interval_seconds: float) -> Alert | None:
        """The alert to send (with ``extra.suppressed`` when alerts were held back), or
        None to suppress it. Conflicts always pass: each needs an operator."""
        if alert.kind not in ("upload_failed", "recovered"):
            return alert
        cam = {"camera_id": alert.camera_id}
        with self._db.transaction() as s:
            row = s.fetchone(query("alert_state_lock", _SQL), cam)
            if alert.kind == "recovered":
                if row is None:
                    return None  # the failure was never reported: nothing to recover from
                s.execute(query("alert_state_delete", _SQL), cam)
                return _with_suppressed(alert, row["suppressed"])
            if row is None:
                if s.fetchone(query("alert_state_insert", _SQL), cam) is not None:
                    return alert  # the first failure: alert now
                row = s.fetchone(query("alert_state_lock", _SQL), cam)  # another node won
                assert row is not None
            now: datetime = row["now"]
            if now - row["last_sent"] < timedelta(seconds=interval_seconds):
                s.execute(
                    query("alert_state_update", _SQL),
                    {**cam, "last_sent": row["last_sent"], "suppressed": row["suppressed"] + 1},
                )
                return None
            s.execute(query("alert_state_update", _SQL), {**cam, "last_sent": now, "suppressed": 0})
            return _with_suppressed(alert, row["suppressed"])

    def down_cameras(self) -> list[str]:
        with self._db.transaction() as s:
            return [r["camera_id"] for r in s.fetchall(query("alert_state_cameras", _SQL))]


def _with_suppressed(alert: Alert, n: int) -> Alert:
    return replace(alert, extra={**alert.extra, "suppressed": n})
