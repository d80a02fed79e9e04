"""Glacier restores: playback never pretends archived footage is instantly playable.

``RestoreService.playable`` is the gate before a presigned URL is issued: it HEADs the
object (the catalog may be a sync behind S3), and for an object in GLACIER/DEEP_ARCHIVE
without a readable restored copy raises ``ObjectArchived`` carrying its state (→ HTTP 409
with a restore link). ``request`` asks S3 for a restore (tier and days from
``[lifecycle]`` unless given) and records it; ``refresh`` / ``poll_pending`` follow
``x-amz-restore`` until the copy is readable, and again when it lapses. Every request and
every completion is written to ``audit_log`` in the same transaction as the state change;
a request is on record (``restore.request``, with the client's address and user agent)
before S3 is asked, and its outcome (``restore.accepted`` / ``restore.failed``) after.

Calls made for an API user pass ``acting_user`` down, so row-level security decides
which recordings they can see and restore.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from camvault.catalog.connector import Row
from camvault.catalog.lifecycle_catalog import LifecycleCatalog
from camvault.errors import InputError, NotFound, ObjectArchived
from camvault.glacier import ArchiveStore, ObjectState
from camvault.lifecycle import needs_restore

TIERS = ("Expedited", "Standard", "Bulk")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an API user (RLS applies) or the system / an operator (``user_id=None``).

    ``label`` is ``audit_log.actor``: ``user:<name>``, ``os:<login>`` or ``system``.
    """

    user_id: int | None = None
    user_name: str = ""
    label: str = "system"
    client_addr: str | None = None
    user_agent: str | None = None

    def audit(self, action: str, detail: dict[str, Any]) -> dict[str, Any]:
        return {
            "action": action,
            "user_id": self.user_id,
            "user_name": self.user_name,
            "actor": self.label,
            "client_addr": self.client_addr,
            "user_agent": self.user_agent,
            "detail": detail,
        }


SYSTEM = Actor()


@dataclass(frozen=True, slots=True)
class RestoreStatus:
    """A recording's restore state as the API and CLI show it."""

    recording_id: int
    storage_class: str
    status: str  # not_archived | archived | requested | in_progress | restored | expired
    tier: str | None = None
    days: int | None = None
    requested_at: datetime | None = None
    restored_until: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "recording_id": self.recording_id,
            "storage_class": self.storage_class,
            "status": self.status,
            "tier": self.tier,
            "days": self.days,
            "requested_at": self.requested_at.isoformat() if self.requested_at else None,
            "restored_until": self.restored_until.isoformat() if self.restored_until else None,
        }


class RestoreService:
    """Glacier restores for playback (see the module docstring): ``playable`` gates presigned URLs,
    ``request`` asks S3 for a restore, ``status``/``poll_pending`` follow it; all audited."""

    def __init__(
        self,
        catalog: LifecycleCatalog,
        archive: ArchiveStore,
        *,
        tier: str = "Standard",
        days: int = 7,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._catalog = catalog
        self._archive = archive
        self._tier = tier
        self._days = days
        self._now = clock

    def _recording(self, recording_id: int, actor: Actor) -> tuple[Row, ObjectState]:
        rec = self._catalog.recording(recording_id, acting_user=actor.user_id)
        if rec is None or rec["deleted_at"] is not None:
            raise NotFound(f"recording {recording_id} not found")
        obj = self._archive.head(rec["s3_key"])
        if obj is None:
            raise NotFound(
                f"recording {recording_id}: its object {rec['s3_key']} is no longer in storage"
            )
        return rec, obj

    def _status(self, rec: Row, obj: ObjectState) -> RestoreStatus:
        now = self._now()
        if not needs_restore(obj.storage_class):
            status = "not_archived"
        elif obj.restore is not None and obj.restore.ongoing:
            status = "in_progress"
        elif obj.restore is not None and (
            obj.restore.expires_at is None or obj.restore.expires_at > now
        ):
            status = "restored"
        elif rec.get("restore_status") in ("requested", "in_progress"):
            status = str(rec["restore_status"])  # asked, S3 does not show it yet
        elif rec.get("restore_status") == "failed":
            status = "archived"  # S3 refused the request: nothing is coming
        elif rec.get("restore_status") is not None:
            status = "expired"  # restored once, the copy has lapsed
        else:
            status = "archived"
        return RestoreStatus(
            recording_id=int(rec["id"]),
            storage_class=obj.storage_class,
            status=status,
            tier=rec.get("restore_tier"),
            days=rec.get("restore_days"),
            requested_at=rec.get("restore_requested_at"),
            restored_until=obj.restore.expires_at if obj.restore else rec.get("restore_until"),
        )

    def status(self, recording_id: int, actor: Actor = SYSTEM) -> RestoreStatus:
        rec, obj = self._recording(recording_id, actor)
        st = self._status(rec, obj)
        self._record_progress(rec, st, actor)
        return st

    def playable(self, recording_id: int, actor: Actor = SYSTEM) -> Row:
        """The recording row if its bytes can be read now; else ``ObjectArchived``."""
        rec, obj = self._recording(recording_id, actor)
        st = self._status(rec, obj)
        self._record_progress(rec, st, actor)
        if st.status in ("not_archived", "restored"):
            return rec
        state = st.as_dict() | {
            "restore": f"POST /api/recordings/{recording_id}/restore",
            "tiers": list(TIERS),
        }
        raise ObjectArchived(
            f"recording {recording_id} is in {obj.storage_class} ({st.status}): restore it first",
            state,
        )

    def request(
        self,
        recording_id: int,
        actor: Actor = SYSTEM,
        *,
        tier: str | None = None,
        days: int | None = None,
    ) -> RestoreStatus:
        tier = tier or self._tier
        days = days or self._days
        if tier not in TIERS:
            raise InputError(f"invalid restore tier {tier!r}: use one of {', '.join(TIERS)}")
        if not 1 <= days <= 365:
            raise InputError(f"invalid restore days {days}: use 1 to 365")
        rec, obj = self._recording(recording_id, actor)
        if not needs_restore(obj.storage_class):
            raise InputError(
                f"recording {recording_id} is in {obj.storage_class}, not archived: "
                "it can be played directly"
            )
        # The request and who made it are committed before S3 is asked: a restore (which
        # costs money and exposes footage) is never started without its audit row.
        requested_at = self._now()
        self._catalog.save_restore(
            rec,
            status="requested",
            tier=tier,
            days=days,
            at=requested_at,
            restored_until=None,
            detail="",
            audit=actor.audit("restore.request", {"tier": tier, "days": days}),
            acting_user=actor.user_id,
        )
        try:
            outcome = self._archive.restore(rec["s3_key"], days=days, tier=tier)
        except Exception as exc:
            self._catalog.set_restore_status(
                rec,
                status="failed",
                restored_until=None,
                at=self._now(),
                detail=str(exc)[:500],
                audit=actor.audit("restore.failed", {"error": type(exc).__name__}),
                acting_user=actor.user_id,
            )
            raise
        after = self._archive.head(rec["s3_key"]) or obj
        st = self._status({**rec, "restore_status": "requested"}, after)
        status = "in_progress" if st.status == "requested" else st.status
        restored_until = st.restored_until if status == "restored" else None
        self._catalog.set_restore_status(
            rec,
            status=status,
            restored_until=restored_until,
            at=self._now(),
            detail=outcome,
            audit=actor.audit("restore.accepted", {"outcome": outcome, "status": status}),
            acting_user=actor.user_id,
        )
        return RestoreStatus(
            int(rec["id"]), after.storage_class, status, tier, days, requested_at, st.restored_until
        )

    def _record_progress(self, rec: Row, st: RestoreStatus, actor: Actor) -> None:
        """Write a status change seen on S3 into ``restores`` (+ audit on completion)."""
        before = rec.get("restore_status")
        if before is None or before == st.status or st.status in ("not_archived", "archived"):
            return
        audit = None
        if st.status in ("restored", "expired"):
            audit = actor.audit(
                f"restore.{'completed' if st.status == 'restored' else 'lapsed'}",
                {"restored_until": st.restored_until, "was": before},
            )
        self._catalog.set_restore_status(
            rec,
            status=st.status,
            restored_until=st.restored_until,
            at=self._now(),
            audit=audit,
            acting_user=actor.user_id,
        )

    def poll_pending(self) -> int:
        """Refresh every pending (or lapsing) restore; returns how many changed state."""
        changed = 0
        for r in self._catalog.pending_restores(self._now()):
            obj = self._archive.head(r["s3_key"])
            rec = {
                **r,
                "id": r["recording_id"],
                "start_time": r["recording_start"],
                "restore_status": r["status"],
            }
            if obj is None:
                continue  # gone: retention sync tombstones the recording
            st = self._status(rec, obj)
            if st.status != r["status"]:
                self._record_progress(rec, st, SYSTEM)
                changed += 1
        return changed
