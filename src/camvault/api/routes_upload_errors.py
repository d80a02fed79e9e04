"""``GET /api/upload-errors`` (admin): recent failed upload attempts, per camera and one by
one, from ``upload_attempts`` (migration 0006). Read as the caller through row-level
security, whose policy also admits admins only."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from camvault.api import params
from camvault.api.deps import AdminDep
from camvault.api.params import ApiError

router = APIRouter(prefix="/api", tags=["admin"])


class _Error(BaseModel):
    detail: str
    field: str | None


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": _Error, "description": "malformed camera id"},
    401: {"model": _Error, "description": "missing, invalid or expired token"},
    403: {"model": _Error, "description": "not an admin"},
    422: {"model": _Error, "description": "limit or hours out of range"},
    503: {"model": _Error, "description": "catalog unavailable"},
}


class UploadAttemptOut(BaseModel):
    """One failed upload attempt and how its round of retries ended."""

    id: int
    camera_id: str
    segment_id: str
    s3_key: str
    round: int
    attempt: int
    error_class: str
    error_code: str
    message: str
    bytes_sent: int | None
    node: str
    occurred_at: datetime
    round_outcome: Literal["pending", "succeeded", "failed", "interrupted"]
    round_ended_at: datetime | None


class CameraUploadErrors(BaseModel):
    """Per camera: failed attempts, how many a retry recovered, rounds that failed, and the latest
    error."""

    camera_id: str
    failed_attempts: int
    recovered_by_retry: int
    failed_rounds: int
    last_error_at: datetime
    last_error_class: str


class UploadErrorsOut(BaseModel):
    """Upload errors of the last ``hours``: a summary per camera and the attempts themselves."""

    hours: int
    per_camera: list[CameraUploadErrors]
    items: list[UploadAttemptOut]


@router.get("/upload-errors", response_model=UploadErrorsOut, responses=_ERRORS)
def upload_errors(
    c: AdminDep,
    camera: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    hours: Annotated[int, Query(ge=1, le=24 * 31)] = 24,
) -> UploadErrorsOut:
    """Failed upload attempts (newest first, up to `limit`) and a per-camera summary of the
    last `hours`: how many failed, how many a retry of the same round recovered, how many
    rounds failed for good. `round_outcome` is `pending` while the round still runs."""
    attempts = c.svc.upload_attempts
    if attempts is None:
        raise ApiError(503, "upload attempts are not available in this server")
    cam = params.camera_id(camera) if camera is not None else None
    uid = c.who.user_id
    items = attempts.recent(camera_id=cam, limit=limit, acting_user=uid)
    since = c.svc.clock() - timedelta(hours=hours)
    summary = [
        r
        for r in attempts.per_camera(since, acting_user=uid)
        if cam is None or r["camera_id"] == cam
    ]
    return UploadErrorsOut(
        hours=hours,
        per_camera=[CameraUploadErrors.model_validate(r) for r in summary],
        items=[UploadAttemptOut.model_validate(r) for r in items],
    )
