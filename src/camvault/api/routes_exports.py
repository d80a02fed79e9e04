"""Clip exports over HTTP (needs ``export`` on the whole range; see camvault.export.jobs).

* ``POST /api/exports {camera_id, start, end}`` → 202, the job (``queued``)
* ``GET /api/exports`` — the caller's jobs (every job for admins), newest first
* ``GET /api/exports/{id}`` — state and progress (%)
* ``POST /api/exports/{id}/download`` → a short-lived presigned URL of the MP4, audited
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from camvault.api.deps import CallerDep
from camvault.api.params import MAX_BIGINT, ApiError
from camvault.api.schemas import CAMERA_PATTERN, SpanOut
from camvault.errors import ExportForbidden, ExportNotReady, InputError, ObjectArchived
from camvault.export.jobs import ExportJob, Origin
from camvault.export.media import MP4_LAYOUT
from camvault.export.service import ClipServices

router = APIRouter(prefix="/api", tags=["exports"])

ExportId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="export id")]


class ExportIn(BaseModel):
    """A clip export request: one camera, [start, end) with time zones."""

    model_config = ConfigDict(extra="forbid")
    camera_id: str = Field(pattern=CAMERA_PATTERN)
    start: AwareDatetime
    end: AwareDatetime


class ExportOut(BaseModel):
    """An export job as it stands: state, progress, and once done the clip's actual range and how
    its start was cut."""

    id: int
    camera_id: str
    start: datetime
    end: datetime
    state: str = Field(description="queued | running | done | failed")
    progress: float = Field(description="percent of the clip written")
    cut: str | None = Field(
        description="keyframe_at_or_before: the clip starts on the keyframe at or before "
        "`start`; keyframe_at_or_after: on the first keyframe after it (the one before lies "
        "outside what you may export)"
    )
    actual_start: datetime | None
    actual_end: datetime | None
    gaps: list[SpanOut] = Field(description="stretches without footage, kept as gaps")
    mp4_layout: str = Field(
        MP4_LAYOUT,
        description="fragmented: a fragmented MP4 (moov first, then moof/mdat fragments — "
        "one per GOP, or a spliced recording's own — and an mfra index at the end); like "
        "+faststart it plays while downloading, and it is written to S3 as it is produced "
        "(see `assembly`)",
    )
    assembly: str | None = Field(
        None,
        description="how the clip is assembled, once planned: splice (from the recordings' "
        "samples, no ffmpeg: every recording has one H.264/H.265 track without B-frames, "
        "the same codec settings, and any audio the clip keeps is the same AAC track in "
        "each) or ffmpeg",
    )
    recording_ids: list[int]
    size_bytes: int | None
    sha256: str | None
    error: str | None
    requested_by: int | None
    requester: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, j: ExportJob) -> ExportOut:
        return cls(
            id=j.id,
            camera_id=j.camera_id,
            start=j.range_start,
            end=j.range_end,
            state=j.state,
            progress=round(j.progress, 1),
            cut=j.cut,
            actual_start=j.actual_start,
            actual_end=j.actual_end,
            gaps=[SpanOut(start=g["start"], end=g["end"]) for g in j.gaps],
            assembly=j.assembly,
            recording_ids=list(j.recording_ids),
            size_bytes=j.size_bytes,
            sha256=j.sha256,
            error=j.error,
            requested_by=j.requested_by,
            requester=j.requester_name,
            created_at=j.created_at,
            started_at=j.started_at,
            finished_at=j.finished_at,
        )


class DownloadOut(BaseModel):
    """A short-lived URL for a finished export's clip, with its size and SHA-256 to check the
    download against."""

    export_id: int
    url: str
    expires_at: datetime
    ttl_seconds: int
    size_bytes: int | None
    sha256: str | None


def clips(c: CallerDep) -> ClipServices:
    svc = c.svc.clips
    if svc is None:
        raise ApiError(503, "exports are not configured on this server")
    return svc


def _origin(c: CallerDep) -> Origin:
    return Origin(c.client_addr, c.user_agent)


@router.post("/exports", response_model=ExportOut, status_code=202)
def create_export(c: CallerDep, body: ExportIn) -> ExportOut:
    """Queue a clip export of [start, end) of one camera."""
    svc = clips(c)
    try:
        job = svc.requests.request(c.who, body.camera_id, body.start, body.end, _origin(c))
    except ExportForbidden as exc:
        raise ApiError(403, str(exc), "start") from exc
    except ObjectArchived as exc:
        raise ApiError(409, str(exc), "start", extra=exc.state) from exc
    except InputError as exc:
        if type(exc) is InputError:  # range problems; NotFound etc. go to the app handlers
            raise ApiError(422, str(exc), "end") from exc
        raise
    return ExportOut.of(job)


@router.get("/exports", response_model=list[ExportOut])
def list_exports(
    c: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
) -> list[ExportOut]:
    return [
        ExportOut.of(j) for j in clips(c).requests.list(c.who, limit=limit, before_id=before_id)
    ]


@router.get("/exports/{export_id}", response_model=ExportOut)
def get_export(c: CallerDep, export_id: ExportId) -> ExportOut:
    return ExportOut.of(clips(c).requests.get(c.who, export_id))


@router.post("/exports/{export_id}/download", response_model=DownloadOut)
def download_export(c: CallerDep, export_id: ExportId) -> DownloadOut:
    ttl = c.svc.settings.presign_ttl_seconds
    try:
        job, url = clips(c).requests.download(
            c.who, export_id, lambda key: c.svc.store.presign_get(key, ttl), _origin(c)
        )
    except ExportNotReady as exc:
        raise ApiError(409, str(exc), "id", extra={"state": exc.job.state}) from exc
    except ExportForbidden as exc:
        raise ApiError(403, str(exc), "id") from exc
    return DownloadOut(
        export_id=job.id,
        url=url,
        expires_at=c.svc.clock() + timedelta(seconds=ttl),
        ttl_seconds=ttl,
        size_bytes=job.size_bytes,
        sha256=job.sha256,
    )
