"""Uploader: put one spooled segment into S3 as a verified, self-describing object.

Idempotent by construction: the key is deterministic, so before writing we HEAD it —
identical bytes already there (same checksum, same size) is a success without a PUT; a
*different* object there is an ``ObjectConflict`` and is never overwritten. The PUT itself
is conditional (``If-None-Match: *``) where the endpoint supports it, closing the race
between HEAD and PUT. After the PUT the object is HEADed again and checked (size,
checksum header, SSE) before the segment may move on.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from camvault.errors import ObjectConflict, StoragePermanentError, StorageUnavailable
from camvault.models import Segment, StoredObject
from camvault.objectmeta import checksum_of, object_metadata
from camvault.storage import SSE, ObjectStore


class Uploader:
    """Puts one spooled segment into S3 as a verified object (see the module docstring): HEAD
    first, conditional PUT, then checked; a different object at the key is ``ObjectConflict``."""

    def __init__(self, store: ObjectStore, *, conditional_writes: bool) -> None:
        self._store = store
        self._conditional = conditional_writes

    @property
    def bucket(self) -> str:
        return self._store.bucket

    def upload(
        self,
        seg: Segment,
        *,
        crc32_b64: str,
        progress: Callable[[int], None] | None = None,
    ) -> StoredObject:
        # With conditional writes the PUT itself refuses an existing key (412), so the HEAD
        # before it is only needed where that guard is missing (multipart via s3transfer).
        conditional = self._conditional and seg.size_bytes < self._store.multipart_threshold
        if not conditional:
            existing = self._store.head(seg.s3_key)
            if existing is not None:
                return self._accept_existing(seg, existing)
        try:
            stored = self._store.put_file(
                Path(seg.path),
                seg.s3_key,
                metadata=object_metadata(seg),
                size=seg.size_bytes,
                sha256_b64=_b64(seg.checksum),
                crc32_b64=crc32_b64,
                if_none_match=conditional,
                progress=progress,
            )
        except ObjectConflict:
            # the key exists (an earlier attempt, a replay, or someone else): same bytes is fine
            raced = self._store.head(seg.s3_key)
            if raced is None:
                raise StorageUnavailable(
                    f"{seg.s3_key}: precondition failed but no object", code="PreconditionFailed"
                ) from None
            return self._accept_existing(seg, raced)
        if stored is None:
            stored = self._store.head(seg.s3_key)
        if stored is None:
            raise StorageUnavailable(
                f"{seg.s3_key}: object missing right after PUT", code="MissingAfterPut"
            )
        return self._verify(seg, stored)

    def probe(self) -> None:
        """Does S3 answer at all? (circuit breaker probe)"""
        self._store.probe()

    def _accept_existing(self, seg: Segment, obj: StoredObject) -> StoredObject:
        if not _same_content(seg, obj):
            theirs = checksum_of(obj.metadata)
            raise ObjectConflict(
                f"{seg.s3_key} already holds a different object "
                f"(size {obj.size_bytes}, checksum {theirs[1][:12] if theirs else 'none'}…); "
                f"ours is size {seg.size_bytes}, checksum {seg.checksum[:12]}…; not overwritten"
            )
        return self._verify(seg, obj)

    def _verify(self, seg: Segment, obj: StoredObject) -> StoredObject:
        if not _same_content(seg, obj):
            raise StorageUnavailable(
                f"{seg.s3_key}: stored object does not match the segment", code="VerifyMismatch"
            )
        if obj.sse != SSE:
            raise StoragePermanentError(
                f"{seg.s3_key}: stored without SSE-S3 (x-amz-server-side-encryption="
                f"{obj.sse!r}); the endpoint ignores ServerSideEncryption",
                code="SSENotApplied",
            )
        return obj


def _same_content(seg: Segment, obj: StoredObject) -> bool:
    return obj.size_bytes == seg.size_bytes and checksum_of(obj.metadata) == (
        seg.checksum_algorithm,
        seg.checksum,
    )


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()
