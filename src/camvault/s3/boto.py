"""The one boundary between camvault and S3 (boto3 / s3transfer): the client, the one
place botocore errors become camvault errors, and ``BotoObjectStore``.

``s3.contract`` holds the interfaces; ``BotoObjectStore`` implements them on boto3
(``storage.S3ObjectStore`` is its old name). botocore errors are translated in
``translated()`` — every call below runs inside it — by error *code*:

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
import gzip
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import boto3
import botocore.exceptions
import botocore.loaders
import botocore.session
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from camvault.errors import (
    ObjectConflict,
    StoragePermanentError,
    StorageUnavailable,
)
from camvault.models import StoredObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client as S3Client
else:
    S3Client = Any

log = logging.getLogger(__name__)

SSE: Final = "AES256"
STORAGE_CLASS = "STANDARD"
_MB = 1024 * 1024
_READ_SLICE = 64 * 1024  # read_range's reads (see there)

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
    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, Exception):
        # boto3's upload_file re-raises a part's ClientError as this wrapper, with the
        # original (and its error code) only as the implicit context
        return translate(exc.__context__, action)
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


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
    """Run S3 calls; whatever botocore/s3transfer raises leaves as a camvault error.

    Answers that are not errors for the caller (404 on HEAD, NoSuchUpload on abort) are
    handled inside the block by code; anything it re-raises is translated here. camvault
    errors raised inside pass through unchanged.
    """
    try:
        yield
    except Exception as exc:
        ours = translate(exc, action)
        if ours is exc:
            raise
        raise ours from exc


def is_not_found(exc: botocore.exceptions.ClientError) -> bool:
    return error_code(exc) in _NOT_FOUND_CODES


def head_object(s3: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    """HEAD one object: the raw response, None when it does not exist, camvault errors
    otherwise. The one place that decides what "not found" looks like on the wire."""
    with translated(f"HEAD {key}"):
        try:
            return dict(s3.head_object(Bucket=bucket, Key=key))
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return None
            raise


def bucket_exists(s3: S3Client, bucket: str) -> bool:
    """HEAD the bucket: True when it answers, False when there is no such bucket;
    anything else (403 AccessDenied: someone else's, or no permission) is an error."""
    with translated(f"HEAD bucket {bucket}"):
        try:
            s3.head_bucket(Bucket=bucket)
            return True
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc) or error_code(exc) == "NoSuchBucket":
                return False
            raise


def create_bucket(s3: S3Client, bucket: str, region: str) -> bool:
    """Create ``bucket`` in ``region``; True when this call created it.

    The one rule for "it is already there" (start-up's ``ensure_bucket`` and `bucket
    apply` both come here): ``BucketAlreadyOwnedByYou`` is success — another camvault
    process created it a moment ago, or it was there all along — and returns False.
    ``BucketAlreadyExists`` means the name (global on AWS) belongs to another account:
    ``StoragePermanentError``, never "fine", so nobody goes on to upload into or harden a
    bucket someone else owns.
    """
    kwargs: dict[str, Any] = {}
    if region and region != "us-east-1":  # us-east-1 refuses its own LocationConstraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    with translated(f"create bucket {bucket}"):
        try:
            s3.create_bucket(Bucket=bucket, **kwargs)
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code == "BucketAlreadyOwnedByYou":
                return False
            if code == "BucketAlreadyExists":
                raise StoragePermanentError(
                    f"S3 bucket name {bucket!r} belongs to another account: "
                    "choose another [s3] bucket",
                    code=code,
                ) from exc
            raise
    return True


def ensure_bucket(s3: S3Client, bucket: str, region: str) -> bool:
    """The bucket exists afterwards; True when this call created it (``create_bucket``'s
    rule). HEAD first: an existing bucket costs no CreateBucket call."""
    if bucket_exists(s3, bucket):
        return False
    return create_bucket(s3, bucket, region)


class ClientOptions(Protocol):
    """What ``make_client`` reads: plain values (``config.S3Settings`` has them, and so
    may any small object), so this boundary does not depend on the settings model."""

    @property
    def region(self) -> str: ...
    @property
    def endpoint_url(self) -> str | None: ...  # "" / None = AWS
    @property
    def addressing_style(self) -> Literal["auto", "path", "virtual"]: ...
    @property
    def connect_timeout_seconds(self) -> float: ...
    @property
    def read_timeout_seconds(self) -> float: ...


class TransferOptions(Protocol):
    """What ``BotoObjectStore`` reads (``config.S3Settings`` has these)."""

    @property
    def bucket(self) -> str: ...
    @property
    def multipart_threshold_mb(self) -> int: ...
    @property
    def multipart_chunk_mb(self) -> int: ...
    @property
    def transfer_concurrency(self) -> int: ...


def make_client(
    settings: ClientOptions, *, max_pool: int = 32, credentials: tuple[str, str] | None = None
) -> S3Client:
    """A boto3 S3 client; ``credentials`` only for the embedded server, else boto3's chain.
    Only ``App`` (and the stand-alone export worker) should call this."""
    cfg = Config(
        region_name=settings.region,
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds,
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=max_pool,
        s3={"addressing_style": settings.addressing_style},
        # presigned playback URLs must be SigV4 (botocore picks SigV2 for custom endpoints)
        signature_version="s3v4",
        # we send our own full-object checksums; don't let botocore add a second one
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    key_id, secret = credentials if credentials is not None else (None, None)
    core = botocore.session.Session()
    core.register_component("data_loader", _shared_loader(core))
    client: S3Client = boto3.session.Session(botocore_session=core).client(
        "s3",
        endpoint_url=settings.endpoint_url or None,
        config=cfg,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    client.meta.events.register("before-sign.s3.PutObject", _unsigned_payload_if_checksummed)
    return client


_LOADER: list[botocore.loaders.Loader] = []
_LOADER_LOCK = threading.Lock()


def _shared_loader(core: botocore.session.Session) -> botocore.loaders.Loader:
    """One botocore data loader per process, as boto3's default session has: it caches the
    models it has read, so a second client (a new ``App`` in the same process, the API's
    and the archive's) does not parse S3's model, the endpoint rules and the partitions
    again (~0.08 s each time, measured)."""
    with _LOADER_LOCK:
        if not _LOADER:
            loader = botocore.loaders.create_loader(core.get_config_variable("data_path"))
            loader.file_loader = _NoDocsLoader()
            _LOADER.append(loader)
        return _LOADER[0]


class _NoDocsLoader(botocore.loaders.JSONFileLoader):
    """botocore's model files without their documentation: S3's model is ~11 MB of Python
    objects once loaded, kept for the client's life, and its doc strings (read only to
    build ``help()`` text) are a third of it — ~5 MB less resident in every process with a
    client (``camvault export`` included: bench/export_clip.py). Reads the files as
    botocore's loader does (``.json``, then ``.json.gz``); plain dicts, not OrderedDicts
    (insertion-ordered all the same)."""

    def load_file(self, file_path: str) -> Any:
        for ext, opener in ((".json", open), (".json.gz", gzip.open)):
            if os.path.isfile(file_path + ext):
                with opener(file_path + ext, "rb") as fp:
                    return json.loads(fp.read().decode("utf-8"), object_pairs_hook=_no_docs)
        return None


def _no_docs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # "" rather than absent: botocore reads some of these keys unconditionally
    return {k: "" if k == "documentation" else v for k, v in pairs}


def _unsigned_payload_if_checksummed(request: Any, **_: Any) -> None:
    """A PUT carrying ``x-amz-checksum-sha256`` (a signed header that S3 checks against the
    body: wrong → BadDigest, nothing stored) needs no SigV4 payload hash as well — that
    would be a second SHA-256 pass over every segment for the same guarantee. botocore
    drops it by itself only over https and only for checksums it computed, so say it."""
    if "x-amz-checksum-sha256" not in request.headers:
        return
    cfg = request.context.get("client_config")
    if cfg is not None:
        s3: Any = {**(cfg.s3 or {}), "payload_signing_enabled": False}
        request.context["client_config"] = cfg.merge(Config(s3=s3))


class BotoObjectStore:
    """``contract.ObjectStore`` + ``MultipartStore`` + ``ObjectAdmin`` on one boto3 client."""

    def __init__(self, client: S3Client, settings: TransferOptions) -> None:
        self._s3 = client
        self.bucket = settings.bucket
        self.multipart_threshold = settings.multipart_threshold_mb * _MB
        self._transfer = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=settings.multipart_chunk_mb * _MB,
            max_concurrency=settings.transfer_concurrency,
            use_threads=True,
        )

    def head(self, key: str) -> StoredObject | None:
        r = head_object(self._s3, self.bucket, key)
        if r is None:
            return None
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
        progress: Callable[[int], None] | None = None,
    ) -> StoredObject | None:
        """PUT the file. A single PUT returns what S3 answered (its body was verified against
        our SHA-256, so no HEAD is needed); a multipart upload returns None: HEAD it.
        ``progress(n)``: n more body bytes went out (multipart only: s3transfer counts what
        it hands to the connection; a single PUT's body is also read to sign it, so its
        reads say nothing about what was sent)."""
        args: dict[str, Any] = {
            "ServerSideEncryption": SSE,
            "StorageClass": STORAGE_CLASS,
            "Metadata": metadata,
            "ContentType": _content_type(path),
        }
        with translated(f"PUT {key}"):
            if size < self.multipart_threshold:
                # one PUT; S3 verifies the full-object SHA-256 and stores it
                if if_none_match:
                    args["IfNoneMatch"] = "*"
                with path.open("rb") as body:
                    r = self._s3.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=body,
                        ContentLength=size,
                        ChecksumSHA256=sha256_b64,
                        **args,
                    )
                return StoredObject(
                    bucket=self.bucket,
                    key=key,
                    size_bytes=size,
                    etag=str(r.get("ETag", "")).strip('"'),
                    storage_class=STORAGE_CLASS,
                    sse=r.get("ServerSideEncryption"),
                    metadata={k.lower(): v for k, v in metadata.items()},
                )
            # multipart via s3transfer: S3 checks each part and, on completion, the
            # full-object CRC32 we computed while spooling (SHA-256 cannot be full-object on
            # multipart). The caller HEADs the result. s3transfer aborts the upload itself
            # when a part fails; the sweeper catches what a crash leaves behind.
            args.update(ChecksumCRC32=crc32_b64, ChecksumType="FULL_OBJECT")
            self._s3.upload_file(
                str(path),
                self.bucket,
                key,
                ExtraArgs=args,
                Config=self._transfer,
                Callback=progress,
            )
            return None

    def probe(self) -> None:
        """The cheapest request that proves the endpoint answers (the circuit breaker's
        probe): HeadBucket. Any HTTP answer, even 403/404, means it is reachable; raises
        ``StorageUnavailable(code="network")`` only when nothing answered."""
        with translated(f"HEAD bucket {self.bucket}"):
            try:
                self._s3.head_bucket(Bucket=self.bucket)
            except botocore.exceptions.ClientError:
                return

    def list_keys(self, prefix: str) -> Iterator[tuple[str, int, datetime]]:
        paginator = self._s3.get_paginator("list_objects_v2")
        with translated(f"LIST {prefix}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    yield obj["Key"], int(obj["Size"]), obj["LastModified"]

    def list_multipart_uploads(self, prefix: str) -> Iterator[tuple[str, str, datetime]]:
        """(key, upload id, initiated) of every incomplete multipart upload under ``prefix``."""
        paginator = self._s3.get_paginator("list_multipart_uploads")
        with translated(f"LIST multipart uploads {prefix}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for up in page.get("Uploads", []):
                    yield up["Key"], up["UploadId"], up["Initiated"]

    def abort_multipart_upload(self, key: str, upload_id: str) -> bool:
        """Abort one multipart upload; False when it is already gone (completed/aborted)."""
        with translated(f"ABORT multipart {key}"):
            try:
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) == "NoSuchUpload" or is_not_found(exc):
                    return False
                raise
        return True

    def create_multipart(self, key: str, *, metadata: dict[str, str], content_type: str) -> str:
        """Start a multipart upload (SSE-S3, STANDARD) fed part by part by the caller (a
        stream whose size is not known up front); returns its upload id."""
        with translated(f"CREATE multipart {key}"):
            r = self._s3.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                ServerSideEncryption=SSE,
                StorageClass="STANDARD",
                Metadata=metadata,
                ContentType=content_type,
                ChecksumAlgorithm="CRC32",
            )
        return str(r["UploadId"])

    def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes | bytearray | Any, crc32_b64: str
    ) -> str:
        """One part; S3 checks it against our CRC32 (wrong → BadDigest). Returns its ETag.
        ``body``: bytes, or a file-like object (``read``/``seek``/``tell``) of exactly the
        part (an export's parts sent from its output file: ``export.upload.FileRange``)."""
        with translated(f"PUT part {number} of {key}"):
            r = self._s3.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                # botocore takes bytearray too (the stubs say bytes): a reused part buffer
                Body=body,  # type: ignore[arg-type]
                ContentLength=len(body),
                ChecksumCRC32=crc32_b64,
            )
        return str(r["ETag"])

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[tuple[int, str, str]]
    ) -> str | None:
        """Complete the upload from its (number, ETag, CRC32) parts: the object appears
        whole, or not at all. Returns the SSE S3 applied."""
        with translated(f"COMPLETE multipart {key}"):
            r = self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [
                        {"PartNumber": n, "ETag": etag, "ChecksumCRC32": crc}
                        for n, etag, crc in parts
                    ]
                },
            )
        sse = r.get("ServerSideEncryption")
        return None if sse is None else str(sse)

    def delete(self, key: str) -> None:
        """Delete one object (absent is fine: S3 answers 204 either way)."""
        with translated(f"DELETE {key}"):
            self._s3.delete_object(Bucket=self.bucket, Key=key)

    def read_range(self, key: str, offset: int, into: memoryview) -> tuple[int, int]:
        """GET ``len(into)`` bytes of ``key`` from ``offset`` straight into ``into`` (no
        intermediate bytes object); returns (bytes that arrived — fewer only at the object's
        end, the object's size). A range starting past the end: ``InvalidRange``."""
        want = len(into)
        with translated(f"GET {key} bytes {offset}+{want}"):
            r = self._s3.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={offset}-{offset + want - 1}"
            )
            body = r["Body"]
            got = 0
            try:
                # slices: urllib3's readinto reads a bytes object of the size asked and
                # copies it; small ones stay in malloc's bins, part-sized ones raise glibc's
                # mmap threshold and grow each GET thread's arena. The stubs say IO[bytes];
                # botocore's StreamingBody.readinto takes a buffer.
                while got < want and (
                    n := body.readinto(into[got : got + _READ_SLICE])  # type: ignore[arg-type]
                ):
                    got += n
            finally:
                body.close()
        total = str(r.get("ContentRange", "")).rpartition("/")[2]
        return got, int(total) if total.isdigit() else offset + got

    def presign_get(self, key: str, ttl_seconds: int) -> str:
        return str(
            self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_seconds
            )
        )

    def ensure_bucket(self, region: str) -> bool:
        """Create the bucket if missing (hardening is `camvault bucket apply`); True when
        this call created it (the rule: the module-level ``ensure_bucket``)."""
        return ensure_bucket(self._s3, self.bucket, region)


def _content_type(path: Path) -> str:
    return {
        ".mp4": "video/mp4",
        ".mov": "video/quicktime",
        ".mkv": "video/x-matroska",
        ".ts": "video/mp2t",
    }.get(path.suffix.lower(), "application/octet-stream")


def probe_conditional_writes(store: BotoObjectStore) -> bool:
    """Does the endpoint honour ``If-None-Match: *`` on PUT? Two tiny PUTs under a probe
    key: the second must be refused with 412. Without it we rely on HEAD-compare alone."""
    return _probe_conditional_writes(store) is True


def _probe_conditional_writes(store: BotoObjectStore) -> bool | None:
    """True/False as the endpoint answered; None when the probe itself failed (network,
    5xx): then nothing is known, and nothing may be cached."""
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
            code = error_code(exc)
            if code in _PRECONDITION_CODES:
                return True
            return False if code in PERMANENT_CODES else None
        return False  # the second PUT was accepted: If-None-Match is ignored
    except Exception as exc:
        log.info("conditional-write probe failed (%s); using HEAD-compare only", error_code(exc))
        return None
    finally:
        with contextlib.suppress(Exception):
            s3.delete_object(Bucket=store.bucket, Key=key)


def cached_conditional_writes(
    store: BotoObjectStore, endpoint: str, cache: Path, ttl_seconds: float = 600.0
) -> bool:
    """``probe_conditional_writes``, remembered in ``cache`` for ``ttl_seconds`` per
    (endpoint, bucket): the probe's two PUTs and a DELETE cost ~0.1-0.2 s, which every
    `upload --once` / `ingest --upload` of a camera script would pay again. Kept short so
    an endpoint that changes behind the same URL is noticed soon."""
    import json
    import time

    ident = {"endpoint": endpoint, "bucket": store.bucket}
    try:
        saved = json.loads(cache.read_text())
        if {k: saved.get(k) for k in ident} == ident and (
            0 <= time.time() - float(saved["checked_at"]) < ttl_seconds
        ):
            return bool(saved["supported"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    supported = _probe_conditional_writes(store)
    if supported is None:  # the probe failed: HEAD-compare for now, ask again next time
        return False
    with contextlib.suppress(OSError):  # only a cache: a read-only spool still uploads
        tmp = cache.with_name(cache.name + ".tmp")
        tmp.write_text(json.dumps({**ident, "supported": supported, "checked_at": time.time()}))
        tmp.replace(cache)
    return supported
