"""Turning a visible recording into a playback URL: the gate, then the presigned GET.

``PlaybackGate`` is the seam where "can this object be streamed right now?" is decided.
The default gate looks at the catalog's storage class only; the lifecycle feature can
pass a gate that asks S3 (restore status) instead, and add its restore route.
"""

from __future__ import annotations

from typing import Protocol

from camvault.api.params import ApiError
from camvault.models import Recording

ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})


class Presigner(Protocol):
    """Issues presigned GET URLs for objects in ``bucket``. ``presign_get`` only signs: no request
    is made and it does not check that the object exists or is readable (the ``PlaybackGate``
    decides that first)."""

    bucket: str

    def presign_get(self, key: str, ttl_seconds: int) -> str: ...


class PlaybackGate(Protocol):
    """Decides whether a recording's object can be streamed right now; called after row-level
    security made the row visible and before any URL is issued."""

    def check(self, rec: Recording) -> None:
        """Raise ``ApiError`` (409) when the object cannot be streamed now."""


class StorageClassGate:
    """Refuses objects the catalog records as archived (Glacier, Deep Archive)."""

    def check(self, rec: Recording) -> None:
        if rec.storage_class.upper() in ARCHIVED_CLASSES:
            raise archived(rec)


def archived(rec: Recording) -> ApiError:
    return ApiError(
        409,
        f"recording {rec.id} is archived in {rec.storage_class}; restore it first",
        "id",
        extra={
            "storage_class": rec.storage_class,
            "restore": {"method": "POST", "path": f"/api/recordings/{rec.id}/restore"},
        },
    )


def presign(store: Presigner, rec: Recording, ttl_seconds: int) -> str:
    if rec.s3_bucket != store.bucket:
        raise ApiError(
            409,
            f"recording {rec.id} is in bucket {rec.s3_bucket!r}, which this server does not serve",
            "id",
        )
    return store.presign_get(rec.s3_key, ttl_seconds)


def unchanged(rec: Recording, seen: Recording) -> None:
    """409 when the row changed (object or visible range) between the check made before
    the S3 work — done outside any transaction — and the audited transaction after it."""
    if (rec.s3_bucket, rec.s3_key, rec.visible) != (seen.s3_bucket, seen.s3_key, seen.visible):
        raise ApiError(409, f"recording {rec.id} changed meanwhile; try again", "id")
