"""An in-memory twin of ``storage.S3ObjectStore`` for unit tests: a dict of objects with
the semantics camvault relies on, so uploader/sweeper/reconcile logic runs without a server.

Kept honest by ``tests/integration/test_s3_contract.py`` (same assertions against SeaweedFS).

* single PUT: body checked against the SHA-256 (``BadDigest`` → ``StoragePermanentError``),
  ``if_none_match`` refuses an existing key with ``ObjectConflict`` (S3's 412);
* multipart (size ≥ ``multipart_threshold``): checked against the full-object CRC32,
  returns None like s3transfer; ``progress`` is called per part;
* SSE-S3 is applied unless ``sse_applied=False`` (an endpoint that ignores the header);
  storage class STANDARD unless changed with ``set_storage_class`` (a lifecycle transition);
* ``fault(op, key)`` is called before every operation (``head``, ``put``, ``list``,
  ``list_multipart``, ``abort``, ``delete``, ``probe``, ``ensure_bucket``): raise from it
  to inject an error, or mutate ``objects`` to act as another writer;
* ``bucket_exists``/``bucket_taken``: the bucket is there / its name is another account's.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from camvault.errors import ObjectConflict, StoragePermanentError, StorageUnavailable
from camvault.models import StoredObject

SSE = "AES256"
STORAGE_CLASS = "STANDARD"
_PART = 5 * 1024 * 1024

Fault = Callable[[str, str], None]


@dataclass(slots=True)
class MemoryObject:
    """One stored object: body, metadata and the headers S3 would report."""

    body: bytes
    metadata: dict[str, str]
    sse: str | None
    storage_class: str = STORAGE_CLASS
    last_modified: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def etag(self) -> str:
        return hashlib.md5(self.body, usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class MemoryUpload:
    """An incomplete multipart upload (left by a crash)."""

    key: str
    upload_id: str
    initiated: datetime


class MemoryObjectStore:
    """Implements ``contract.ObjectStore``, ``MultipartStore`` and ``ObjectAdmin``."""

    def __init__(
        self,
        bucket: str = "twin",
        *,
        multipart_threshold: int = 8 * 1024 * 1024,
        sse_applied: bool = True,
        fault: Fault | None = None,
    ) -> None:
        self.bucket = bucket
        self.multipart_threshold = multipart_threshold
        self.sse_applied = sse_applied
        self.fault = fault
        self.objects: dict[str, MemoryObject] = {}
        self.uploads: dict[str, MemoryUpload] = {}  # upload id → incomplete upload
        self.calls: list[tuple[str, str]] = []
        self.bucket_exists = True
        self.bucket_taken = False  # the name belongs to another account (S3 names are global)

    def _call(self, op: str, key: str) -> None:
        self.calls.append((op, key))
        if self.fault is not None:
            self.fault(op, key)

    def head(self, key: str) -> StoredObject | None:
        self._call("head", key)
        obj = self.objects.get(key)
        if obj is None:
            return None
        return StoredObject(
            bucket=self.bucket,
            key=key,
            size_bytes=len(obj.body),
            etag=obj.etag,
            storage_class=obj.storage_class,
            sse=obj.sse,
            metadata={k.lower(): v for k, v in obj.metadata.items()},
        )

    def put_file(
        self,
        path: Path,
        key: str,
        *,
        metadata: dict[str, str],
        size: int,
        sha256_b64: str,
        crc32_b64: str,
        if_none_match: bool,
        progress: Callable[[int], None] | None = None,
    ) -> StoredObject | None:
        self._call("put", key)
        body = path.read_bytes()
        multipart = size >= self.multipart_threshold
        if multipart:
            crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
            if crc != crc32_b64:
                raise _bad_digest(key)
            for start in range(0, len(body), _PART):
                if progress is not None:
                    progress(len(body[start : start + _PART]))
        else:
            if base64.b64encode(hashlib.sha256(body).digest()).decode() != sha256_b64:
                raise _bad_digest(key)
            if if_none_match and key in self.objects:
                raise ObjectConflict(f"S3 PUT {key} failed: PreconditionFailed (412)")
        obj = MemoryObject(body, dict(metadata), SSE if self.sse_applied else None)
        self.objects[key] = obj
        if multipart:
            return None
        return StoredObject(
            bucket=self.bucket,
            key=key,
            size_bytes=size,
            etag=obj.etag,
            storage_class=STORAGE_CLASS,
            sse=obj.sse,
            metadata={k.lower(): v for k, v in metadata.items()},
        )

    def probe(self) -> None:
        self._call("probe", "")

    def list_keys(self, prefix: str) -> Iterator[tuple[str, int, datetime]]:
        self._call("list", prefix)
        for key in sorted(self.objects):
            if key.startswith(prefix):
                obj = self.objects[key]
                yield key, len(obj.body), obj.last_modified

    def read_range(self, key: str, offset: int, into: memoryview) -> tuple[int, int]:
        self._call("read_range", key)
        obj = self.objects.get(key)
        # as boto's translation says them: neither is a permanent code
        if obj is None:
            raise StorageUnavailable(f"S3 GET {key} failed: NoSuchKey (404)", code="NoSuchKey")
        if offset >= len(obj.body):
            raise StorageUnavailable(
                f"S3 GET {key} failed: InvalidRange (416)", code="InvalidRange"
            )
        data = obj.body[offset : offset + len(into)]
        into[: len(data)] = data
        return len(data), len(obj.body)

    def presign_get(self, key: str, ttl_seconds: int) -> str:
        return f"memory://{self.bucket}/{key}?expires={ttl_seconds}"

    def list_multipart_uploads(self, prefix: str) -> Iterator[tuple[str, str, datetime]]:
        self._call("list_multipart", prefix)
        for up in sorted(self.uploads.values(), key=lambda u: (u.key, u.upload_id)):
            if up.key.startswith(prefix):
                yield up.key, up.upload_id, up.initiated

    def abort_multipart_upload(self, key: str, upload_id: str) -> bool:
        self._call("abort", key)
        up = self.uploads.get(upload_id)
        if up is None or up.key != key:
            return False
        del self.uploads[upload_id]
        return True

    def delete(self, key: str) -> None:
        self._call("delete", key)
        self.objects.pop(key, None)

    def ensure_bucket(self, region: str) -> bool:
        """``s3.boto.ensure_bucket``'s rule: created → True, already ours → False, the name
        taken by another account → ``StoragePermanentError`` (code BucketAlreadyExists)."""
        self._call("ensure_bucket", self.bucket)
        if self.bucket_taken:
            raise StoragePermanentError(
                f"S3 bucket name {self.bucket!r} belongs to another account: "
                "choose another [s3] bucket",
                code="BucketAlreadyExists",
            )
        created = not self.bucket_exists
        self.bucket_exists = True
        return created

    # --- test controls: what another writer, a crash or a lifecycle rule would do ---

    def start_upload(self, key: str, initiated: datetime | None = None) -> str:
        """Leave an incomplete multipart upload behind (as a crash mid-upload does)."""
        upload_id = f"up-{len(self.uploads) + 1}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"
        self.uploads[upload_id] = MemoryUpload(key, upload_id, initiated or datetime.now(UTC))
        return upload_id

    def set_storage_class(self, key: str, storage_class: str) -> None:
        self.objects[key].storage_class = storage_class

    def replace_body(self, key: str, body: bytes) -> None:
        """Another writer put different bytes at ``key`` (metadata kept)."""
        self.objects[key] = replace(self.objects[key], body=body)


def _bad_digest(key: str) -> StoragePermanentError:
    return StoragePermanentError(f"S3 PUT {key} failed: BadDigest (400)", code="BadDigest")
