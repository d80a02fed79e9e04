"""Building blocks for unit tests on the twins (``s3.memory``, ``catalog.memory``): camvault
objects as the uploader leaves them, and their catalog rows, without a server."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from camvault.alerts import Alert
from camvault.catalog import Catalog
from camvault.keys import object_key
from camvault.models import Recording, Segment, SegmentState
from camvault.objectmeta import object_metadata, recording_from_object
from camvault.s3.memory import SSE, MemoryObject, MemoryObjectStore

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


class ListAlerts:
    """An ``AlertSink`` that keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)

    def kinds(self) -> list[str]:
        return [a.kind for a in self.sent]


def make_segment(
    body: bytes,
    key: str,
    *,
    camera_id: str = "cam",
    start: datetime = T0,
    path: str = "",
    state: SegmentState = SegmentState.UPLOADED,
    segment_id: str = "s",
) -> Segment:
    """A 5-minute H.264 segment of ``body`` bound for ``key``, as the spool hands it on."""
    return Segment(
        id=segment_id,
        camera_id=camera_id,
        path=path,
        start_time=start,
        end_time=start + timedelta(seconds=300),
        duration_seconds=300.0,
        size_bytes=len(body),
        checksum_algorithm="sha256",
        checksum=hashlib.sha256(body).hexdigest(),
        codec="h264",
        width=640,
        height=360,
        ext="mp4",
        s3_key=key,
        state=state,
    )


def put_segment_object(
    store: MemoryObjectStore,
    camera_id: str,
    start: datetime,
    *,
    prefix: str = "",
    body: bytes = b"video",
    storage_class: str = "STANDARD",
    last_modified: datetime | None = None,
) -> str:
    """A camvault object at its real key with the ``x-amz-meta-*`` headers the uploader
    writes (SSE-S3 applied); returns the key."""
    key = object_key(prefix, camera_id, start, "mp4")
    seg = make_segment(body, key, camera_id=camera_id, start=start)
    store.objects[key] = MemoryObject(
        body, object_metadata(seg), SSE, storage_class, last_modified or start
    )
    return key


def catalogue(catalog: Catalog, store: MemoryObjectStore, key: str) -> Recording:
    """Commit the row the object describes (as the pipeline would have)."""
    obj = store.head(key)
    assert obj is not None
    row, created = catalog.commit_recording(recording_from_object(obj))
    assert created
    return row
