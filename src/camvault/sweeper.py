"""Abort incomplete multipart uploads that nobody will ever complete.

s3transfer aborts a multipart upload itself when a part fails — but not when the network
is gone (the abort fails too) or the process is killed. Such uploads keep their parts
(and their cost) until aborted. This sweeper is the backstop, besides the bucket's
``AbortIncompleteMultipartUpload`` lifecycle rule (days, not minutes).

Which uploads are stale (``is_stale``, pure):

* the key belongs to a segment in *our* spool that is not being uploaded right now →
  stale at once (only one uploader owns a spool, so nobody else can be writing it);
* otherwise (another node's camera, a pruned journal row) → stale once older than
  ``max_age``, so a slow upload of another node under the same prefix is left alone;
* never while ``in_use`` says another writer owns the key: a clip export (``exports/``)
  whose job a live worker is running — a long export may outlast ``max_age``, and
  aborting its upload would fail the job at its last part.

The listing is taken *before* the spool is asked, so an upload started after the listing
is never seen, and one seen while its segment was claimed is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from camvault.models import SegmentState

log = logging.getLogger(__name__)


class MultipartStore(Protocol):
    """The sweeper's view of S3 (see ``s3.contract.MultipartStore``)."""

    def list_multipart_uploads(self, prefix: str) -> Iterator[tuple[str, str, datetime]]: ...
    def abort_multipart_upload(self, key: str, upload_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class StaleUpload:
    """An incomplete multipart upload the sweeper aborted (or would abort), and why."""

    key: str
    upload_id: str
    initiated: datetime
    reason: str


def is_stale(
    initiated: datetime,
    key_states: set[str],
    *,
    now: datetime,
    max_age: timedelta,
    in_use: bool = False,
) -> str | None:
    """Why this incomplete upload may be aborted, or None to keep it. ``in_use``: another
    writer owns the key right now (a running export), whatever the upload's age."""
    if in_use or SegmentState.UPLOADING in key_states:
        return None
    if key_states:
        return "our segment, not being uploaded"
    if now - initiated >= max_age:
        return f"older than {max_age.total_seconds():.0f} s"
    return None


class MultipartSweeper:
    """Aborts incomplete multipart uploads under ``prefix`` that ``is_stale`` says nobody owns."""

    def __init__(
        self,
        store: MultipartStore,
        key_states: Callable[[str], set[str]],
        *,
        prefix: str,
        max_age: timedelta,
        in_use: Callable[[str], bool] = lambda key: False,
    ) -> None:
        self._store = store
        self._key_states = key_states
        self._in_use = in_use
        self._prefix = prefix
        self._max_age = max_age

    def sweep(self, *, dry_run: bool = False, now: datetime | None = None) -> list[StaleUpload]:
        now = now or datetime.now(UTC)
        found = list(self._store.list_multipart_uploads(self._prefix))
        stale: list[StaleUpload] = []
        for key, upload_id, initiated in found:
            why = is_stale(
                initiated,
                self._key_states(key),
                now=now,
                max_age=self._max_age,
                in_use=self._in_use(key),
            )
            if why is None:
                continue
            if not dry_run:
                self._store.abort_multipart_upload(key, upload_id)
                log.info("aborted stale multipart upload %s of %s (%s)", upload_id, key, why)
            stale.append(StaleUpload(key, upload_id, initiated, why))
        return stale
