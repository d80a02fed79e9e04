"""Immutable domain objects shared by every stage of the data flow.

Pure data only: no I/O, no library types. Times are timezone-aware UTC ``datetime``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class SegmentState(StrEnum):
    """Life of a segment in the spool journal (see ``spool``)."""

    STAGING = "staging"  # journaled, file being moved into the spool
    QUEUED = "queued"  # in the spool, waiting for (another) upload attempt
    UPLOADING = "uploading"  # claimed by an uploader
    UPLOADED = "uploaded"  # object is in S3; catalog row not yet committed (reprocess queue)
    COMMITTED = "committed"  # row committed; local file removed
    CONFLICT = "conflict"  # a different object/row exists at the key; held for an operator


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What probing a video file tells us."""

    codec: str  # "h264" or "hevc"
    width: int
    height: int
    duration_seconds: float
    container: str  # e.g. "mov,mp4,m4a,3gp,3g2,mj2" / "matroska,webm" / "mpegts"
    creation_time: datetime | None  # container tag, if present
    has_audio: bool
    frame_count: int


@dataclass(frozen=True, slots=True)
class Segment:
    """A finished video segment known to the spool."""

    id: str  # spool id (uuid4 hex)
    camera_id: str
    path: str  # file inside the spool directory
    start_time: datetime
    end_time: datetime
    duration_seconds: float
    size_bytes: int
    checksum_algorithm: str  # "sha256"
    checksum: str  # lowercase hex
    codec: str
    width: int
    height: int
    ext: str  # "mp4", "mkv", "ts"
    s3_key: str
    state: SegmentState
    attempts: int = 0
    rounds: int = 0  # how many full retry rounds have been exhausted
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    etag: str | None = None
    storage_class: str | None = None
    sse: str | None = None
    run_id: str | None = None  # recorder run (continuous connection); None for drop-ins


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What S3 says about an object (from PUT response or HEAD)."""

    bucket: str
    key: str
    size_bytes: int
    etag: str
    storage_class: str
    sse: str | None
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class Recording:
    """One catalog row: a segment that is safely in S3."""

    camera_id: str
    start_time: datetime
    end_time: datetime
    duration_seconds: float
    s3_bucket: str
    s3_key: str
    size_bytes: int
    checksum_algorithm: str
    checksum: str
    codec: str
    width: int
    height: int
    storage_class: str
    sse: str | None
    etag: str
    id: int | None = None
    run_id: str | None = None
    created_at: datetime | None = None
    node_id: str | None = None  # the fleet node that recorded/spooled it
    # what a windowed grant lets the reader see of it: closed spans, or None = all of it
    visible: tuple[tuple[datetime, datetime], ...] | None = None

    @property
    def clipped(self) -> bool:
        return self.visible is not None and self.visible != ((self.start_time, self.end_time),)


@dataclass(frozen=True, slots=True)
class Camera:
    """A camera in the catalog: id, display name, segment length override, enabled."""

    id: str
    name: str
    segment_seconds: int | None = None
    enabled: bool = True
    created_at: datetime | None = None
