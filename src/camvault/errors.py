"""The whole camvault exception tree, in one place.

Every I/O boundary (boto3 in ``storage``, psycopg in ``catalog.connector``, PyAV in
``probe``) translates the library's own exceptions into one of these, so the rest of the
code branches on *our* classes, never on third-party types or message text::

    CamvaultError
    ├── ConfigError                 settings missing or invalid (fails start-up, one line)
    ├── InputError                  the caller's input is wrong → CLI exit 2 / HTTP 4xx
    │   ├── InvalidMedia            not a readable H.264/H.265 video (quarantined)
    │   ├── UnknownCamera           camera id not in the catalog (quarantined on ingest)
    │   ├── InvalidTimeRange        start/end malformed, reversed, too wide, in the future
    │   ├── SourceReplaced          a file's name was swapped during ingest (quarantined)
    │   ├── NotFound                no such (visible) resource
    │   │   └── UnknownPrincipal    no such user/group (by name or by id)
    │   └── ObjectArchived          the object is in Glacier: restore it first (HTTP 409)
    ├── ServiceUnavailable          a dependency cannot be reached right now (retryable)
    │   ├── CatalogUnavailable      PostgreSQL down, connection cut, timeout
    │   └── StorageUnavailable      S3 unreachable, 5xx, throttled, connection cut
    ├── StoragePermanentError       S3 said no for good: AccessDenied, NoSuchBucket, bad key,
    │                               checksum mismatch (alert at once, no blind retry)
    ├── ObjectConflict              a *different* object already sits at our deterministic key
    ├── RecordingConflict           the catalog already holds a different recording there
    ├── SignInFailed                wrong user name or password (never says which) → 401
    ├── SignInThrottled             too many failed sign-ins for the user or address → 429
    └── SpoolError                  the local journal or spool directory is unusable
        └── SpoolFull               the spool's filesystem is out of space (ENOSPC)
"""

from __future__ import annotations


class CamvaultError(Exception):
    """Base of every error camvault raises on purpose."""


class ConfigError(CamvaultError):
    """Configuration is missing or invalid; raised only at start-up."""


class InputError(CamvaultError):
    """The input (file, camera id, time range, parameter) is wrong; never retried."""


class InvalidMedia(InputError):
    """The file is not a complete, readable H.264/H.265 video."""


class UnknownCamera(InputError):
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


class NotFound(InputError):
    """The resource does not exist or is not visible to the caller (same answer on purpose)."""


class UnknownPrincipal(NotFound):
    """No user/group with that name (``field`` = ``user``) or id (``field`` = ``user_id``)."""

    def __init__(self, kind: str, key: str | int) -> None:
        by_id = isinstance(key, int)
        super().__init__(f"no {kind} with id {key}" if by_id else f"no {kind} named {key!r}")
        self.field = f"{kind}_id" if by_id else kind


class ObjectArchived(InputError):
    """The recording's object is in an archive class (GLACIER, DEEP_ARCHIVE) and has no
    readable restored copy; ``state`` says where it is and how to restore it."""

    def __init__(self, message: str, state: dict[str, object]) -> None:
        super().__init__(message)
        self.state = state


class ServiceUnavailable(CamvaultError):
    """A dependency is unreachable right now; the operation may succeed later."""


class CatalogUnavailable(ServiceUnavailable):
    """PostgreSQL cannot be reached or the connection broke mid-transaction."""


class StorageUnavailable(ServiceUnavailable):
    """S3 cannot be reached, timed out, throttled, or answered 5xx."""

    def __init__(self, message: str, *, code: str = "network") -> None:
        super().__init__(message)
        self.code = code


class StoragePermanentError(CamvaultError):
    """S3 refused the request in a way retrying will not fix."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class ObjectConflict(CamvaultError):
    """A different object already exists at the deterministic key; we never overwrite it."""


class RecordingConflict(CamvaultError):
    """The catalog already has a different recording for this camera and start time."""


class SpoolError(CamvaultError):
    """The local spool (journal or directory) is unusable."""


class SignInFailed(CamvaultError):
    """Wrong user name or password (deliberately not saying which)."""


class SignInThrottled(CamvaultError):
    """Too many recent failed sign-ins for this user name or address."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class SpoolFull(SpoolError):
    """The spool's filesystem has no space left; nothing was lost, retry when it has."""
