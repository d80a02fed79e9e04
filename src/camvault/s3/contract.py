"""What camvault asks of an object store, as Protocols (structural: any class with these
methods fits). Every method raises only camvault errors: ``StorageUnavailable`` (transient),
``StoragePermanentError`` (will not heal) or ``ObjectConflict`` (a conditional write lost)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

from camvault.models import StoredObject


class ObjectStore(Protocol):
    """The uploader's, reconciler's and API's view of one bucket."""

    bucket: str
    multipart_threshold: int  # bytes; at or above, put_file uses a multipart upload

    def head(self, key: str) -> StoredObject | None:
        """The object's size, ETag, storage class, SSE and (lower-cased) metadata; None
        when no object is at ``key``."""

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
        """Store the file with SSE-S3 and STANDARD class. Below ``multipart_threshold`` one
        PUT checked against ``sha256_b64`` that returns what was stored (``if_none_match``:
        refuse with ``ObjectConflict`` when the key exists); at or above it a multipart
        upload checked against the full-object ``crc32_b64`` that returns None (HEAD it).
        ``progress(n)``: n more body bytes went out (multipart only)."""

    def probe(self) -> None:
        """Return if the endpoint answers anything at all (even 403/404); raise
        ``StorageUnavailable(code="network")`` when nothing answered."""

    def list_keys(self, prefix: str) -> Iterator[tuple[str, int, datetime]]:
        """(key, size, last modified) of every object under ``prefix``, in key order."""

    def presign_get(self, key: str, ttl_seconds: int) -> str:
        """A URL that GETs ``key`` without credentials for ``ttl_seconds``."""


class MultipartStore(Protocol):
    """The multipart sweeper's view: incomplete uploads a crash left behind."""

    bucket: str

    def list_multipart_uploads(self, prefix: str) -> Iterator[tuple[str, str, datetime]]:
        """(key, upload id, initiated) of every incomplete multipart upload under ``prefix``."""

    def abort_multipart_upload(self, key: str, upload_id: str) -> bool:
        """Abort one upload; False when it is already gone (completed or aborted)."""


class ObjectAdmin(Protocol):
    """Deleting and bucket creation (retention, set-up)."""

    bucket: str

    def delete(self, key: str) -> None:
        """Delete one object; an absent key is not an error."""

    def ensure_bucket(self, region: str) -> bool:
        """Create the bucket when missing (in ``region``); True when this call created it,
        False when it was already ours. A name owned by another account raises
        ``StoragePermanentError`` (code ``BucketAlreadyExists``), never returns."""
