"""Single PUTs are sent with UNSIGNED-PAYLOAD and S3 still verifies their bytes.

The SigV4 payload hash is dropped only when the PUT carries x-amz-checksum-sha256 (which
S3 checks against the body); every other request keeps its signed payload.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from camvault.config import S3Settings
from camvault.embedded import SeaweedFS
from camvault.errors import StoragePermanentError
from camvault.storage import S3ObjectStore, make_client


@pytest.fixture
def store(seaweed: SeaweedFS, bucket: str) -> tuple[S3ObjectStore, list[tuple[str, str]]]:
    settings = S3Settings(bucket=bucket, endpoint_url=seaweed.endpoint_url, addressing_style="path")
    client = make_client(settings, credentials=(seaweed.access_key, seaweed.secret_key))
    sent: list[tuple[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        value = request.headers.get("x-amz-content-sha256", b"")
        sent.append((request.method, value.decode() if isinstance(value, bytes) else value))

    client.meta.events.register("before-send.s3", capture)
    return S3ObjectStore(client, settings), sent


def _put(store: S3ObjectStore, path: Path, key: str, sha256: bytes) -> Any:
    return store.put_file(
        path,
        key,
        metadata={"camera-id": "c"},
        size=path.stat().st_size,
        sha256_b64=base64.b64encode(sha256).decode(),
        crc32_b64="AAAAAA==",
        if_none_match=True,
    )


def test_checksummed_put_is_unsigned_and_verified(
    store: tuple[S3ObjectStore, list[tuple[str, str]]], tmp_path: Path, s3: Any, bucket: str
) -> None:
    st, sent = store
    f = tmp_path / "seg.mp4"
    f.write_bytes(b"\x00\x01segment" * 50_000)
    obj = _put(st, f, "ok.mp4", hashlib.sha256(f.read_bytes()).digest())
    assert obj is not None and obj.sse == "AES256"
    assert sent[-1] == ("PUT", "UNSIGNED-PAYLOAD")
    assert s3.get_object(Bucket=bucket, Key="ok.mp4")["Body"].read() == f.read_bytes()

    # the body does not match the checksum: refused, nothing stored
    with pytest.raises(StoragePermanentError) as exc:
        _put(st, f, "bad.mp4", hashlib.sha256(b"something else").digest())
    assert exc.value.code == "BadDigest"
    assert st.head("bad.mp4") is None


def test_other_requests_keep_the_signed_payload(
    store: tuple[S3ObjectStore, list[tuple[str, str]]], s3: Any, bucket: str
) -> None:
    st, sent = store
    st._s3.put_object(Bucket=bucket, Key="plain", Body=b"no checksum header")
    method, payload_hash = sent[-1]
    assert method == "PUT"
    assert payload_hash == hashlib.sha256(b"no checksum header").hexdigest()
