"""Retry schedule: pure functions, no sleeping, no I/O.

Two layers, deliberately:

* botocore's retry layer is set to ``total_max_attempts=1`` (``storage.make_client``), so
  one call of ours is exactly one HTTP attempt (s3transfer still sends several requests
  for a multipart upload, but one *attempt* of ours is one upload);
* within one **round**, an upload is tried ``1 + max_retries`` times with exponential
  backoff and full jitter between attempts (AWS Architecture Blog, "Exponential Backoff
  and Jitter"): ``sleep = uniform(0, min(cap, base * 2**n))``;
* when a round is exhausted the segment goes back to the spool and is **redriven** after a
  growing delay (``redrive_delay``): nothing is ever dropped because retries ran out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from camvault.errors import (
    CamvaultError,
    ObjectConflict,
    StoragePermanentError,
    StorageUnavailable,
    TransientError,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts per round, backoff with full jitter, and the redrive delay between rounds."""

    max_retries: int = 3
    base_seconds: float = 1.0
    cap_seconds: float = 30.0
    redrive_base_seconds: float = 60.0
    redrive_cap_seconds: float = 3600.0

    @property
    def attempts_per_round(self) -> int:
        return 1 + self.max_retries

    def backoff_bound(self, retry: int) -> float:
        """Upper bound of the sleep before retry number ``retry`` (0-based)."""
        return min(self.cap_seconds, self.base_seconds * 2.0**retry)

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        return (rng or random).uniform(0, self.backoff_bound(retry))

    def redrive_delay(self, rounds: int) -> float:
        """Delay before the next round after ``rounds`` exhausted rounds (no jitter needed:
        segments were queued at different times already)."""
        return min(self.redrive_cap_seconds, self.redrive_base_seconds * 2.0 ** max(0, rounds - 1))


def is_retryable(exc: BaseException) -> bool:
    """Transient → retry within the round; permanent → alert at once, no blind retry.

    The tree decides (``errors.TransientError``); a bare ``OSError`` is local I/O that
    never crossed a translating boundary and has always been retried.
    """
    return isinstance(exc, TransientError | OSError)


def error_class(exc: BaseException) -> str:
    """Short, stable class for ``upload_errors.error_class`` and alerts."""
    if isinstance(exc, StorageUnavailable):
        return "network" if exc.code == "network" else f"s3:{exc.code}"
    if isinstance(exc, StoragePermanentError):
        return f"s3:{exc.code}"
    if isinstance(exc, ObjectConflict):
        return "conflict"
    if isinstance(exc, CamvaultError):
        return type(exc).__name__
    return f"unexpected:{type(exc).__name__}"


def error_code(exc: BaseException) -> str:
    """The S3 error code, or for "no answer" the transport's exception type."""
    if isinstance(exc, StorageUnavailable | StoragePermanentError):
        cause = exc.__cause__
        # boto3's upload_file wraps a part's error; the transport's own is its context
        while (
            cause is not None
            and type(cause).__name__ == "S3UploadFailedError"
            and cause.__context__ is not None
        ):
            cause = cause.__context__
        if exc.code == "network" and cause is not None:
            return type(cause).__name__
        return exc.code
    return type(exc).__name__
