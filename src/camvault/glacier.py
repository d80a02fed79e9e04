"""The S3 boundary for Glacier-related object calls: listing with storage classes, HEAD
with ``x-amz-restore``, and RestoreObject. botocore errors are translated by code in
``s3.boto.translated``; nothing above this module sees a botocore type."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol, cast

import botocore.exceptions

from camvault.lifecycle import RestoreState, parse_restore_header
from camvault.s3.boto import S3Client, error_code, head_object, translated

if TYPE_CHECKING:
    from mypy_boto3_s3.literals import TierType

RestoreOutcome = Literal["started", "in_progress", "not_archived"]


@dataclass(frozen=True, slots=True)
class ObjectState:
    """An object as the archive sees it: where it is stored and, from HEAD, its restore."""

    key: str
    size_bytes: int
    last_modified: datetime
    storage_class: str
    restore: RestoreState | None = None  # only from HEAD


class ArchiveStore(Protocol):
    """What the restore and retention logic ask of S3 (implemented by ``S3Archive``). Every
    method raises only camvault errors (``StorageUnavailable`` / ``StoragePermanentError``).
    """

    bucket: str

    def list_objects(self, prefix: str) -> Iterator[ObjectState]:
        """Every object under ``prefix`` with its storage class (no restore state: a
        listing does not carry it), in key order."""

    def head(self, key: str) -> ObjectState | None:
        """The object with its storage class and parsed ``x-amz-restore``; None if absent."""

    def restore(self, key: str, *, days: int, tier: str) -> RestoreOutcome:
        """Ask for a readable copy for ``days`` at ``tier``: "started"; "in_progress" when a
        restore is already under way; "not_archived" when the object is in no archive class
        (nothing to restore). Never an error for those three."""


class S3Archive:
    """``ArchiveStore`` on a boto3 client; errors translated by ``s3.boto.translated``."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._s3 = client
        self.bucket = bucket

    def list_objects(self, prefix: str) -> Iterator[ObjectState]:
        paginator = self._s3.get_paginator("list_objects_v2")
        with translated(f"LIST {prefix}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for o in page.get("Contents", []):
                    yield ObjectState(
                        key=o["Key"],
                        size_bytes=int(o["Size"]),
                        last_modified=o["LastModified"],
                        storage_class=str(o.get("StorageClass") or "STANDARD"),
                    )

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
        with translated(f"RESTORE {key}"):
            try:
                self._s3.restore_object(
                    Bucket=self.bucket,
                    Key=key,
                    RestoreRequest={
                        "Days": days,
                        "GlacierJobParameters": {"Tier": cast("TierType", tier)},
                    },
                )
            except botocore.exceptions.ClientError as exc:
                code = error_code(exc)
                if code == "RestoreAlreadyInProgress":
                    return "in_progress"
                if code == "InvalidObjectState":  # not in an archive class: nothing to restore
                    return "not_archived"
                raise
        return "started"
