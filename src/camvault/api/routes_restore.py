"""Glacier restores over HTTP, and the playback gate that asks S3 instead of trusting a
possibly stale catalog.

* ``RestoreGate`` (``ApiServices.gate``): playback HEADs the object; in GLACIER or
  DEEP_ARCHIVE without a readable restored copy it answers 409 with the restore state and
  how to ask for a restore.
* ``POST /api/recordings/{id}/restore`` — callers holding ``export`` (or ``admin``) on the
  recording; tier and days default to ``[lifecycle]``. 202 with the state; audited.
* ``GET /api/recordings/{id}/restore`` — the state (polls ``x-amz-restore``), for anyone
  who may see the recording.

Everything runs as the caller, under row-level security.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from camvault.acl import Permission, Principal, effective
from camvault.api.deps import CallerDep, RecordingId
from camvault.api.params import ApiError
from camvault.api.playback import archived
from camvault.app import s3_client
from camvault.catalog.connector import Connector
from camvault.catalog.lifecycle_catalog import LifecycleCatalog
from camvault.config import Settings
from camvault.errors import ObjectArchived
from camvault.glacier import ArchiveStore, S3Archive
from camvault.lifecycle import needs_restore
from camvault.models import Recording
from camvault.restore import TIERS, Actor, RestoreService, RestoreStatus

router = APIRouter(prefix="/api", tags=["lifecycle"])


class RestoreIn(BaseModel):
    """A Glacier restore request: tier and how many days the restored copy stays readable."""

    tier: Literal["Expedited", "Standard", "Bulk"] | None = Field(
        None, description="default: [lifecycle] restore_tier"
    )
    days: int | None = Field(None, ge=1, le=365, description="default: [lifecycle] restore_days")


class RestoreOut(BaseModel):
    """A recording's restore state: storage class, status (not_archived, archived, requested,
    in_progress, restored, expired) and the request's tier, days and dates."""

    recording_id: int
    storage_class: str
    status: str  # not_archived | archived | requested | in_progress | restored | expired
    tier: str | None = None
    days: int | None = None
    requested_at: datetime | None = None
    restored_until: datetime | None = None

    @classmethod
    def of(cls, st: RestoreStatus) -> RestoreOut:
        return cls(
            recording_id=st.recording_id,
            storage_class=st.storage_class,
            status=st.status,
            tier=st.tier,
            days=st.days,
            requested_at=st.requested_at,
            restored_until=st.restored_until,
        )


class RestoreGate:
    """Playback gate backed by HEAD: the object's real class and ``x-amz-restore``."""

    def __init__(self, archive: ArchiveStore) -> None:
        self._archive = archive

    def check(self, rec: Recording) -> None:
        obj = self._archive.head(rec.s3_key)
        if obj is None:
            raise ApiError(404, f"recording {rec.id}: its object is no longer in storage", "id")
        if not needs_restore(obj.storage_class):
            return
        r = obj.restore
        if r is not None and not r.ongoing:
            return  # a restored copy is readable (S3 removes the header when it lapses)
        err = archived(dataclasses.replace(rec, storage_class=obj.storage_class))
        err.extra.update(
            status="in_progress" if r is not None else "archived",
            tiers=list(TIERS),
        )
        raise err


def _service(c: CallerDep) -> RestoreService:
    svc = c.svc.restores
    if svc is None:
        raise ApiError(503, "restores are not configured on this server")
    return svc


def _actor(c: CallerDep) -> Actor:
    return Actor(
        c.who.user_id,
        c.who.user_name,
        label=c.access.actor,
        client_addr=c.client_addr,
        user_agent=c.user_agent,
    )


@router.post("/recordings/{recording_id}/restore", response_model=RestoreOut, status_code=202)
def request_restore(
    c: CallerDep, recording_id: RecordingId, body: Annotated[RestoreIn | None, Body()] = None
) -> RestoreOut:
    """Ask S3 to restore an archived recording (needs ``export`` on it)."""
    found = c.access.recording(recording_id)
    if found is None:
        raise ApiError(404, "no such recording", None)
    rec, acl = found
    who = Principal(c.who.user_id, c.access.group_ids_of(c.who.user_id), is_admin=c.who.is_admin)
    perm = effective(
        [g.grant for g in acl], who, rec.camera_id, rec.start_time, rec.end_time, c.svc.clock()
    )
    if perm is None or perm < Permission.EXPORT:
        raise ApiError(403, "restoring a recording needs the export permission on it", "id")
    body = body or RestoreIn()
    try:
        st = _service(c).request(recording_id, _actor(c), tier=body.tier, days=body.days)
    except ObjectArchived as exc:  # pragma: no cover - request never raises it
        raise ApiError(409, str(exc), "id", extra=exc.state) from exc
    return RestoreOut.of(st)


@router.get("/recordings/{recording_id}/restore", response_model=RestoreOut)
def restore_status(c: CallerDep, recording_id: RecordingId) -> RestoreOut:
    """Where the recording's object is, and how its restore is going."""
    return RestoreOut.of(_service(c).status(recording_id, _actor(c)))


def wire(settings: Settings, api_connector: Connector) -> tuple[RestoreService, RestoreGate]:
    """The restore service (running as the API role) and the HEAD-backed playback gate."""
    client, s3 = s3_client(settings)
    archive = S3Archive(client, s3.bucket)
    service = RestoreService(
        LifecycleCatalog(api_connector),
        archive,
        tier=settings.lifecycle.restore_tier,
        days=settings.lifecycle.restore_days,
    )
    return service, RestoreGate(archive)
