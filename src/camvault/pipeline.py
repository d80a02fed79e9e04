"""The upload → commit pipeline that drains the spool.

For each claimed segment: up to ``1 + max_retries`` upload attempts with jittered backoff
(``retry``); then the catalog commit; only after the commit the spool closes the entry and
deletes the file. Every failed attempt is an ``upload_attempts`` row (``attempt_log``:
journaled in the spool first, so also while PostgreSQL is down), updated with the round's
outcome when the round ends. When a round of retries is exhausted, or S3 refuses for good,
the error is written to ``upload_errors`` (journaled locally if PostgreSQL is down too), an
alert is sent, and the segment goes back to the spool for a later round — never dropped. A
commit that fails leaves the segment ``uploaded``: that is the reprocessing queue, retried
here and by ``camvault reconcile``.

S3 and PostgreSQL each have a circuit breaker (``recovery``): when one is down as a whole,
workers hold their work and a single probe watches it; when it answers, the delays the
outage caused are lifted and the backlog drains at full concurrency, oldest first.
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
from camvault.attempt_log import AttemptLog, SentBytes
from camvault.breaker import CircuitBreaker
from camvault.catalog import Catalog
from camvault.catalog.attempts import AttemptRecord, Outcome
from camvault.errors import (
    CamvaultError,
    CatalogUnavailable,
    ObjectConflict,
    RecordingConflict,
    SpoolError,
    StoragePermanentError,
    StorageUnavailable,
    UnknownCamera,
)
from camvault.models import Segment, SegmentState, StoredObject
from camvault.objectmeta import recording_from_segment
from camvault.recovery import Endpoint, is_connection_failure
from camvault.retry import RetryPolicy, error_class, error_code, is_retryable
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
    failed_attempts: int = 0
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
    """Drains the spool (see the module docstring): upload with bounded retries, commit, then
    release the file; alerts and error rows on failure, nothing dropped."""

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
        attempt_log: AttemptLog,
        s3_breaker: CircuitBreaker | None = None,
    ) -> None:
        self.spool = spool
        self.uploader = uploader
        self.catalog = catalog
        self.policy = policy
        self.alerts = alerts
        self.node = node
        self.concurrency = concurrency
        # PUTs in flight; ``drain`` runs spare workers so that a worker busy with its
        # commit (journal fsyncs, the catalog row) never leaves a sending slot idle
        self._sending = threading.BoundedSemaphore(concurrency)
        self.rng = rng or random.Random()
        self.on_event = on_event or (lambda kind, seg, detail: None)
        self.tally = Tally()
        self.sweeper = sweeper
        self.sweep_interval_seconds = sweep_interval_seconds
        self.attempt_log = attempt_log
        self.s3 = Endpoint(s3_breaker or CircuitBreaker("S3"), uploader.probe, self._s3_back)
        self.pg = Endpoint(attempt_log.breaker, attempt_log.catalog.ping, self._pg_back)

    def _s3_back(self) -> None:
        n = self.spool.clear_holds("endpoint")
        if n:
            log.warning("S3 is back: %d segment(s) held by the outage are due now", n)

    def _pg_back(self) -> None:
        n = self.spool.commits_due_now()
        if n:
            log.warning("PostgreSQL is back: %d deferred commit(s) are due now", n)
        self.attempt_log.flush()

    # one segment -------------------------------------------------------------------------
    def process(self, seg: Segment, stop: threading.Event) -> None:
        """Upload (with retries) and commit one segment the caller has claimed."""
        crc = self.spool.crc32_b64(seg.id)
        last: BaseException | None = None
        obj: StoredObject | None = None
        failed = 0
        for attempt in range(self.policy.attempts_per_round):
            if attempt and is_connection_failure(last) and self.s3.breaker.is_open:
                break  # S3 is down as a whole: no more retries against it this round
            if attempt and stop.wait(self.policy.backoff(attempt - 1, self.rng)):
                # shutting down mid-round: back to the queue, this round does not count
                self._end_round(seg, failed, "interrupted")
                self.spool.release(
                    seg.id,
                    error=f"interrupted: {last}",
                    next_attempt_at=utcnow(),
                    round_exhausted=False,
                )
                return
            sent = SentBytes()
            try:
                with self._sending:
                    obj = self.uploader.upload(seg, crc32_b64=crc, progress=sent.add)
                self.s3.answered()  # the attempt is counted by mark_uploaded below
                break
            except Exception as exc:  # anything: a worker thread must never die on one segment
                last = exc
                failed += 1
                self.spool.record_attempt(seg.id, str(exc))
                self._attempt_failed(seg, seg.attempts + attempt + 1, exc, sent.total)
                self.on_event("attempt_failed", seg, str(exc))
                log.info("upload attempt %d of %s failed: %s", attempt + 1, seg.s3_key, exc)
                if not is_retryable(exc):
                    break
        if obj is None:
            assert last is not None
            self._end_round(seg, failed, "failed")
            self._fail_round(seg, last)
            return
        self._end_round(seg, failed, "succeeded")
        seg = self.spool.mark_uploaded(seg.id, obj, attempted=True)
        self.on_event("uploaded", seg, obj.etag)
        self.commit(seg)

    def _attempt_failed(self, seg: Segment, number: int, exc: BaseException, sent: int) -> None:
        self.tally.add(failed_attempts=1)
        if is_connection_failure(exc):
            if self.s3.breaker.failure(seg.id):
                log.warning(
                    "S3 does not answer (%s): uploads paused, probing until it is back", exc
                )
        elif isinstance(exc, StorageUnavailable | StoragePermanentError | ObjectConflict):
            self.s3.answered()  # an error *response*: S3 itself is reachable
        self._log_attempt(
            AttemptRecord(
                camera_id=seg.camera_id,
                segment_id=seg.id,
                s3_key=seg.s3_key,
                round=seg.rounds + 1,
                attempt=number,
                error_class=error_class(exc),
                error_code=error_code(exc),
                message=str(exc),
                bytes_sent=sent or None,
                node=self.node,
                occurred_at=utcnow(),
            )
        )

    def _end_round(self, seg: Segment, failed: int, outcome: Outcome) -> None:
        if failed:
            self._log_attempt(None, seg.id, outcome)

    def _log_attempt(
        self, rec: AttemptRecord | None, seg_id: str = "", outcome: Outcome = "pending"
    ) -> None:
        # the attempt rows are a record, not the work: a journal hiccup must not stop it
        try:
            if rec is not None:
                self.attempt_log.failed(rec)
            else:
                self.attempt_log.round_ended(seg_id, outcome)
        except CamvaultError:
            log.exception("could not record an upload attempt of segment %s", seg_id or rec)

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
            if self.pg.breaker.is_open:  # don't wait out a connect timeout per segment
                raise CatalogUnavailable("PostgreSQL does not answer (circuit open)")
            _, created = self.catalog.commit_recording(recording_from_segment(seg, obj))
            self.pg.answered()
        except CatalogUnavailable as exc:
            if not self.pg.breaker.is_open:
                self.pg.breaker.failure(seg.id)
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
            # no answer from S3: if it turns out to be down as a whole, this delay is the
            # outage's, not the segment's, and is lifted the moment S3 answers again
            hold="endpoint" if is_connection_failure(exc) else None,
        )
        self.tally.add(failed_rounds=1, last_error=str(exc))
        self.on_event("round_failed", seg, str(exc))

    def _conflict(self, seg: Segment, exc: BaseException) -> None:
        seg = self.spool.get(seg.id)
        self.spool.mark_conflict(seg.id, str(exc))
        # never retried on its own: said at ERROR (besides the alert) and counted
        # (camvault_upload_conflicts; held ones: camvault_spool_conflicts)
        log.error(
            "camera %s: segment %s held in the spool for an operator (state conflict; "
            "nothing overwritten, nothing deleted; file %s): %s",
            seg.camera_id,
            seg.s3_key,
            seg.path,
            exc,
        )
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
            if self.pg.breaker.is_open:
                raise CatalogUnavailable("PostgreSQL does not answer (circuit open)")
            self.catalog.record_upload_error(**payload)
        except CatalogUnavailable:
            if not self.pg.breaker.is_open:
                self.pg.breaker.failure(f"upload-error:{seg.id}")
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
        if not self.pg.probe_now():  # called directly: "now", also after an outage
            return 0
        for error_id, p in self.spool.pending_errors():
            try:
                self.catalog.record_upload_error(
                    **{**p, "occurred_at": datetime.fromisoformat(p["occurred_at"])}
                )
            except CatalogUnavailable:
                self.pg.breaker.failure("upload-errors-journal")
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
        if self.pg.breaker.is_open:
            return 0
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
        # "now" also for an endpoint that was down: probe it at once instead of waiting
        self.s3.probe_now()
        self.pg.probe_now()
        self.attempt_log.interrupt_stale()
        self.attempt_log.flush()
        self.flush_errors()
        self.retry_commits(ignore_delay=True)
        # before any worker claims: a multipart upload a crash left for a segment that is
        # queued again is aborted only while nobody is uploading that key (test_kill9)
        self.sweep()
        seen: set[str] = set()
        seen_lock = threading.Lock()

        def work() -> None:
            while not stop.is_set():
                if self.s3.breaker.is_open:
                    return  # S3 is down as a whole: the rest waits for the next drain
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

        # twice the workers, ``concurrency`` of them sending: the uploads of a drain tend
        # to finish together (they share the link), and their commits then overlap the
        # next PUTs instead of stalling the link for a commit's length each time
        self._run_threads(work, workers=2 * self.concurrency)
        return self.tally

    def run(self, stop: threading.Event, *, poll_seconds: float = 1.0) -> Tally:
        """Work until ``stop`` is set: upload due segments, redrive, retry commits."""

        self.attempt_log.interrupt_stale()

        def work() -> None:
            while not stop.is_set():
                if self.s3.breaker.is_open:
                    # hold the work; the S3 watcher's probe wakes us the moment it answers
                    self.s3.breaker.wait_closed(poll_seconds)
                    continue
                token = self.spool.queued_token()
                try:
                    seg = self.spool.claim()
                except SpoolError as exc:  # e.g. the spool disk is full: wait, never die
                    log.error("cannot claim a segment: %s", exc)
                    stop.wait(poll_seconds)
                    continue
                if seg is None:
                    self.spool.wait_queued(token, stop, poll_seconds)  # or a new segment
                    continue
                self._process_guarded(seg, stop)

        def watch_s3() -> None:
            self.s3.watch(stop)

        def watch_pg() -> None:
            self.pg.watch(stop)

        def housekeeping() -> None:
            next_sweep = 0.0
            while not stop.wait(poll_seconds):
                try:
                    if not self.pg.breaker.is_open:  # else its watcher probes, backing off
                        self.attempt_log.flush()
                        self.flush_errors()
                    self.retry_commits()
                    if not self.s3.breaker.is_open and time.monotonic() >= next_sweep:
                        self.sweep()
                        next_sweep = time.monotonic() + self.sweep_interval_seconds
                except CamvaultError as exc:
                    log.warning("housekeeping: %s", exc)

        self._run_threads(work, housekeeping, watch_s3, watch_pg)
        return self.tally

    def _run_threads(
        self, work: Callable[[], None], *extra: Callable[[], None], workers: int = 0
    ) -> None:
        threads = [
            threading.Thread(target=work, name=f"upload-{i}", daemon=True)
            for i in range(workers or self.concurrency)
        ]
        threads += [threading.Thread(target=fn, name=fn.__name__, daemon=True) for fn in extra]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
