"""Segments for spool tests: a source file plus its ``NewSegment``, and a stored object."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from camvault.models import StoredObject
from camvault.spool import NewSegment

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def new_segment(tmp: Path, name: str, minute: int = 0, body: bytes = b"video") -> NewSegment:
    src = tmp / "in" / name
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(body)
    start = T0 + timedelta(minutes=minute)
    return NewSegment(
        camera_id="cam",
        source=src,
        start_time=start,
        end_time=start + timedelta(seconds=300),
        duration_seconds=300.0,
        codec="h264",
        width=640,
        height=360,
        ext="mp4",
        s3_key=f"cam/{name}",
    )


def stored_object(key: str) -> StoredObject:
    return StoredObject("b", key, 5, "etag", "STANDARD", "AES256", {})
