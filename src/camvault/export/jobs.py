"""Clip export jobs: the request (as the caller, under row-level security) and the run (a
worker, as the service role).

Request: the caller's ``export`` permission must cover the whole range
(``camvault_acl_range``), the range is at most ``[api] max_export_minutes``, archived
recordings in it → ``ObjectArchived`` naming them; the row is inserted ``queued`` and the
request audited, in one transaction.

Run: a worker claims the row (``FOR UPDATE SKIP LOCKED``; a ``running`` row whose
heartbeat is older than ``stale_seconds`` is taken over — its worker died), plans the cut
from the recordings' indexes and keyframes, assembles the fragmented MP4 from their
samples (``jobsplice``: when every recording qualifies) or lets ffmpeg stream-copy them
from presigned URLs into a pipe — the row's ``assembly`` says which — hashes and uploads
it (SSE-S3 multipart) as it is produced (``upload``), and marks the row ``done``. A job
that fails, or whose worker died ``MAX_ATTEMPTS`` times, ends ``failed`` with its object
deleted: there is never a partial object (the multipart upload is completed only after
the clip ended cleanly, aborted on any failure, and a dead worker's upload is aborted by
the worker taking its job over).
The splice reads the recordings through ranged GETs in this process (no ffmpeg child):
a GET that fails after its retries fails the job the same way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from camvault.catalog.access import Identity, spans
from camvault.catalog.connector import Connector, Row, Session
from camvault.catalog.queries import query
from camvault.catalog.recordings import recording_from_row
from camvault.errors import (
    CamvaultError,
    CatalogUnavailable,
    ExportForbidden,
    ExportNotReady,
    InputError,
    JobLost,
    NotFound,
    ObjectArchived,
)
from camvault.export import ffprobe
from camvault.export.clip import ClipPlan, Source, first_offset, plan_clip
from camvault.export.feed import Feed, FeedOptions, RangeReader
from camvault.export.jobsplice import FFMPEG, SPLICE, plan_job, prepare_job, write
from camvault.export.media import (
    MP4_LAYOUT,
    ClipMetadata,
    probe_keyframes,
    render_stream,
    with_origins,
)
from camvault.export.rangeindex import Index
from camvault.export.splice import Splice
from camvault.export.upload import StreamUpload, Uploaded, abort_stale, part_size
from camvault.lifecycle import EXPORTS_DIR
from camvault.models import Recording
from camvault.storage import S3ObjectStore

log = logging.getLogger(__name__)

ARCHIVED = frozenset({"GLACIER", "DEEP_ARCHIVE"})
MAX_ATTEMPTS = 2
LOOKBACK = timedelta(hours=1)  # how far before `start` a keyframe may be looked for


def q(name: str) -> str:
    return query(name, "exports.sql")


def export_key_in_use(db: Connector, key: str, stale_seconds: float) -> bool:
    """Is ``key`` the object of an export job a live worker is writing (its multipart
    upload must outlive the sweeper's age limit)? Unknown — the catalog unreachable —
    counts as yes: never abort what may be in use."""
    try:
        with db.transaction() as s:
            rows = s.fetchall(q("live_exports"), {"ids": [], "keys": [key], "stale": stale_seconds})
    except CatalogUnavailable:
        return True
    return bool(rows)


@dataclass(frozen=True, slots=True)
class ExportJob:
    """An ``exports`` row: the requested range, who asked, what they may export from
    (``allowed_start``), the recordings used, state, progress and the result."""

    id: int
    camera_id: str
    range_start: datetime
    range_end: datetime
    state: str
    progress: float
    requested_by: int | None
    requester_name: str
    allowed_start: datetime
    recording_ids: tuple[int, ...]
    cut: str | None
    actual_start: datetime | None
    actual_end: datetime | None
    gaps: tuple[dict[str, str], ...]
    s3_bucket: str | None
    s3_key: str | None
    size_bytes: int | None
    sha256: str | None
    sse: str | None
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None = None  # who claimed it last
    assembly: str | None = None  # "splice" | "ffmpeg", once planned


def job_from_row(row: Row) -> ExportJob:
    return ExportJob(
        id=row["id"],
        camera_id=row["camera_id"],
        range_start=row["range_start"].astimezone(UTC),
        range_end=row["range_end"].astimezone(UTC),
        state=row["state"],
        progress=float(row["progress"]),
        requested_by=row["requested_by"],
        requester_name=row["requester_name"],
        allowed_start=row["allowed_start"].astimezone(UTC),
        recording_ids=tuple(row["recording_ids"]),
        cut=row["cut"],
        actual_start=row["actual_start"],
        actual_end=row["actual_end"],
        gaps=tuple(row["gaps"] or ()),
        s3_bucket=row["s3_bucket"],
        s3_key=row["s3_key"],
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        sse=row["sse"],
        error=row["error"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        worker=row["worker"],
        assembly=row.get("assembly"),
    )


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from, for the audit trail."""

    client_addr: str | None = None
    user_agent: str | None = None


def audit(s: Session, who: Identity | None, action: str, job: ExportJob, **detail: Any) -> None:
    s.execute(
        query("insert_audit", "access.sql"),
        {
            "user_id": who.user_id if who else job.requested_by,
            "user_name": who.user_name if who else job.requester_name,
            # who acted, as AccessCatalog writes it: the API user, else the export worker
            "actor": f"user:{who.user_name}" if who else "system",
            "action": action,
            "camera_id": job.camera_id,
            "recording_id": None,
            "recording_start": job.range_start,
            "s3_key": job.s3_key,
            "client_addr": detail.pop("client_addr", None),
            "user_agent": (detail.pop("user_agent", None) or "")[:512] or None,
            "detail": json.dumps({"export_id": job.id, **detail}, default=str),
        },
    )


class ExportRequests:
    """The request side. ``connector`` runs as the API role for API callers; the operator
    CLI passes the owner's connector and ``who=None`` (sees and may export everything)."""

    def __init__(self, connector: Connector, *, max_minutes: int) -> None:
        self._db = connector
        self.max_minutes = max_minutes

    @contextmanager
    def _tx(self, who: Identity | None) -> Iterator[Session]:
        with self._db.transaction(acting_user=who.user_id if who else None) as s:
            yield s

    def validate(self, start: datetime, end: datetime) -> None:
        if end <= start:
            raise InputError("end must be after start")
        if end - start > timedelta(minutes=self.max_minutes):
            raise InputError(f"an export spans at most {self.max_minutes} minutes")

    def request(
        self,
        who: Identity | None,
        camera_id: str,
        start: datetime,
        end: datetime,
        origin: Origin = Origin(),
    ) -> ExportJob:
        self.validate(start, end)
        with self._tx(who) as s:
            recs, allowed = self._resolve(s, who, camera_id, start, end)
            row = s.fetchone(
                q("insert_export"),
                {
                    "requested_by": who.user_id if who else None,
                    "requester_name": who.user_name if who else "operator",
                    "camera_id": camera_id,
                    "start": start,
                    "end": end,
                    "allowed_start": allowed,
                    "recording_ids": [r.id for r in recs],
                },
            )
            assert row is not None
            job = job_from_row(row)
            audit(
                s,
                who,
                "export.request",
                job,
                start=start,
                end=end,
                recordings=len(recs),
                client_addr=origin.client_addr,
                user_agent=origin.user_agent,
            )
        return job

    def _resolve(
        self, s: Session, who: Identity | None, camera_id: str, start: datetime, end: datetime
    ) -> tuple[list[Recording], datetime]:
        """The checks of an export: camera visible, ``export`` on the whole range, footage
        there and none of it archived. Returns the recordings and ``allowed_start``."""
        if s.fetchone(query("visible_camera", "access.sql"), {"id": camera_id}) is None:
            raise NotFound(f"no camera {camera_id!r}")
        allowed = start - LOOKBACK
        if who is not None:
            allowed = self._check_permission(s, camera_id, start, end)
        rows = s.fetchall(
            q("range_recordings"), {"camera_id": camera_id, "start": start, "end": end}
        )
        recs = [recording_from_row(r) for r in rows]
        if not recs:
            raise NotFound("no footage in the requested range")
        archived = [r for r in recs if r.storage_class.upper() in ARCHIVED]
        if archived:
            raise ObjectArchived(
                f"{len(archived)} recording(s) in the range are archived; restore them first",
                {
                    "recordings": [
                        {
                            "id": r.id,
                            "start_time": r.start_time.isoformat(),
                            "storage_class": r.storage_class,
                            "restore": {
                                "method": "POST",
                                "path": f"/api/recordings/{r.id}/restore",
                            },
                        }
                        for r in archived
                    ]
                },
            )
        return recs, allowed

    def stream(
        self,
        who: Identity | None,
        camera_id: str,
        start: datetime,
        end: datetime,
        origin: Origin = Origin(),
    ) -> tuple[list[Recording], datetime]:
        """The checks of an export for a clip streamed on the fly (no job, no object);
        audited as ``export.stream`` before anything is sent."""
        self.validate(start, end)
        with self._tx(who) as s:
            recs, allowed = self._resolve(s, who, camera_id, start, end)
            s.execute(
                query("insert_audit", "access.sql"),
                {
                    "user_id": who.user_id if who else None,
                    "user_name": who.user_name if who else "operator",
                    "actor": f"user:{who.user_name}" if who else "system",
                    "action": "export.stream",
                    "camera_id": camera_id,
                    "recording_id": None,
                    "recording_start": start,
                    "s3_key": None,
                    "client_addr": origin.client_addr,
                    "user_agent": (origin.user_agent or "")[:512] or None,
                    "detail": json.dumps(
                        {"start": start, "end": end, "recordings": [r.id for r in recs]},
                        default=str,
                    ),
                },
            )
        return recs, allowed

    @staticmethod
    def _check_permission(s: Session, camera_id: str, start: datetime, end: datetime) -> datetime:
        row = s.fetchone(
            q("acl_range"), {"camera_id": camera_id, "start": start, "end": end, "perm": "export"}
        )
        covered = spans(row["r"]) if row else ()
        if covered != ((start, end),):
            raise ExportForbidden(
                "exporting needs the export permission on the whole range"
                + (f"; yours covers {_fmt(covered)}" if covered else "")
            )
        lo = s.fetchone(
            q("allowed_start"), {"camera_id": camera_id, "start": start, "lookback": LOOKBACK}
        )
        return min(start, lo["lo"]) if lo and lo["lo"] else start

    def get(self, who: Identity | None, export_id: int) -> ExportJob:
        with self._tx(who) as s:
            row = s.fetchone(q("get_export"), {"id": export_id})
        if row is None:
            raise NotFound(f"no export {export_id}")
        return job_from_row(row)

    def list(
        self, who: Identity | None, *, limit: int = 100, before_id: int | None = None
    ) -> list[ExportJob]:
        with self._tx(who) as s:
            rows = s.fetchall(q("list_exports"), {"limit": limit, "before_id": before_id})
        return [job_from_row(r) for r in rows]

    def download(
        self,
        who: Identity | None,
        export_id: int,
        presign: Callable[[str], str],
        origin: Origin = Origin(),
    ) -> tuple[ExportJob, str]:
        """A presigned URL of a finished export, issued only once its audit row commits
        and while the requester still holds ``export`` on the range."""
        with self._tx(who) as s:
            row = s.fetchone(q("get_export"), {"id": export_id})
            if row is None:
                raise NotFound(f"no export {export_id}")
            job = job_from_row(row)
            if job.state != "done" or not job.s3_key:
                raise ExportNotReady(f"export {export_id} is {job.state}, not done", job)
            if who is not None and not who.is_admin:
                self._check_permission(s, job.camera_id, job.range_start, job.range_end)
            url = presign(job.s3_key)
            audit(
                s,
                who,
                "export.download",
                job,
                client_addr=origin.client_addr,
                user_agent=origin.user_agent,
            )
        return job, url


def _fmt(covered: tuple[tuple[datetime, datetime], ...]) -> str:
    return ", ".join(f"{a.isoformat()} to {b.isoformat()}" for a, b in covered)


def export_key(prefix: str, job: ExportJob) -> str:
    a, b = job.range_start, job.range_end
    return (
        f"{prefix}{EXPORTS_DIR}{job.camera_id}/"
        f"{job.id}_{job.camera_id}_{a:%Y%m%dT%H%M%S}Z_{b:%Y%m%dT%H%M%S}Z.mp4"
    )


class ExportRunner:
    """Runs export jobs as the service role; ``worker`` names this thread in the row."""

    def __init__(
        self,
        connector: Connector,
        store: S3ObjectStore,
        *,
        prefix: str,
        tmp_dir: Path,
        ffmpeg: str,
        stale_seconds: float = 60.0,
        node: str = "",
        part_concurrency: int = 2,
        feed: FeedOptions | None = None,
    ) -> None:
        self._db = connector
        self._store = store
        self._prefix = prefix
        self._tmp = tmp_dir
        self._ffmpeg = ffmpeg
        self.stale_seconds = stale_seconds
        self._node = node or os.uname().nodename
        self.part_concurrency = part_concurrency
        self.feed = feed  # None: ffmpeg reads the presigned URLs itself

    def worker_name(self) -> str:
        return f"{self._node}:{os.getpid()}:{threading.get_ident()}"

    def claim(self, job_id: int | None = None) -> ExportJob | None:
        with self._db.transaction() as s:
            row = s.fetchone(
                q("claim_export"),
                {"worker": self.worker_name(), "stale": self.stale_seconds, "id": job_id},
            )
        return None if row is None else job_from_row(row)

    def run_next(self, on_progress: Callable[[float], None] | None = None) -> bool:
        job = self.claim()
        if job is None:
            return False
        self.run(job, on_progress)
        return True

    def run(
        self,
        job: ExportJob,
        on_progress: Callable[[float], None] | None = None,
        tee: BinaryIO | None = None,
        *,
        parts_from_tee: bool = False,
    ) -> ExportJob:
        """Run a claimed job. ``tee``: also write the clip there as it is produced (the
        CLI's output file: the same bytes as the object, without downloading them back);
        ``parts_from_tee``: and send the parts from it (``tee`` open for reading too), not
        from memory buffers (``upload``)."""
        # the name the claim wrote: run() may be called on another thread than claim()
        worker = job.worker or self.worker_name()
        key = job.s3_key or export_key(self._prefix, job)
        script = self._tmp / f"export-{job.id}.ffconcat"
        if job.attempts > MAX_ATTEMPTS:
            _remove(script)  # what the dead worker left, if it ran on this node
            return self._fail(job, key, worker, f"the worker died {job.attempts - 1} times")
        beat = _Heartbeat(self._db, job.id, worker, self.stale_seconds / 3)
        self._tmp.mkdir(parents=True, exist_ok=True)
        try:
            with beat:
                plan, expected, indexes = self._plan(job)
                spliced = self._splice(plan, indexes, _metadata(job, plan))
                assembly = FFMPEG if spliced is None else SPLICE
                log.info("export %s: assembled by %s", job.id, assembly)
                with self._db.transaction() as s:
                    if not s.fetchone(
                        q("plan_export"),
                        {
                            "id": job.id,
                            "worker": worker,
                            "cut": plan.cut,
                            "actual_start": plan.actual_start,
                            "actual_end": plan.actual_end,
                            "gaps": json.dumps(plan.gaps_json()),
                            "s3_bucket": self._store.bucket,
                            "s3_key": key,
                            "assembly": assembly,
                        },
                    ):
                        raise JobLost(f"export {job.id} was taken over")

                def progress(p: float) -> None:
                    beat.progress = p
                    if on_progress is not None:
                        on_progress(p)

                up = self._render_upload(
                    job, plan, key, script, expected, beat, progress, tee, parts_from_tee, spliced
                )
                size, sha_hex, stored_sse = up.size, up.sha256, up.sse
            with self._db.transaction() as s:
                row = s.fetchone(
                    q("finish_export"),
                    {
                        "id": job.id,
                        "worker": worker,
                        "size_bytes": size,
                        "sha256": sha_hex,
                        "sse": stored_sse,
                    },
                )
                if row is None:
                    raise JobLost(f"export {job.id} was taken over")
                done = job_from_row(row)
                audit(s, None, "export.complete", done, size_bytes=size, sha256=sha_hex)
            if on_progress is not None:
                on_progress(100.0)
            return done
        except JobLost:
            log.warning("export %s: taken over by another worker; stopping", job.id)
            return job
        except Exception as exc:
            if beat.lost:  # ffmpeg was killed because another worker owns the job now
                return job
            log.warning("export %s failed: %s", job.id, exc)
            return self._fail(job, key, worker, f"{type(exc).__name__}: {exc}")
        finally:
            _remove(script)

    def _render_upload(
        self,
        job: ExportJob,
        plan: ClipPlan,
        key: str,
        script: Path,
        expected: int,
        beat: _Heartbeat,
        progress: Callable[[float], None],
        tee: BinaryIO | None,
        parts_from_tee: bool,
        spliced: Splice | None,
    ) -> Uploaded:
        """ffmpeg (or ``spliced``) → SHA-256 (+ ``tee``) → multipart upload, all in one
        pass; the object is completed only after the clip ended cleanly and the job is
        still ours."""
        abort_stale(self._store, key)  # a killed worker's upload of this job
        up = StreamUpload(
            self._store,
            key,
            metadata={
                "camvault-export-id": str(job.id),
                "camvault-camera": job.camera_id,
                "camvault-mp4-layout": MP4_LAYOUT,
            },
            part_bytes=part_size(expected),
            concurrency=self.part_concurrency,
            tee=tee,
            parts_from_tee=parts_from_tee,
        )
        try:
            if spliced is not None:
                write(spliced, up, plan.seconds, on_progress=progress, check=beat.check)
                beat.check()
                return up.complete()
            # the inputs through parallel ranged GETs (feed), else ffmpeg's own HTTP
            feeder = None if self.feed is None else Feed(self._store, plan, self.feed)
            with feeder or contextlib.nullcontext(plan) as fed_plan:
                render_stream(
                    self._ffmpeg,
                    fed_plan,
                    script,
                    _metadata(job, plan),
                    up,
                    on_progress=progress,
                    on_start=beat.watch,
                    feed=feeder,
                )
            beat.check()
            return up.complete()
        except BaseException:
            with contextlib.suppress(Exception):
                up.abort()
            raise

    def sweep_tmp(self) -> int:
        """Remove temporary files a killed process left here: those of jobs no live worker
        is running (scripts hold presigned URLs; clips can be large). Returns the count."""
        files = [p for p in self._tmp.glob("*") if p.is_file()] if self._tmp.is_dir() else []
        ids = {int(p.name.split("-")[1].split(".")[0]) for p in files if _job_file(p)}
        with self._db.transaction() as s:
            rows = s.fetchall(
                q("live_exports"), {"ids": sorted(ids), "keys": [], "stale": self.stale_seconds}
            )
        live = {r["id"] for r in rows}
        removed = 0
        for p in files:
            if _job_file(p) and int(p.name.split("-")[1].split(".")[0]) in live:
                continue
            # media/clip stream scripts of a killed API process: their request is gone
            if not _job_file(p) and time.time() - p.stat().st_mtime < 2 * self.stale_seconds:
                continue
            with contextlib.suppress(OSError):
                p.unlink()
                removed += 1
        return removed

    def _splice(
        self, plan: ClipPlan, indexes: list[Index] | None, meta: ClipMetadata
    ) -> Splice | None:
        """The clip's splice when every source qualified; None: ffmpeg cuts it."""
        if indexes is None or not isinstance(self._store, RangeReader):
            return None
        return prepare_job(self._store, plan, indexes, meta)

    def _plan(self, job: ExportJob) -> tuple[ClipPlan, int, list[Index] | None]:
        """The plan, the clip's size at most (its recordings' bytes: sizes the parts), and
        the recordings' indexes when they all qualify for the splice (else None)."""
        with self._db.transaction() as s:
            rows = s.fetchall(
                q("recordings_by_id"), {"ids": list(job.recording_ids), "camera_id": job.camera_id}
            )
        recs = [recording_from_row(r) for r in rows]
        ttl = int(max(3600, 4 * (job.range_end - job.range_start).total_seconds()))
        sources = [self._source(r, ttl) for r in recs]
        expected = sum(r.size_bytes for r in recs)
        a, b, allowed = job.range_start, job.range_end, job.allowed_start
        planned = plan_job(self._store, sources, a, b, allowed, ffmpeg=self._ffmpeg)
        if planned is not None:
            return planned[0], expected, planned[1]
        # probed by the ffmpeg binary, not PyAV: a job's process stays small (``ffprobe``)
        return plan_sources(sources, a, b, allowed, ffmpeg=self._ffmpeg), expected, None

    def _source(self, rec: Recording, ttl: int) -> Source:
        assert rec.id is not None
        url = self._store.presign_get(rec.s3_key, ttl)
        return Source(
            rec.id, rec.start_time, rec.end_time, url, key=rec.s3_key, size=rec.size_bytes
        )

    def _fail(self, job: ExportJob, key: str, worker: str | None, error: str) -> ExportJob:
        # the object (if a previous attempt wrote one) and any upload a killed worker left
        # go first: never a failed row pointing at footage, never an object without a done row
        with contextlib.suppress(Exception):
            abort_stale(self._store, key)
        with contextlib.suppress(Exception):
            self._store.delete(key)
        with self._db.transaction() as s:
            row = s.fetchone(
                q("fail_export"), {"id": job.id, "error": error[:2000], "worker": worker}
            )
            if row is None:
                return job
            failed = job_from_row(row)
            audit(s, None, "export.failed", failed, error=error[:500])
        return failed


def _remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def _job_file(p: Path) -> bool:
    parts = p.name.split("-", 1)
    return parts[0] == "export" and len(parts) == 2 and parts[1].split(".")[0].isdigit()


def plan_sources(
    sources: list[Source],
    start: datetime,
    end: datetime,
    allowed_start: datetime,
    *,
    ffmpeg: str | None = None,
) -> ClipPlan:
    """Probe the first recording's keyframes around ``start`` (if it begins inside it)
    and plan the clip. ``ffmpeg``: probe with that binary, one file at a time (export
    jobs: no PyAV in the process); None: with PyAV, concurrently (the streamed routes,
    where the time to the first byte counts)."""
    sources = with_origins(sources) if ffmpeg is None else ffprobe.with_origins(ffmpeg, sources)
    keyframes = None
    offset = first_offset(sources, start) if sources else None
    if offset is not None:
        first = sources[0]
        keyframes = (
            probe_keyframes(first.url, offset)[1]
            if ffmpeg is None
            else ffprobe.probe_keyframes(ffmpeg, first.url, offset, origin=first.origin)
        )
    return plan_clip(sources, start, end, keyframes=keyframes, allowed_start=allowed_start)


def _metadata(job: ExportJob, plan: ClipPlan) -> ClipMetadata:
    comment = {
        "camvault_export": job.id,
        "camera_id": job.camera_id,
        "requested": [job.range_start.isoformat(), job.range_end.isoformat()],
        "actual": [plan.actual_start.isoformat(), plan.actual_end.isoformat()],
        "cut": plan.cut,
        "gaps": plan.gaps_json(),
        "mp4_layout": MP4_LAYOUT,
    }
    return ClipMetadata(
        title=f"{job.camera_id} {plan.actual_start.isoformat()}",
        comment=json.dumps(comment, separators=(",", ":")),
        creation_time=plan.actual_start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    )


class _Heartbeat:
    """Beats the job's row every ``interval`` seconds with the latest progress; when the
    row says another worker owns the job, kills the running ffmpeg."""

    def __init__(self, db: Connector, job_id: int, worker: str, interval: float) -> None:
        self._db = db
        self._id = job_id
        self._worker = worker
        self._interval = max(0.2, interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"export-{job_id}", daemon=True)
        self._proc: Any = None
        self.progress = 0.0
        self.lost = False

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def watch(self, proc: Any) -> None:
        self._proc = proc

    def check(self) -> None:
        if self.lost:
            raise JobLost(f"export {self._id} was taken over")

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with self._db.transaction() as s:
                    ok = s.fetchone(
                        q("beat_export"),
                        {"id": self._id, "worker": self._worker, "progress": self.progress},
                    )
            except CamvaultError as exc:
                log.warning("export %s: heartbeat failed: %s", self._id, exc)
                continue
            if ok is None:
                self.lost = True
                if self._proc is not None and self._proc.poll() is None:
                    self._proc.kill()
                return
