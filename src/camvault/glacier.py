"""The S3 boundary for Glacier-related object calls: listing with storage classes, HEAD
with ``x-amz-restore``, and RestoreObject. botocore errors are translated by code, as in
``storage``; nothing above this module sees a botocore type."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import botocore.exceptions

from camvault.lifecycle import RestoreState, parse_restore_header
from camvault.storage import error_code, head_object, translate

RestoreOutcome = Literal["started", "in_progress", "not_archived"]


@dataclass(frozen=True, slots=True)
class ObjectState:
    key: str
    size_bytes: int
    last_modified: datetime
    storage_class: str
    restore: RestoreState | None = None  # only from HEAD


class ArchiveStore(Protocol):
    bucket: str

    def list_objects(self, prefix: str) -> Iterator[ObjectState]: ...
    def head(self, key: str) -> ObjectState | None: ...
    def restore(self, key: str, *, days: int, tier: str) -> RestoreOutcome: ...


class S3Archive:
    def __init__(self, client: Any, bucket: str) -> None:
        self._s3 = client
        self.bucket = bucket

    def list_objects(self, prefix: str) -> Iterator[ObjectState]:
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for o in page.get("Contents", []):
                    yield ObjectState(
                        key=o["Key"],
                        size_bytes=int(o["Size"]),
                        last_modified=o["LastModified"],
                        storage_class=str(o.get("StorageClass") or "STANDARD"),
                    )
        except Exception as exc:
            raise translate(exc, f"LIST {prefix}") from exc

    def head(self, key: str) -> ObjectState | None:
        r = head_object(self._s3, self.bucket, key)
        if r is None:
            return None
        return ObjectState(
            key=key,
            size_bytes=int(r["ContentLength"]),
            last_modified=r["LastModified"],
            storage_class=str(r.get("StorageClass") or "STANDARD"),  # AWS omits STANDARD
            restore=parse_restore_header(r.get("Restore")),
        )

    def restore(self, key: str, *, days: int, tier: str) -> RestoreOutcome:
        try:
            self._s3.restore_object(
                Bucket=self.bucket,
                Key=key,
                RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}},
            )
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code == "RestoreAlreadyInProgress":
                return "in_progress"
            if code == "InvalidObjectState":  # not in an archive class: nothing to restore
                return "not_archived"
            raise translate(exc, f"RESTORE {key}") from exc
        except Exception as exc:
            raise translate(exc, f"RESTORE {key}") from exc
        return "started"
