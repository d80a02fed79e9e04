"""The upload → commit pipeline that drains the spool.

For each claimed segment: up to ``1 + max_retries`` upload attempts with jittered backoff
(``retry``); then the catalog commit; only after the commit the spool closes the entry and
deletes the file. When a round of retries is exhausted, or S3 refuses for good, the error
is written to ``upload_errors`` (journaled locally if PostgreSQL is down too), an alert is
sent, and the segment goes back to the spool for a later round — never dropped. A commit
that fails leaves the segment ``uploaded``: that is the reprocessing queue, retried here
and by ``camvault reconcile``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from camvault.alerts import Alert, AlertSink
from camvault.catalog import Catalog
from camvault.errors import (
    CamvaultError,
    CatalogUnavailable,
    ObjectConflict,
    RecordingConflict,
    UnknownCamera,
)
from camvault.models import Segment, SegmentState, StoredObject
from camvault.objectmeta import recording_from_segment
from camvault.retry import RetryPolicy, error_class, is_retryable
from camvault.spool import Spool, utcnow
from camvault.sweeper import MultipartSweeper
from camvault.uploader import Uploader

log = logging.getLogger(__name__)

EventHook = Callable[[str, Segment, str], None]


@dataclass
class Tally:
    """Counters of one pipeline run (shared by worker threads)."""

    committed: int = 0
    bytes: int = 0
    failed_rounds: int = 0
    deferred_commits: int = 0
    conflicts: int = 0
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **kw: int | str | None) -> None:
        with self._lock:
            for k, v in kw.items():
                if k == "last_error":
                    self.last_error = v  # type: ignore[assignment]
                else:
                    setattr(self, k, getattr(self, k) + v)


class Pipeline:
    def __init__(
        self,
        spool: Spool,
        uploader: Uploader,
        catalog: Catalog,
        *,
        policy: RetryPolicy,
        alerts: AlertSink,
        node: str,
        concurrency: int = 4,
        rng: random.Random | None = None,
        on_event: EventHook | None = None,
        sweeper: MultipartSweeper | None = None,
        sweep_interval_seconds: float = 300.0,
    ) -> None:
        self.spool = spool
        self.uploader = uploader
        self.catalog = catalog
        self.policy = policy
        self.alerts = alerts
        self.node = node
        self.concurrency = concurrency
        self.rng = rng or random.Random()
        self.on_event = on_event or (lambda kind, seg, detail: None)
        self.tally = Tally()
        self.sweeper = sweeper
        self.sweep_interval_seconds = sweep_interval_seconds

    # one segment -------------------------------------------------------------------------
    def process(self, seg: Segment, stop: threading.Event) -> None:
        """Upload (with retries) and commit one segment the caller has claimed."""
        crc = self.spool.crc32_b64(seg.id)
        last: BaseException | None = None
        obj: StoredObject | None = None
        for attempt in range(self.policy.attempts_per_round):
            if attempt and stop.wait(self.policy.backoff(attempt - 1, self.rng)):
                # shutting down mid-round: back to the queue, this round does not count
                self.spool.release(
                    seg.id,
                    error=f"interrupted: {last}",
                    next_attempt_at=utcnow(),
                    round_exhausted=False,
                )
                return
            try:
                obj = self.uploader.upload(seg, crc32_b64=crc)
                self.spool.record_attempt(seg.id, None)
                break
            except Exception as exc:  # anything: a worker thread must never die on one segment
                last = exc
                self.spool.record_attempt(seg.id, str(exc))
                self.on_event("attempt_failed", seg, str(exc))
                log.info("upload attempt %d of %s failed: %s", attempt + 1, seg.s3_key, exc)
                if not is_retryable(exc):
                    break
        if obj is None:
            assert last is not None
            self._fail_round(seg, last)
            return
        seg = self.spool.mark_uploaded(seg.id, obj)
        self.on_event("uploaded", seg, obj.etag)
        self.commit(seg)

    def commit(self, seg: Segment) -> bool:
        """Write the catalog row for an uploaded segment; on success close the entry."""
        obj = StoredObject(
            bucket=self.uploader.bucket,
            key=seg.s3_key,
            size_bytes=seg.size_bytes,
            etag=seg.etag or "",
            storage_class=seg.storage_class or "STANDARD",
            sse=seg.sse,
            metadata={},
        )
        try:
            _, created = self.catalog.commit_recording(recording_from_segment(seg, obj))
        except CatalogUnavailable as exc:
            # the reprocessing queue: retried with growing delays until the row lands
            self.spool.defer_commit(seg.id, error=str(exc), delay=self.policy.backoff_bound)
            self.tally.add(deferred_commits=1, last_error=str(exc))
            self.on_event("commit_deferred", seg, str(exc))
            return False
        except (RecordingConflict, UnknownCamera) as exc:
            self._conflict(seg, exc)
            return False
        except CamvaultError as exc:
            # the catalog refused the row for good (e.g. a CHECK): retrying cannot help, so
            # hold it for an operator like a conflict — the file and the object stay
            self._conflict(seg, exc)
            return False
        self.spool.mark_committed(seg.id)
        self.tally.add(committed=1, bytes=seg.size_bytes)
        self.on_event("committed", seg, "new row" if created else "row already present")
        if seg.rounds:
            self.alerts.send(self._alert("recovered", seg, None))
        return True

    def _fail_round(self, seg: Segment, exc: BaseException) -> None:
        if isinstance(exc, ObjectConflict):
            self._conflict(seg, exc)
            return
        seg = self.spool.get(seg.id)
        self._record_error(seg, exc)
        self.alerts.send(self._alert("upload_failed", seg, exc))
        delay = self.policy.redrive_delay(seg.rounds + 1)
        self.spool.release(
            seg.id,
            error=str(exc),
            round_exhausted=True,
            next_attempt_at=utcnow() + timedelta(seconds=delay),
        )
        self.tally.add(failed_rounds=1, last_error=str(exc))
        self.on_event("round_failed", seg, str(exc))

    def _conflict(self, seg: Segment, exc: BaseException) -> None:
        seg = self.spool.get(seg.id)
        self.spool.mark_conflict(seg.id, str(exc))
        self._record_error(seg, exc)
        self.alerts.send(self._alert("conflict", seg, exc))
        self.tally.add(conflicts=1, last_error=str(exc))
        self.on_event("conflict", seg, str(exc))

    def _alert(self, kind: str, seg: Segment, exc: BaseException | None) -> Alert:
        return Alert(
            kind=kind,
            camera_id=seg.camera_id,
            segment_id=seg.id,
            s3_key=seg.s3_key,
            error_class=error_class(exc) if exc else "",
            message=str(exc or ""),
            attempts=seg.attempts,
            node=self.node,
            occurred_at=utcnow(),
        )

    def _record_error(self, seg: Segment, exc: BaseException) -> None:
        now = utcnow()
        payload: dict[str, Any] = {
            "camera_id": seg.camera_id,
            "segment_id": seg.id,
            "s3_key": seg.s3_key,
            "attempts": seg.attempts,
            "error_class": error_class(exc),
            "message": str(exc),
            "node": self.node,
            "occurred_at": now,
        }
        try:
            self.catalog.record_upload_error(**payload)
        except CatalogUnavailable:
            # PostgreSQL is down too: keep it locally, ``flush_errors`` writes it later
            self.spool.journal_error({**payload, "occurred_at": now.isoformat()})

    def _process_guarded(self, seg: Segment, stop: threading.Event) -> None:
        """A bug while handling one segment must neither kill the worker thread (the spool
        would silently stop draining) nor lose the segment: it goes back to the queue."""
        try:
            self.process(seg, stop)
        except Exception as exc:
            log.exception("unexpected error handling %s; it stays in the spool", seg.s3_key)
            try:
                current = self.spool.get(seg.id)
                if current.state is SegmentState.UPLOADING:
                    delay = self.policy.redrive_delay(current.rounds + 1)
                    self.spool.release(
                        seg.id,
                        error=f"unexpected: {exc!r}",
                        round_exhausted=True,
                        next_attempt_at=utcnow() + timedelta(seconds=delay),
                    )
            except CamvaultError:
                log.exception("could not return %s to the queue; recover() will", seg.id)
            self.tally.add(last_error=f"unexpected: {exc!r}")

    # housekeeping --------------------------------------------------------------------------
    def flush_errors(self) -> int:
        """Write locally journaled upload errors to PostgreSQL (idempotent per attempt)."""
        flushed = 0
        for error_id, p in self.spool.pending_errors():
            try:
                self.catalog.record_upload_error(
                    **{**p, "occurred_at": datetime.fromisoformat(p["occurred_at"])}
                )
            except CatalogUnavailable:
                break
            self.spool.drop_pending_error(error_id)
            flushed += 1
        return flushed

    def sweep(self) -> int:
        """Abort stale multipart uploads (see ``sweeper``); 0 when S3 is unreachable."""
        if self.sweeper is None:
            return 0
        try:
            return len(self.sweeper.sweep())
        except CamvaultError as exc:
            log.warning("multipart sweep skipped: %s", exc)
            return 0

    def retry_commits(self, *, ignore_delay: bool = False) -> int:
        done = 0
        for seg in self.spool.due_commits(ignore_delay=ignore_delay):
            if self.commit(seg):
                done += 1
            else:
                break  # the catalog is still down; don't hammer it
        return done

    # loops ---------------------------------------------------------------------------------
    def drain(
        self, stop: threading.Event | None = None, *, more: threading.Event | None = None
    ) -> Tally:
        """Operator's "drain now": one round for every pending segment, ignoring redrive
        delays, then return. A segment that fails is tried once per drain, not forever.
        Until ``more`` is set, segments may still be queued (``ingest --upload``): they are
        waited for and uploaded as they come, overlapping the probing of the next ones."""
        stop = stop or threading.Event()
        self.flush_errors()
        self.retry_commits(ignore_delay=True)
        self.sweep()
        seen: set[str] = set()
        seen_lock = threading.Lock()

        def work() -> None:
            while not stop.is_set():
                finished = more is None or more.is_set()  # before claiming: none is missed
                token = self.spool.queued_token()
                with seen_lock:
                    seg = self.spool.claim(ignore_delay=True, exclude=seen)
                    if seg is not None:
                        seen.add(seg.id)
                if seg is None:
                    if finished:
                        return
                    self.spool.wait_queued(token, stop, 0.1)  # `more` does not notify
                    continue
                self._process_guarded(seg, stop)

        self._run_threads(work)
        return self.tally

    def run(self, stop: threading.Event, *, poll_seconds: float = 1.0) -> Tally:
        """Work until ``stop`` is set: upload due segments, redrive, retry commits."""

        def work() -> None:
            while not stop.is_set():
                token = self.spool.queued_token()
                seg = self.spool.claim()
                if seg is None:
                    self.spool.wait_queued(token, stop, poll_seconds)  # or a new segment
                    continue
                self._process_guarded(seg, stop)

        def housekeeping() -> None:
            next_sweep = 0.0
            while not stop.wait(poll_seconds):
                try:
                    self.flush_errors()
                    self.retry_commits()
                    if time.monotonic() >= next_sweep:
                        self.sweep()
                        next_sweep = time.monotonic() + self.sweep_interval_seconds
                except CamvaultError as exc:
                    log.warning("housekeeping: %s", exc)

        self._run_threads(work, housekeeping)
        return self.tally

    def _run_threads(self, work: Callable[[], None], *extra: Callable[[], None]) -> None:
        threads = [
            threading.Thread(target=work, name=f"upload-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        threads += [threading.Thread(target=fn, name=fn.__name__, daemon=True) for fn in extra]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
