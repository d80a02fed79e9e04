"""Finding and playing footage: cameras, time-range listings, metadata, playback URLs.

Every read runs as the caller through row-level security; a resource the caller may not
see answers exactly like one that does not exist (404).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from camvault.api import params
from camvault.api.deps import CallerDep, RecordingId
from camvault.api.params import ApiError
from camvault.api.playback import presign, unchanged
from camvault.api.routes_media import media_path
from camvault.api.schemas import (
    CameraOut,
    GrantOut,
    PlaybackOut,
    RecordingDetail,
    RecordingOut,
    RecordingPage,
)
from camvault.catalog.access import AuditEntry
from camvault.models import Recording

router = APIRouter(prefix="/api", tags=["footage"])


def _not_found(what: str) -> ApiError:
    return ApiError(404, f"no such {what}", None)


@router.get("/cameras", response_model=list[CameraOut])
def list_cameras(c: CallerDep) -> list[CameraOut]:
    """The cameras the caller holds any active grant on (all of them for admins)."""
    return [CameraOut.of(cam) for cam in c.access.cameras()]


@router.get("/cameras/{camera_id}", response_model=CameraOut)
def get_camera(c: CallerDep, camera_id: str) -> CameraOut:
    cam = c.access.camera(params.camera_id(camera_id))
    if cam is None:
        raise _not_found("camera")
    return CameraOut.of(cam)


@router.get("/cameras/{camera_id}/recordings", response_model=RecordingPage)
def list_recordings(
    c: CallerDep,
    camera_id: str,
    start: Annotated[str | None, Query(description="ISO 8601; default end - 24 h")] = None,
    end: Annotated[str | None, Query(description="ISO 8601; default now")] = None,
    limit: Annotated[int | None, Query(ge=1, description="page size")] = None,
    cursor: Annotated[
        str | None,
        Query(
            description="next_cursor of the previous page; it carries the range, so start "
            "and end may be omitted (if given they must equal the cursor's)"
        ),
    ] = None,
) -> RecordingPage:
    """Recordings overlapping [start, end) — a segment straddling `start` is included —
    oldest first, keyset-paginated."""
    cfg = c.svc.settings
    cam = params.camera_id(camera_id)
    page = params.decode_cursor(cursor, cam) if cursor else None
    t0, t1 = params.page_range(
        start, end, page, now=c.svc.clock(), max_span=timedelta(days=cfg.max_range_days)
    )
    size = limit if limit is not None else cfg.page_size
    if size > cfg.max_page_size:
        raise params.bad("limit", f"must be at most {cfg.max_page_size}")
    after = (page.last_start, page.last_id) if page else None
    rows = c.access.recordings_page(cam, t0, t1, limit=size + 1, after=after)
    if rows is None:
        raise _not_found("camera")
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = None
    if more:
        last = rows[-1]
        assert last.id is not None
        next_cursor = params.encode_cursor(cam, t0, t1, last.start_time, last.id)
    return RecordingPage(
        camera_id=cam,
        start=t0,
        end=t1,
        items=[RecordingOut.of(r) for r in rows],
        next_cursor=next_cursor,
    )


@router.get("/recordings/{recording_id}", response_model=RecordingDetail)
def get_recording(c: CallerDep, recording_id: RecordingId) -> RecordingDetail:
    """One recording's metadata and the grants covering it (those the caller may see)."""
    found = c.access.recording(recording_id)
    if found is None:
        raise _not_found("recording")
    rec, acl = found
    return RecordingDetail(**RecordingOut.of(rec).model_dump(), acl=[GrantOut.of(g) for g in acl])


@router.post("/recordings/{recording_id}/playback", response_model=PlaybackOut)
def playback(c: CallerDep, recording_id: RecordingId) -> PlaybackOut:
    """A presigned GET URL with a short TTL. Issued only for a recording the caller may
    see, and only once the audit entry (who, what, when, from where) is committed."""
    ttl = c.svc.settings.presign_ttl_seconds
    # No pooled connection is held across S3: the gate may HEAD the object (30 s read
    # timeout), and a few playbacks against a slow S3 would otherwise starve the pool.
    # 1. visible? (short transaction)  2. gate + presign, no transaction  3. still visible
    # and the same object? audit (short transaction), then hand out the URL.
    found = c.access.recording(recording_id)
    if found is None:
        raise _not_found("recording")
    seen = found[0]
    c.svc.gate.check(seen)
    # a windowed grant shows part of it: the media route streams just that part
    url = media_path(seen) if seen.clipped else presign(c.svc.store, seen, ttl)

    def issue(rec: Recording) -> tuple[PlaybackOut, AuditEntry]:
        unchanged(rec, seen)
        assert rec.id is not None
        now = c.svc.clock()
        out = PlaybackOut(
            recording_id=rec.id,
            url=url,
            expires_at=now + timedelta(seconds=ttl),
            ttl_seconds=ttl,
            clipped=rec.clipped,
        )
        entry = c.audit_entry(
            "playback",
            camera_id=rec.camera_id,
            recording_id=rec.id,
            recording_start=rec.start_time,
            s3_key=rec.s3_key,
            detail={"ttl_seconds": ttl, "clipped": rec.clipped},
        )
        return out, entry

    # NotFound (not visible or not there: the same answer) → 404 by the app's handler
    return c.access.with_recording(recording_id, issue)
