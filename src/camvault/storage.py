"""The one boundary between camvault and S3 (boto3 / s3transfer).

``ObjectStore`` is the narrow interface; ``S3ObjectStore`` implements it on boto3.
botocore errors are translated here, by error *code*:

* permanent (``StoragePermanentError``): access denied, no such bucket, bad credentials,
  a body the server says does not match its checksum — retrying will not help;
* ``ObjectConflict``: a conditional PUT found an object already at the key;
* everything else — connection refused/reset, timeouts, 5xx, throttling — is
  ``StorageUnavailable`` and retried by the uploader's own schedule.

botocore's own retries are switched off (``total_max_attempts=1``) so that the number of
attempts is exactly what ``[upload] max_retries`` says; see ``retry``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from camvault.config import S3Settings
from camvault.errors import (
    ObjectConflict,
    StoragePermanentError,
    StorageUnavailable,
)
from camvault.models import StoredObject

log = logging.getLogger(__name__)

SSE = "AES256"
STORAGE_CLASS = "STANDARD"
_MB = 1024 * 1024

PERMANENT_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "NoSuchBucket",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidBucketName",
        "AccountProblem",
        "InvalidObjectState",
        "BadDigest",
        "InvalidDigest",
        "XAmzContentSHA256Mismatch",
        "InvalidRequest",
        "InvalidArgument",
        "InvalidStorageClass",
        "KMS.DisabledException",
        "EntityTooLarge",
        "MethodNotAllowed",
        "NotImplemented",
    }
)
CHECKSUM_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_PRECONDITION_CODES = frozenset({"412", "PreconditionFailed", "ConditionalRequestConflict"})


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", "Unknown"))
    return type(exc).__name__


def translate(exc: Exception, action: str) -> Exception:
    """botocore/s3transfer error → camvault error (by code, never by message)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        msg = f"S3 {action} failed: {code} ({status})"
        if code in _PRECONDITION_CODES:
            return ObjectConflict(msg)
        if code in PERMANENT_CODES:
            return StoragePermanentError(msg, code=code)
        return StorageUnavailable(msg, code=code)
    if isinstance(
        exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return StoragePermanentError(
            f"S3 {action} failed: no AWS credentials", code="NoCredentials"
        )
    if isinstance(exc, botocore.exceptions.BotoCoreError | OSError):
        # EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ... and raw
        # socket errors surfacing through s3transfer: all mean "network", retry later.
        return StorageUnavailable(
            f"S3 {action} failed: network: {type(exc).__name__}: {exc}", code="network"
        )
    return exc


class ObjectStore(Protocol):
    bucket: str

    def head(self, key: str) -> StoredObject | None: ...
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
    ) -> None: ...
    def list_keys(self, prefix: str) -> Iterator[tuple[str, int, datetime]]: ...
    def presign_get(self, key: str, ttl_seconds: int) -> str: ...


def make_client(
    settings: S3Settings, *, max_pool: int = 32, credentials: tuple[str, str] | None = None
) -> Any:
    """A boto3 S3 client; ``credentials`` only for the embedded server, else boto3's chain."""
    cfg = Config(
        region_name=settings.region,
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds,
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=max_pool,
        s3={"addressing_style": settings.addressing_style},
        # we send our own full-object checksums; don't let botocore add a second one
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    extra: dict[str, str] = {}
    if credentials is not None:
        extra = {"aws_access_key_id": credentials[0], "aws_secret_access_key": credentials[1]}
    return boto3.session.Session().client(
        "s3", endpoint_url=settings.endpoint_url or None, config=cfg, **extra
    )


class S3ObjectStore:
    def __init__(self, client: Any, settings: S3Settings) -> None:
        self._s3 = client
        self.bucket = settings.bucket
        self._threshold = settings.multipart_threshold_mb * _MB
        self._transfer = TransferConfig(
            multipart_threshold=self._threshold,
            multipart_chunksize=settings.multipart_chunk_mb * _MB,
            max_concurrency=settings.transfer_concurrency,
            use_threads=True,
        )

    def head(self, key: str) -> StoredObject | None:
        try:
            r = self._s3.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise translate(exc, f"HEAD {key}") from exc
        except Exception as exc:
            raise translate(exc, f"HEAD {key}") from exc
        return StoredObject(
            bucket=self.bucket,
            key=key,
            size_bytes=int(r["ContentLength"]),
            etag=str(r.get("ETag", "")).strip('"'),
            # AWS omits StorageClass for STANDARD objects
            storage_class=str(r.get("StorageClass") or STORAGE_CLASS),
            sse=r.get("ServerSideEncryption"),
            metadata={k.lower(): v for k, v in r.get("Metadata", {}).items()},
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
    ) -> None:
        args: dict[str, Any] = {
            "ServerSideEncryption": SSE,
            "StorageClass": STORAGE_CLASS,
            "Metadata": metadata,
            "ContentType": _content_type(path),
        }
        try:
            if size < self._threshold:
                # one PUT; S3 verifies the full-object SHA-256 and stores it
                if if_none_match:
                    args["IfNoneMatch"] = "*"
                with path.open("rb") as body:
                    self._s3.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=body,
                        ContentLength=size,
                        ChecksumSHA256=sha256_b64,
                        **args,
                    )
            else:
                # multipart via s3transfer: per-part checksums are verified by S3, and the
                # full-object CRC32 is checked when the upload is completed. s3transfer
                # aborts the multipart upload itself when a part fails.
                args.update(ChecksumAlgorithm="CRC32")
                self._s3.upload_file(
                    str(path), self.bucket, key, ExtraArgs=args, Config=self._transfer
                )
        except Exception as exc:
            raise translate(exc, f"PUT {key}") from exc

    def list_keys(self, prefix: str) -> Iterator[tuple[str, int, datetime]]:
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    yield obj["Key"], int(obj["Size"]), obj["LastModified"]
        except Exception as exc:
            raise translate(exc, f"LIST {prefix}") from exc

    def presign_get(self, key: str, ttl_seconds: int) -> str:
        return str(
            self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_seconds
            )
        )

    def ensure_bucket(self, region: str) -> bool:
        """Create the bucket if missing (hardening is `camvault bucket apply`)."""
        try:
            self._s3.head_bucket(Bucket=self.bucket)
            return False
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in _NOT_FOUND_CODES | {"NoSuchBucket"}:
                raise translate(exc, f"HEAD bucket {self.bucket}") from exc
        except Exception as exc:
            raise translate(exc, f"HEAD bucket {self.bucket}") from exc
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._s3.create_bucket(**kwargs)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise translate(exc, f"create bucket {self.bucket}") from exc
        except Exception as exc:
            raise translate(exc, f"create bucket {self.bucket}") from exc
        return True


def _content_type(path: Path) -> str:
    return {
        ".mp4": "video/mp4",
        ".mov": "video/quicktime",
        ".mkv": "video/x-matroska",
        ".ts": "video/mp2t",
    }.get(path.suffix.lower(), "application/octet-stream")


def probe_conditional_writes(store: S3ObjectStore) -> bool:
    """Does the endpoint honour ``If-None-Match: *`` on PUT? Two tiny PUTs under a probe
    key: the second must be refused with 412. Without it we rely on HEAD-compare alone."""
    import uuid

    key = f".camvault-probe/{uuid.uuid4().hex}"
    s3 = store._s3
    try:
        s3.put_object(
            Bucket=store.bucket, Key=key, Body=b"1", IfNoneMatch="*", ServerSideEncryption=SSE
        )
        try:
            s3.put_object(
                Bucket=store.bucket, Key=key, Body=b"2", IfNoneMatch="*", ServerSideEncryption=SSE
            )
        except botocore.exceptions.ClientError as exc:
            return error_code(exc) in _PRECONDITION_CODES
        return False
    except Exception as exc:
        log.info("conditional-write probe failed (%s); using HEAD-compare only", error_code(exc))
        return False
    finally:
        with contextlib.suppress(Exception):
            s3.delete_object(Bucket=store.bucket, Key=key)
