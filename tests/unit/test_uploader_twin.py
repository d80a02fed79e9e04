"""The uploader's branches on the in-memory S3 twin (no server): including the four no
integration test reaches — MissingAfterPut, VerifyMismatch, SSENotApplied, 412 then 404."""

from __future__ import annotations

import base64
import os
import zlib
from pathlib import Path

import pytest

from camvault.errors import ObjectConflict, StoragePermanentError, StorageUnavailable
from camvault.models import Segment, SegmentState
from camvault.retry import is_retryable
from camvault.s3.memory import MemoryObjectStore
from camvault.uploader import Uploader
from tests.support.twins import make_segment

KEY = "site/cam/2026/11/20/080000.mp4"


def _segment(tmp_path: Path, body: bytes) -> tuple[Segment, str]:
    path = tmp_path / "seg.mp4"
    path.write_bytes(body)
    seg = make_segment(body, KEY, path=str(path), state=SegmentState.UPLOADING, segment_id="s1")
    return seg, base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()


def test_single_put_is_verified_and_returned(tmp_path: Path) -> None:
    store = MemoryObjectStore()
    seg, crc = _segment(tmp_path, b"video")
    obj = Uploader(store, conditional_writes=True).upload(seg, crc32_b64=crc)
    assert obj.sse == "AES256" and obj.size_bytes == 5
    assert store.objects[KEY].body == b"video"
    assert [op for op, _ in store.calls] == ["put"]  # conditional: no HEAD before


def test_identical_object_already_there_is_accepted_without_a_put(tmp_path: Path) -> None:
    store = MemoryObjectStore()
    seg, crc = _segment(tmp_path, b"video")
    Uploader(store, conditional_writes=False).upload(seg, crc32_b64=crc)
    store.calls.clear()
    Uploader(store, conditional_writes=False).upload(seg, crc32_b64=crc)
    assert [op for op, _ in store.calls] == ["head"]


def test_different_object_at_the_key_is_a_conflict_and_kept(tmp_path: Path) -> None:
    store = MemoryObjectStore()
    seg, crc = _segment(tmp_path, b"video")
    Uploader(store, conditional_writes=True).upload(seg, crc32_b64=crc)
    store.replace_body(KEY, b"another body")
    with pytest.raises(ObjectConflict, match="not overwritten"):
        Uploader(store, conditional_writes=True).upload(seg, crc32_b64=crc)
    assert store.objects[KEY].body == b"another body"


def test_412_then_404_is_transient_precondition_failed(tmp_path: Path) -> None:
    """The conditional PUT says the key exists, the HEAD after it finds nothing (deleted in
    between, or an endpoint that lies): retry later, never accept or overwrite."""

    def fault(op: str, key: str) -> None:
        if op == "put":
            raise ObjectConflict(f"S3 PUT {key} failed: PreconditionFailed (412)")

    store = MemoryObjectStore(fault=fault)
    seg, crc = _segment(tmp_path, b"video")
    with pytest.raises(StorageUnavailable) as info:
        Uploader(store, conditional_writes=True).upload(seg, crc32_b64=crc)
    assert info.value.code == "PreconditionFailed" and is_retryable(info.value)
    assert store.objects == {}
    assert [op for op, _ in store.calls] == ["put", "head"]


def test_412_then_same_object_is_accepted(tmp_path: Path) -> None:
    store = MemoryObjectStore()
    seg, crc = _segment(tmp_path, b"video")
    Uploader(store, conditional_writes=True).upload(seg, crc32_b64=crc)
    obj = Uploader(store, conditional_writes=True).upload(seg, crc32_b64=crc)
    assert obj.size_bytes == 5


def test_multipart_object_missing_right_after_put(tmp_path: Path) -> None:
    store = MemoryObjectStore(multipart_threshold=1024)

    def fault(op: str, key: str) -> None:
        if op == "head" and ("put", key) in store.calls:
            store.objects.pop(key, None)  # gone before the HEAD after the upload

    store.fault = fault
    seg, crc = _segment(tmp_path, os.urandom(4096))
    with pytest.raises(StorageUnavailable) as info:
        Uploader(store, conditional_writes=True).upload(seg, crc32_b64=crc)
    assert info.value.code == "MissingAfterPut" and is_retryable(info.value)


def test_multipart_object_that_does_not_match_is_verify_mismatch(tmp_path: Path) -> None:
    store = MemoryObjectStore(multipart_threshold=1024)

    def fault(op: str, key: str) -> None:
        if op == "head" and ("put", key) in store.calls:
            store.replace_body(key, b"truncated")  # checksum header kept, size is not

    store.fault = fault
    seg, crc = _segment(tmp_path, os.urandom(4096))
    with pytest.raises(StorageUnavailable) as info:
        Uploader(store, conditional_writes=True).upload(seg, crc32_b64=crc)
    assert info.value.code == "VerifyMismatch" and is_retryable(info.value)


@pytest.mark.parametrize("size", [5, 4096])
def test_endpoint_ignoring_sse_is_permanent(tmp_path: Path, size: int) -> None:
    store = MemoryObjectStore(multipart_threshold=1024, sse_applied=False)
    seg, crc = _segment(tmp_path, os.urandom(size))
    with pytest.raises(StoragePermanentError) as info:
        Uploader(store, conditional_writes=True).upload(seg, crc32_b64=crc)
    assert info.value.code == "SSENotApplied" and not is_retryable(info.value)


def test_multipart_reports_progress_and_heads_the_result(tmp_path: Path) -> None:
    store = MemoryObjectStore(multipart_threshold=1024)
    seg, crc = _segment(tmp_path, os.urandom(4096))
    sent: list[int] = []
    obj = Uploader(store, conditional_writes=True).upload(seg, crc32_b64=crc, progress=sent.append)
    assert obj.size_bytes == 4096 and sum(sent) == 4096
    assert [op for op, _ in store.calls] == ["head", "put", "head"]
