"""One contract, two stores: the in-memory twin and ``S3ObjectStore`` on SeaweedFS answer
the same assertions, so unit tests on the twin say something about the real thing."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest

from camvault.config import S3Settings
from camvault.errors import ObjectConflict, StoragePermanentError, StorageUnavailable
from camvault.s3.memory import MemoryObjectStore
from camvault.storage import S3ObjectStore, make_client

MB = 1024 * 1024


@pytest.fixture(params=["memory", "seaweedfs"])
def store(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryObjectStore("twin", multipart_threshold=5 * MB)
    seaweed = request.getfixturevalue("seaweed")
    bucket = request.getfixturevalue("bucket")
    settings = S3Settings(
        bucket=bucket,
        endpoint_url=seaweed.endpoint_url,
        addressing_style="path",
        multipart_threshold_mb=5,
        multipart_chunk_mb=5,
    )
    return S3ObjectStore(
        make_client(settings, credentials=(seaweed.access_key, seaweed.secret_key)), settings
    )


@pytest.fixture(params=["memory", "seaweedfs"])
def fresh_store(request: pytest.FixtureRequest) -> Any:
    """A store whose bucket does not exist yet."""
    name = f"fresh-{uuid.uuid4().hex[:16]}"
    if request.param == "memory":
        twin = MemoryObjectStore(name)
        twin.bucket_exists = False
        return twin
    seaweed = request.getfixturevalue("seaweed")
    settings = S3Settings(bucket=name, endpoint_url=seaweed.endpoint_url, addressing_style="path")
    return S3ObjectStore(
        make_client(settings, credentials=(seaweed.access_key, seaweed.secret_key)), settings
    )


def _file(tmp_path: Path, body: bytes) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / f"{uuid.uuid4().hex}.mp4"
    path.write_bytes(body)
    return path, {
        "size": len(body),
        "sha256_b64": base64.b64encode(hashlib.sha256(body).digest()).decode(),
        "crc32_b64": base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode(),
    }


def test_single_put_is_encrypted_standard_and_described(store: Any, tmp_path: Path) -> None:
    path, sums = _file(tmp_path, b"segment bytes")
    assert store.head("cam/a.mp4") is None
    put = store.put_file(
        path, "cam/a.mp4", metadata={"Camera-Id": "cam"}, if_none_match=False, **sums
    )
    head = store.head("cam/a.mp4")
    assert put is not None and head is not None
    assert (head.size_bytes, head.sse, head.storage_class) == (13, "AES256", "STANDARD")
    assert head.metadata == {"camera-id": "cam"} == put.metadata
    assert (put.sse, put.storage_class, put.size_bytes) == ("AES256", "STANDARD", 13)
    assert head.etag == put.etag


def test_conditional_put_refuses_an_existing_key(store: Any, tmp_path: Path) -> None:
    path, sums = _file(tmp_path, b"first")
    store.put_file(path, "cam/b.mp4", metadata={}, if_none_match=True, **sums)
    other, other_sums = _file(tmp_path, b"second")
    with pytest.raises(ObjectConflict):
        store.put_file(other, "cam/b.mp4", metadata={}, if_none_match=True, **other_sums)
    head = store.head("cam/b.mp4")
    assert head is not None and head.size_bytes == len(b"first")


def test_a_body_that_does_not_match_its_sha256_is_refused(store: Any, tmp_path: Path) -> None:
    path, sums = _file(tmp_path, b"what we send")
    sums["sha256_b64"] = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(StoragePermanentError):
        store.put_file(path, "cam/c.mp4", metadata={}, if_none_match=False, **sums)
    assert store.head("cam/c.mp4") is None


def test_multipart_returns_none_and_the_object_reads_back(store: Any, tmp_path: Path) -> None:
    path, sums = _file(tmp_path, os.urandom(6 * MB))
    sent: list[int] = []
    put = store.put_file(
        path, "cam/big.mp4", metadata={"k": "v"}, if_none_match=False, progress=sent.append, **sums
    )
    assert put is None
    head = store.head("cam/big.mp4")
    assert head is not None
    assert (head.size_bytes, head.sse, head.metadata) == (6 * MB, "AES256", {"k": "v"})
    assert sum(sent) == 6 * MB


def test_listing_deleting_and_aborting(store: Any, tmp_path: Path) -> None:
    for name in ("x/2.mp4", "x/1.mp4", "y/3.mp4"):
        path, sums = _file(tmp_path, name.encode())
        store.put_file(path, name, metadata={}, if_none_match=False, **sums)
    assert [(k, n) for k, n, _ in store.list_keys("x/")] == [("x/1.mp4", 7), ("x/2.mp4", 7)]
    store.delete("x/1.mp4")
    store.delete("x/never-there.mp4")  # absent is fine
    assert [k for k, _, _ in store.list_keys("x/")] == ["x/2.mp4"]
    assert list(store.list_multipart_uploads("x/")) == []
    assert store.abort_multipart_upload("x/2.mp4", "no-such-upload") is False
    store.probe()
    assert "x/2.mp4" in store.presign_get("x/2.mp4", 60)


def test_ensure_bucket_creates_once_then_finds_it(fresh_store: Any, tmp_path: Path) -> None:
    assert fresh_store.ensure_bucket("us-east-1") is True
    assert fresh_store.ensure_bucket("us-east-1") is False  # HEAD finds it: no CreateBucket
    path, sums = _file(tmp_path, b"into the new bucket")
    fresh_store.put_file(path, "cam/n.mp4", metadata={}, if_none_match=True, **sums)
    head = fresh_store.head("cam/n.mp4")
    assert head is not None and head.size_bytes == len(b"into the new bucket")


def test_read_range_fills_the_buffer_and_says_the_size(store: Any, tmp_path: Path) -> None:
    body = os.urandom(300_000)
    path, sums = _file(tmp_path, body)
    store.put_file(path, "cam/r.mp4", metadata={}, if_none_match=False, **sums)
    buf = bytearray(100_000)
    assert store.read_range("cam/r.mp4", 50_000, memoryview(buf)) == (100_000, 300_000)
    assert buf == body[50_000:150_000]
    # the last part: fewer bytes than asked, the rest of the buffer untouched
    buf = bytearray(b"x" * 100_000)
    assert store.read_range("cam/r.mp4", 250_000, memoryview(buf)) == (50_000, 300_000)
    assert buf[:50_000] == body[250_000:] and buf[50_000:] == b"x" * 50_000
    # past the end: InvalidRange, a code the feed reads as "the object is smaller"
    with pytest.raises(StorageUnavailable) as past:
        store.read_range("cam/r.mp4", 300_000, memoryview(buf))
    assert past.value.code == "InvalidRange"
