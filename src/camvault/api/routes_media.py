"""Streaming only what a windowed grant shows: ``GET /api/recordings/{id}/media``.

When a caller may see only part of a recording (``Recording.clipped``), playback must not
hand out a presigned URL to the whole object. This route streams a fragmented MP4 of the
visible part instead: ffmpeg stream-copies it from the object (ranged GETs through a
short-lived presigned URL that never leaves the server) — or, when the recording
qualifies, it is assembled from the recording's samples (``export.splice``, ranged GETs
through the S3 client) — starting on the first keyframe AT OR AFTER the window start and
dropping every frame at or after the window end, so not a frame outside the window is
sent. ``view`` suffices (watching); the range requested with ``start``/``end`` is clipped
to the caller's first visible span it overlaps.

``GET /api/cameras/{id}/clip.mp4?start=&end=`` streams an export-grade clip across
recordings the same way (``export`` on the whole range): no job, no object in between.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from camvault.api import params
from camvault.api.deps import CallerDep, RecordingId, VisibleEnd, VisibleStart
from camvault.api.params import ApiError
from camvault.api.playback import presign, unchanged
from camvault.api.routes_exports import clips
from camvault.catalog.access import AuditEntry
from camvault.errors import ExportForbidden, InputError, ObjectArchived
from camvault.export.clip import Source
from camvault.export.feed import DEFAULT_FEED, RangeReader
from camvault.export.jobs import Origin
from camvault.export.media import stream_fragments
from camvault.export.splice import Splice
from camvault.export.streamplan import plan_stream
from camvault.models import Recording

router = APIRouter(prefix="/api", tags=["footage"])


def media_path(rec: Recording) -> str:
    return f"/api/recordings/{rec.id}/media"


def window(
    rec: Recording, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """The part of the recording to stream: the request clipped to one visible span."""
    visible = rec.visible if rec.visible is not None else ((rec.start_time, rec.end_time),)
    lo = start or rec.start_time
    hi = end or rec.end_time
    for a, b in visible:
        s, e = max(a, lo), min(b, hi)
        if s < e:
            return s, e
    raise ApiError(404, "nothing you may see in the requested part of the recording", "start")


def _assembly(spliced: Splice | None) -> str:
    return "ffmpeg" if spliced is None else spliced.assembly


@router.get(
    "/recordings/{recording_id}/media",
    response_class=StreamingResponse,
    responses={200: {"content": {"video/mp4": {}}}},
)
def recording_media(
    c: CallerDep,
    recording_id: RecordingId,
    start: VisibleStart = None,
    end: VisibleEnd = None,
) -> StreamingResponse:
    """The visible part of a recording as fragmented MP4 (stream copy, no re-encode)."""
    svc = clips(c)
    t0 = params.parse_time(start, "start")
    t1 = params.parse_time(end, "end")
    ttl = c.svc.settings.presign_ttl_seconds

    # as in playback: no pooled transaction is held while the gate HEADs the object
    found = c.access.recording(recording_id)
    if found is None:
        raise ApiError(404, "no such recording", "recording_id")
    seen = found[0]
    c.svc.gate.check(seen)
    url = presign(c.svc.store, seen, ttl)

    def issue(rec: Recording) -> tuple[tuple[Recording, str], AuditEntry]:
        unchanged(rec, seen)
        s, e = window(rec, t0, t1)
        entry = c.audit_entry(
            "playback.media",
            camera_id=rec.camera_id,
            recording_id=rec.id,
            recording_start=rec.start_time,
            s3_key=rec.s3_key,
            detail={"start": s.isoformat(), "end": e.isoformat(), "clipped": rec.clipped},
        )
        return (rec, url), entry

    rec, url = c.access.with_recording(recording_id, issue)
    s, e = window(rec, t0, t1)
    assert rec.id is not None
    src = Source(rec.id, rec.start_time, rec.end_time, url, key=rec.s3_key, size=rec.size_bytes)
    try:
        # allowed_start = s: a keyframe before the window start is never used
        plan, spliced = plan_stream(c.svc.store, [src], s, e, allowed_start=s, strict=True)
    except InputError as exc:
        raise ApiError(409, str(exc), "start") from exc
    svc.tmp_dir.mkdir(parents=True, exist_ok=True)
    script = svc.tmp_dir / f"media-{uuid.uuid4().hex}.ffconcat"
    headers = {
        "Cache-Control": "no-store",
        "X-Camvault-Start": plan.actual_start.isoformat(),
        "X-Camvault-End": plan.actual_end.isoformat(),
        "X-Camvault-Assembly": _assembly(spliced),
    }
    return StreamingResponse(
        stream_fragments(svc.ffmpeg, plan, script, strict=True, spliced=spliced),
        media_type="video/mp4",
        headers=headers,
    )


@router.get(
    "/cameras/{camera_id}/clip.mp4",
    response_class=StreamingResponse,
    responses={200: {"content": {"video/mp4": {}}}},
    tags=["exports"],
)
def stream_clip(
    c: CallerDep,
    camera_id: str,
    start: Annotated[str, Query(description="ISO 8601 with zone")],
    end: Annotated[str, Query(description="ISO 8601 with zone")],
) -> StreamingResponse:
    """A clip streamed on the fly as fragmented MP4 — no job, no intermediate object.
    The same checks and cut as ``POST /api/exports`` (``export`` on the whole range)."""
    svc = clips(c)
    cam = params.camera_id(camera_id)
    t0 = params.parse_time(start, "start")
    t1 = params.parse_time(end, "end")
    if t0 is None or t1 is None:  # an empty value parses as "not given"
        raise params.bad("start" if t0 is None else "end", "is required")
    try:
        recs, allowed = svc.requests.stream(c.who, cam, t0, t1, Origin(c.client_addr, c.user_agent))
    except ExportForbidden as exc:
        raise ApiError(403, str(exc), "start") from exc
    except ObjectArchived as exc:
        raise ApiError(409, str(exc), "start", extra=exc.state) from exc
    except InputError as exc:
        if type(exc) is InputError:
            raise ApiError(422, str(exc), "end") from exc
        raise
    ttl = max(c.svc.settings.presign_ttl_seconds, int((t1 - t0).total_seconds()) * 2)
    sources = [
        Source(
            r.id,
            r.start_time,
            r.end_time,
            presign(c.svc.store, r, ttl),
            key=r.s3_key,
            size=r.size_bytes,
        )
        for r in recs
        if r.id is not None
    ]
    try:
        plan, spliced = plan_stream(
            c.svc.store, sources, t0, t1, allowed_start=allowed, strict=False
        )
    except InputError as exc:
        raise ApiError(409, str(exc), "start") from exc
    svc.tmp_dir.mkdir(parents=True, exist_ok=True)
    script = svc.tmp_dir / f"clip-{uuid.uuid4().hex}.ffconcat"
    reader = c.svc.store if isinstance(c.svc.store, RangeReader) and svc.feed else None
    headers = {
        "X-Camvault-Assembly": _assembly(spliced),
        "Cache-Control": "no-store",
        "X-Camvault-Start": plan.actual_start.isoformat(),
        "X-Camvault-End": plan.actual_end.isoformat(),
        "X-Camvault-Cut": plan.cut,
        "X-Camvault-Gaps": json.dumps(plan.gaps_json(), separators=(",", ":")),
        "Content-Disposition": f'attachment; filename="{cam}_{t0:%Y%m%dT%H%M%S}Z.mp4"',
    }
    return StreamingResponse(
        # [api] export_fetch_parallel > 0: the inputs through parallel ranged GETs
        stream_fragments(
            svc.ffmpeg,
            plan,
            script,
            strict=False,
            store=reader,
            feed=svc.feed or DEFAULT_FEED,
            spliced=spliced,
        ),
        media_type="video/mp4",
        headers=headers,
    )
