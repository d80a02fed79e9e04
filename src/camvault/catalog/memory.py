"""An in-memory twin of the PostgreSQL ``Connector`` for unit tests.

Modelled on procrastinate's ``InMemoryConnector``: the real facades (``Catalog``,
``AttemptCatalog``, ``LifecycleCatalog``) run unchanged and send their named queries here;
the twin maps each statement's text back to its query name and answers it with the
method ``_q_<name>`` over plain dict tables. So a unit test exercises the facade's
translation too, and asserts the rows it left (``recordings``, ``restores``,
``audit_log``, …), not calls.

What it keeps of PostgreSQL (what the pipeline, reconciler, retention sync and restore
logic rely on): ``ON CONFLICT`` on the real unique keys, the foreign key from recordings
to cameras (``IntegrityViolation`` 23503 → ``UnknownCamera``), the CHECKs a row can
trip (23514), and a transaction that rolls back on error. Row-level security is not
emulated; ``statements`` records each query with the ``acting_user`` it ran under.

``fault(name)`` is called before every statement: raise ``CatalogUnavailable`` from it to
take PostgreSQL down. A query the twin does not know raises ``NotImplementedError`` naming
it: add a method rather than let a test pass on a silent no-op.

Kept honest by ``tests/integration/test_catalog_twin_contract.py`` (the same calls
against PostgreSQL).
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from camvault.catalog.connector import Params, Row
from camvault.catalog.queries import load
from camvault.errors import IntegrityViolation

_FILES = ("queries.sql", "attempts.sql", "lifecycle.sql", "reconcile.sql")
_TABLES = ("cameras", "recordings", "upload_errors", "upload_attempts", "restores", "audit_log")
_CHECK = "23514"
_RESTORE_STATUSES = ("requested", "in_progress", "restored", "expired", "failed")
_LIVE_COLUMNS = (
    "id",
    "start_time",
    "camera_id",
    "s3_bucket",
    "s3_key",
    "size_bytes",
    "storage_class",
    "created_at",
    "expected_storage_class",
    "archive_class",
    "archive_at",
    "expires_at",
)
_PENDING_COLUMNS = (
    "recording_id",
    "recording_start",
    "camera_id",
    "s3_bucket",
    "s3_key",
    "status",
    "tier",
    "days",
    "requested_by",
    "requested_at",
    "restored_until",
)

Fault = Callable[[str], None]


def _statements() -> dict[str, str]:
    out: dict[str, str] = {}
    for filename in _FILES:
        for name, sql in load(filename).items():
            out.setdefault(sql, name)
    return out


class _Session:
    def __init__(self, db: MemoryConnector, acting_user: int | None) -> None:
        self._db = db
        self._user = acting_user

    def execute(self, sql: str, params: Params | None = None) -> None:
        self._db.run(sql, params or {}, self._user)

    def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        rows = self._db.run(sql, params or {}, self._user)
        return rows[0] if rows else None

    def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        return self._db.run(sql, params or {}, self._user)


class MemoryConnector:
    """Implements ``catalog.connector.Connector`` over dicts (see the module doc)."""

    def __init__(
        self,
        *,
        fault: Fault | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.fault = fault
        self.clock = clock
        self.cameras: dict[str, Row] = {}
        self.recordings: dict[int, Row] = {}
        self.upload_errors: list[Row] = []
        self.upload_attempts: dict[tuple[str, int], Row] = {}
        self.restores: dict[tuple[int, datetime], Row] = {}
        self.audit_log: list[Row] = []
        self.statements: list[tuple[str, int | None]] = []  # (query name, acting_user)
        self._ids = itertools.count(1)
        self._names = _statements()
        self._lock = threading.RLock()  # one transaction at a time: serializable for free

    @contextmanager
    def transaction(self, *, acting_user: int | None = None) -> Iterator[_Session]:
        with self._lock:
            before = {t: copy.deepcopy(getattr(self, t)) for t in _TABLES}
            try:
                yield _Session(self, acting_user)
            except BaseException:
                for table, rows in before.items():
                    setattr(self, table, rows)
                raise

    def close(self) -> None:
        pass

    def run(self, sql: str, params: Params, acting_user: int | None) -> list[Row]:
        name = self._names.get(sql.strip())
        if name is None:
            raise NotImplementedError(f"MemoryConnector does not know this SQL: {sql[:80]!r}")
        self.statements.append((name, acting_user))
        if self.fault is not None:
            self.fault(name)
        method: Callable[[Params], list[Row]] | None = getattr(self, f"_q_{name}", None)
        if method is None:
            raise NotImplementedError(f"MemoryConnector has no query {name!r} yet")
        return [dict(r) for r in method(params)]  # callers get copies, as from a cursor

    def names(self) -> list[str]:
        """The query names run so far, in order."""
        return [name for name, _ in self.statements]

    # cameras (queries.sql) --------------------------------------------------------------
    def _q_upsert_camera(self, p: Params) -> list[Row]:
        row = self.cameras.setdefault(p["id"], {"id": p["id"], "created_at": self.clock()})
        row.update(name=p["name"], segment_seconds=p["segment_seconds"], enabled=p["enabled"])
        return [row]

    def _q_get_camera(self, p: Params) -> list[Row]:
        return [self.cameras[p["id"]]] if p["id"] in self.cameras else []

    def _q_list_cameras(self, p: Params) -> list[Row]:
        return [self.cameras[k] for k in sorted(self.cameras)]

    # recordings (queries.sql) -----------------------------------------------------------
    def _q_ensure_partition(self, p: Params) -> list[Row]:
        ts = p["ts"].astimezone(UTC)
        return [{"name": f"recordings_{ts:%Y_%m}"}]

    def _q_insert_recording(self, p: Params) -> list[Row]:
        if p["camera_id"] not in self.cameras:
            raise IntegrityViolation(
                'insert or update on table "recordings" violates foreign key constraint '
                '"recordings_camera_id_fkey"',
                "23503",
            )
        _check(p["size_bytes"] > 0, "size_bytes > 0")
        _check(p["duration_seconds"] >= 0, "duration_seconds >= 0")
        _check(p["end_time"] >= p["start_time"], "end_time >= start_time")
        _check(p["end_time"] <= p["start_time"] + timedelta(hours=6), "recordings_max_length")
        for r in self.recordings.values():
            if (r["camera_id"], r["start_time"]) == (p["camera_id"], p["start_time"]) or (
                r["s3_bucket"],
                r["s3_key"],
                r["start_time"],
            ) == (p["s3_bucket"], p["s3_key"], p["start_time"]):
                return []  # ON CONFLICT DO NOTHING
        rid = next(self._ids)
        self.recordings[rid] = {
            **p,
            "id": rid,
            "created_at": self.clock(),
            "deleted_at": None,
            "deleted_reason": None,
            "lifecycle_checked_at": None,
        }
        return [{"id": rid}]

    def _q_get_recording_at(self, p: Params) -> list[Row]:
        return [
            r
            for r in self.recordings.values()
            if r["camera_id"] == p["camera_id"] and r["start_time"] == p["start_time"]
        ]

    def _q_get_recording_by_key(self, p: Params) -> list[Row]:
        return [
            r
            for r in self.recordings.values()
            if r["s3_bucket"] == p["s3_bucket"] and r["s3_key"] == p["s3_key"]
        ]

    # upload errors and attempts (queries.sql, attempts.sql) -----------------------------
    def _q_insert_upload_error(self, p: Params) -> list[Row]:
        if not any(
            (e["segment_id"], e["attempts"]) == (p["segment_id"], p["attempts"])
            for e in self.upload_errors
        ):
            self.upload_errors.append({**p, "id": next(self._ids)})
        return []

    def _q_list_upload_errors(self, p: Params) -> list[Row]:
        rows = [e for e in self.upload_errors if p["camera_id"] in (None, e["camera_id"])]
        return sorted(rows, key=lambda e: e["occurred_at"], reverse=True)[: p["limit"]]

    def _q_upsert_attempt(self, p: Params) -> list[Row]:
        key = (p["segment_id"], p["attempt"])
        row = self.upload_attempts.get(key)
        if row is None:
            self.upload_attempts[key] = {**p, "id": next(self._ids)}
        elif p["round_outcome"] != "pending":
            row.update(round_outcome=p["round_outcome"], round_ended_at=p["round_ended_at"])
        return []

    def _q_recent_attempts(self, p: Params) -> list[Row]:
        rows = [
            a for a in self.upload_attempts.values() if p["camera_id"] in (None, a["camera_id"])
        ]
        rows.sort(key=lambda a: (a["occurred_at"], a["id"]), reverse=True)
        return rows[: p["limit"]]

    def _q_ping(self, p: Params) -> list[Row]:
        return [{"ok": 1}]

    # reconciler (reconcile.sql) ---------------------------------------------------------
    def _q_recon_rows_page(self, p: Params) -> list[Row]:
        rows = sorted(
            (
                r
                for r in self.recordings.values()
                if r["camera_id"] == p["camera_id"]
                and r["s3_bucket"] == p["bucket"]
                and r["s3_key"].startswith(p["prefix"])
                and r["start_time"] > p["after"]
            ),
            key=lambda r: r["start_time"],
        )
        return [{"s3_key": r["s3_key"], "start_time": r["start_time"]} for r in rows][: p["limit"]]

    # retention sync (lifecycle.sql) -----------------------------------------------------
    def _live(self, bucket: str) -> Iterator[Row]:
        return (
            r
            for r in self.recordings.values()
            if r["s3_bucket"] == bucket and r["deleted_at"] is None
        )

    def _q_cameras_with_live_recordings(self, p: Params) -> list[Row]:
        live = {r["camera_id"] for r in self._live(p["s3_bucket"])}
        return [{"id": c} for c in sorted(self.cameras) if c in live]

    def _q_live_recordings_page(self, p: Params) -> list[Row]:
        after = (p["after_start"], p["after_id"])
        rows = sorted(
            (
                r
                for r in self._live(p["s3_bucket"])
                if r["camera_id"] == p["camera_id"] and (r["start_time"], r["id"]) > after
            ),
            key=lambda r: (r["start_time"], r["id"]),
        )
        return [{c: r.get(c) for c in _LIVE_COLUMNS} for r in rows[: p["limit"]]]

    def _recording(self, p: Params, id_key: str, start_key: str) -> Row | None:
        r = self.recordings.get(p[id_key])
        return r if r is not None and r["start_time"] == p[start_key] else None

    def _q_update_lifecycle_state(self, p: Params) -> list[Row]:
        r = self._recording(p, "id", "start_time")
        if r is not None:
            r.update({k: p[k] for k in ("storage_class", "expected_storage_class")})
            r.update({k: p[k] for k in ("archive_class", "archive_at", "expires_at")})
            r["lifecycle_checked_at"] = p["checked_at"]
        return []

    def _q_tombstone_recording(self, p: Params) -> list[Row]:
        r = self._recording(p, "id", "start_time")
        if r is None or r["deleted_at"] is not None:
            return []
        _check(p["reason"] in ("expired", "vanished"), "deleted_reason")
        r.update(deleted_at=p["deleted_at"], deleted_reason=p["reason"])
        r["expires_at"] = p["expires_at"] if p["expires_at"] is not None else r["expires_at"]
        r["lifecycle_checked_at"] = p["deleted_at"]
        return [{"id": r["id"]}]

    # restores (lifecycle.sql) -----------------------------------------------------------
    def _q_get_recording_with_restore(self, p: Params) -> list[Row]:
        r = self.recordings.get(p["id"])
        if r is None:
            return []
        s = self.restores.get((r["id"], r["start_time"]), {})
        return [
            {
                **r,
                "restore_status": s.get("status"),
                "restore_tier": s.get("tier"),
                "restore_days": s.get("days"),
                "restore_requested_at": s.get("requested_at"),
                "restore_until": s.get("restored_until"),
                "restore_requested_by": s.get("requested_by"),
            }
        ]

    def _q_upsert_restore(self, p: Params) -> list[Row]:
        _check(p["status"] in _RESTORE_STATUSES, "restores_status_check")
        _check(p["tier"] in ("Expedited", "Standard", "Bulk"), "restores_tier_check")
        _check(p["days"] >= 1, "restores_days_check")
        key = (p["recording_id"], p["recording_start"])
        self.restores[key] = {
            **{k: p[k] for k in _PENDING_COLUMNS if k in p},
            "requested_at": p["at"],
            "checked_at": p["at"],
            "detail": p["detail"],
        }
        return []

    def _q_update_restore_status(self, p: Params) -> list[Row]:
        s = self.restores.get((p["recording_id"], p["recording_start"]))
        if s is None:
            return []
        _check(p["status"] in _RESTORE_STATUSES, "restores_status_check")
        s.update(status=p["status"], restored_until=p["restored_until"], checked_at=p["at"])
        if p["detail"] is not None:
            s["detail"] = p["detail"]
        return [{"status": s["status"]}]

    def _q_pending_restores(self, p: Params) -> list[Row]:
        rows = [
            s
            for s in self.restores.values()
            if s["status"] in ("requested", "in_progress")
            or (
                s["status"] == "restored"
                and s["restored_until"] is not None
                and s["restored_until"] <= p["now"]
            )
        ]
        rows.sort(key=lambda s: s["requested_at"])
        return [{c: s.get(c) for c in _PENDING_COLUMNS} for s in rows[: p["limit"]]]

    def _q_insert_audit(self, p: Params) -> list[Row]:
        row = {**p, "id": next(self._ids), "at": self.clock()}
        row["detail"] = json.loads(p["detail"])  # jsonb: read back as a value
        self.audit_log.append(row)
        return []


def _check(ok: bool, constraint: str) -> None:
    if not ok:
        raise IntegrityViolation(f'new row violates check constraint "{constraint}"', _CHECK)
