from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from camvault.errors import InputError
from camvault.models import Segment, SegmentState, StoredObject
from camvault.objectmeta import object_metadata, recording_from_object, recording_from_segment

START = datetime(2026, 11, 20, 8, 0, 0, 250000, tzinfo=UTC)
SEG = Segment(
    id="s1",
    camera_id="lobby-1",
    path="/spool/x.mp4",
    start_time=START,
    end_time=START + timedelta(seconds=299.933333),
    duration_seconds=299.933333,
    size_bytes=150_000_000,
    checksum_algorithm="sha256",
    checksum="ab" * 32,
    codec="h264",
    width=1920,
    height=1080,
    ext="mp4",
    s3_key="lobby-1/2026/11/20/lobby-1_20261120T080000Z.mp4",
    state=SegmentState.UPLOADED,
    run_id="run-7",
)
OBJ = StoredObject(
    bucket="b",
    key=SEG.s3_key,
    size_bytes=SEG.size_bytes,
    etag="e-1",
    storage_class="STANDARD",
    sse="AES256",
    metadata=object_metadata(SEG),
)


def test_headers_carry_everything_needed() -> None:
    meta = object_metadata(SEG)
    assert {"camera-id", "start", "end", "duration", "checksum", "codec"} <= set(meta)
    assert meta["checksum"] == "sha256:" + "ab" * 32
    assert all(isinstance(v, str) and v.isascii() for v in meta.values())  # S3 header-safe


def test_row_rebuilt_from_object_equals_row_from_segment() -> None:
    assert recording_from_object(OBJ) == recording_from_segment(SEG, OBJ)


@pytest.mark.parametrize(
    ("drop", "needle"), [("camera-id", "camera-id"), ("checksum", "checksum"), ("start", "start")]
)
def test_missing_header_is_named(drop: str, needle: str) -> None:
    meta = {k: v for k, v in OBJ.metadata.items() if k != drop}
    obj = StoredObject(
        OBJ.bucket, OBJ.key, OBJ.size_bytes, OBJ.etag, OBJ.storage_class, OBJ.sse, meta
    )
    with pytest.raises(InputError, match=needle):
        recording_from_object(obj)


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("checksum", "deadbeef", "malformed x-amz-meta-checksum"),
        ("start", "yesterday", "malformed metadata"),
        ("start", "2026-11-20T08:00:00", "time zone"),
        ("duration", "long", "malformed metadata"),
    ],
)
def test_malformed_header_is_named(key: str, value: str, needle: str) -> None:
    meta = {**OBJ.metadata, key: value}
    obj = StoredObject(
        OBJ.bucket, OBJ.key, OBJ.size_bytes, OBJ.etag, OBJ.storage_class, OBJ.sse, meta
    )
    with pytest.raises(InputError, match=needle):
        recording_from_object(obj)
