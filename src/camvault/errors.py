"""The whole camvault exception tree, in one place (``tests/unit/test_errors.py`` fails on an
exception class defined anywhere else, and on any that is not Transient xor Permanent).

Every I/O boundary (boto3 in ``s3.boto``, psycopg in ``catalog.connector``, PyAV in
``probe``) translates the library's own exceptions into one of these, so the rest of the
code branches on *our* classes, never on third-party types or message text::

    CamvaultError
    ├── TransientError              may succeed later: the only retryable branch
    │   └── ServiceUnavailable      a dependency cannot be reached right now
    │       ├── CatalogUnavailable  PostgreSQL down, connection cut, timeout
    │       └── StorageUnavailable  S3 unreachable, 5xx, throttled, connection cut
    └── PermanentError              retrying the same call will not help
        ├── ConfigError             settings missing or invalid (fails start-up, one line)
        │   └── MigrationChanged    an applied migration file differs from its checksum
        ├── InputError              the caller's input is wrong → CLI exit 2 / HTTP 400
        │   ├── InvalidMedia        not a readable H.264/H.265 video (quarantined)
        │   ├── UnknownCamera       camera id not in the catalog (quarantined on ingest)
        │   ├── InvalidTimeRange    start/end malformed, reversed, too wide, in the future
        │   ├── SourceReplaced      a file's name was swapped during ingest (quarantined)
        │   └── ExportForbidden     the requested range exceeds the export grant → 403
        ├── NotFound                no such (visible) resource → CLI exit 2 / HTTP 404
        │   └── UnknownPrincipal    no such user/group (by name or by id)
        ├── StateConflict           it exists, but its state forbids this *now* → exit 2 / 409
        │   ├── ObjectArchived      the object is in Glacier: restore it first
        │   └── ExportNotReady      the export job is not done yet
        ├── StoragePermanentError   S3 said no for good: AccessDenied, NoSuchBucket, bad key,
        │                           checksum mismatch, bucket name taken (alert, no blind retry)
        ├── StorageUnsupported      the backend does not implement a bucket-config call
        ├── ObjectConflict          a *different* object already sits at our deterministic key
        ├── RecordingConflict       the catalog already holds a different recording there
        ├── IntegrityViolation      a PostgreSQL constraint refused a write (has ``sqlstate``)
        ├── JobLost                 another export worker took this job over
        ├── SignInFailed            wrong user name or password (never says which) → 401
        ├── SignInThrottled         too many failed sign-ins for the user or address → 429
        └── SpoolError              the local journal or spool directory is unusable
            └── SpoolFull           the spool's filesystem is out of space (ENOSPC)

The three caller-facing branches are siblings on purpose, so a handler that catches one
cannot swallow another: ``InputError`` (change the request), ``NotFound`` (name something
that exists; deliberately also the answer for what the caller may not see) and
``StateConflict`` (the thing exists but must first change state: restore it, wait for the
job). ``ExportForbidden`` stays an ``InputError``: asking for a narrower range fixes it.
``ObjectConflict``/``RecordingConflict`` are not ``StateConflict``s: they are integrity
guards inside the pipeline, never a caller's to resolve.

Retryability lives only in this tree: ``retry.is_retryable`` is ``isinstance(exc,
TransientError)`` (plus a bare ``OSError``, local I/O that never passed a boundary).
A plain ``CamvaultError`` (an untranslated catalog error) is neither, so it is not retried.
HTTP-layer answers (``api.params.ApiError``, the middleware's ``HTTPException`` subclasses)
are not camvault errors: they are the API's reply shape, built from these at the edge.
"""

from __future__ import annotations

from typing import Any


class CamvaultError(Exception):
    """Base of every error camvault raises on purpose."""


class TransientError(CamvaultError):
    """The operation may succeed if tried again later; the only retryable branch."""


class PermanentError(CamvaultError):
    """Trying the same operation again will fail the same way."""


class ConfigError(PermanentError):
    """Configuration is missing or invalid; raised only at start-up."""


class MigrationChanged(ConfigError):
    """An already applied migration file no longer matches the checksum recorded for it."""


class InputError(PermanentError):
    """The input (file, camera id, time range, parameter) is wrong; never retried."""


class InvalidMedia(InputError):
    """The file is not a complete, readable H.264/H.265 video."""


class UnknownCamera(InputError):
    """The camera id is not in the catalog (the file is quarantined on ingest)."""

    def __init__(self, camera_id: str) -> None:
        super().__init__(f"unknown camera {camera_id!r}: add it with `camvault cameras add`")
        self.camera_id = camera_id


class InvalidTimeRange(InputError):
    """A start/end time is malformed, reversed, too wide or too far in the future."""


class SourceReplaced(InputError):
    """The name ingest validated now names another file; that file was quarantined."""

    def __init__(self, message: str, quarantined_to: str) -> None:
        super().__init__(message)
        self.quarantined_to = quarantined_to


class NotFound(PermanentError):
    """The resource does not exist or is not visible to the caller (same answer on purpose).

    Not an ``InputError``: "no such thing" is answered 404, not 400, and a handler that
    turns bad input into a field error must not turn a missing row into one."""


class UnknownPrincipal(NotFound):
    """No user/group with that name (``field`` = ``user``) or id (``field`` = ``user_id``)."""

    def __init__(self, kind: str, key: str | int) -> None:
        by_id = isinstance(key, int)
        super().__init__(f"no {kind} with id {key}" if by_id else f"no {kind} named {key!r}")
        self.field = f"{kind}_id" if by_id else kind


class StateConflict(PermanentError):
    """The resource exists, but its current state does not allow this yet (HTTP 409).

    The request itself is fine; it succeeds once the state changes (an archived object is
    restored, an export job finishes), so this is neither bad input nor a missing thing."""


class ObjectArchived(StateConflict):
    """The recording's object is in an archive class (GLACIER, DEEP_ARCHIVE) and has no
    readable restored copy; ``state`` says where it is and how to restore it."""

    def __init__(self, message: str, state: dict[str, object]) -> None:
        super().__init__(message)
        self.state = state


class ServiceUnavailable(TransientError):
    """A dependency is unreachable right now; the operation may succeed later."""


class CatalogUnavailable(ServiceUnavailable):
    """PostgreSQL cannot be reached or the connection broke mid-transaction."""


class StorageUnavailable(ServiceUnavailable):
    """S3 cannot be reached, timed out, throttled, or answered 5xx."""

    def __init__(self, message: str, *, code: str = "network") -> None:
        super().__init__(message)
        self.code = code


class StoragePermanentError(PermanentError):
    """S3 refused the request in a way retrying will not fix."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class ObjectConflict(PermanentError):
    """A different object already exists at the deterministic key; we never overwrite it."""


class RecordingConflict(PermanentError):
    """The catalog already has a different recording for this camera and start time."""


class SpoolError(PermanentError):
    """The local spool (journal or directory) is unusable."""


class SignInFailed(PermanentError):
    """Wrong user name or password (deliberately not saying which)."""


class SignInThrottled(PermanentError):
    """Too many recent failed sign-ins for this user name or address."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class SpoolFull(SpoolError):
    """The spool's filesystem has no space left; nothing was lost, retry when it has."""


class StorageUnsupported(PermanentError):
    """The backend answered a bucket-configuration call with 'not supported'."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class IntegrityViolation(PermanentError):
    """A PostgreSQL integrity constraint refused a write; callers branch on ``sqlstate``."""

    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class ExportForbidden(InputError):
    """The caller's ``export`` permission does not cover the requested range (HTTP 403)."""


class ExportNotReady(StateConflict):
    """The export job is not done; ``job`` is the ``export.jobs.ExportJob`` as it stands."""

    def __init__(self, message: str, job: Any) -> None:
        super().__init__(message)
        self.job = job


class JobLost(PermanentError):
    """Another worker took the export job over (this one was presumed dead)."""
