"""The durable local spool: segment files on disk plus a SQLite (WAL) journal of their state.

A segment enters as ``staging`` (row written *before* the file is moved, so a crash in the
move is recoverable), becomes ``queued``, is claimed as ``uploading``, becomes ``uploaded``
once its object is verified in S3 (this state is also the reprocessing queue for catalog
commits that failed), and ``committed`` once its catalog row exists — only then is the
file deleted. ``recover()`` at start-up puts every interrupted segment back on its path.

Files that fail validation are moved to the quarantine directory with a JSON sidecar
naming the reason; the spool never deletes a file it has not seen committed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from camvault.errors import SourceReplaced, SpoolError, SpoolFull
from camvault.models import Segment, SegmentState, StoredObject

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    id TEXT PRIMARY KEY,
    camera_id TEXT NOT NULL,
    source_path TEXT NOT NULL,
    path TEXT NOT NULL,
    start_time TEXT NOT NULL,
    end_time TEXT NOT NULL,
    duration_seconds REAL NOT NULL,
    size_bytes INTEGER NOT NULL,
    checksum_algorithm TEXT NOT NULL,
    checksum TEXT NOT NULL,
    crc32 TEXT NOT NULL DEFAULT '',
    codec TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    ext TEXT NOT NULL,
    s3_key TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    rounds INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error TEXT,
    etag TEXT,
    storage_class TEXT,
    sse TEXT,
    run_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS segments_state_idx ON segments (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS segments_key_idx ON segments (s3_key);
CREATE TABLE IF NOT EXISTS quarantine (
    id TEXT PRIMARY KEY,
    camera_id TEXT,
    original_path TEXT NOT NULL,
    path TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_errors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""

# The journal's schema, step by step: step n brings PRAGMA user_version to n. Append new
# steps, never edit one that shipped (a journal that has it would not run it again).
_STEPS: tuple[str, ...] = (
    _SCHEMA,
    "ALTER TABLE segments ADD COLUMN commit_attempts INTEGER NOT NULL DEFAULT 0",
    # why a queued segment waits: 'endpoint' = its last round failed because S3 did not
    # answer at all, so the delay is lifted when S3 answers again
    "ALTER TABLE segments ADD COLUMN hold TEXT",
)
SCHEMA_VERSION = len(_STEPS)

_HASH_CHUNK = 1 << 20


def _legacy_version(conn: sqlite3.Connection) -> int:
    """The step a journal from before ``user_version`` was kept has reached (0 = empty)."""
    cols = {r[1] for r in conn.execute("PRAGMA table_info(segments)")}
    if not cols:
        return 0
    if "commit_attempts" not in cols:
        return 1
    return 3 if "hold" in cols else 2


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring the journal to ``SCHEMA_VERSION``, one step per transaction (concurrent
    openers serialise on BEGIN IMMEDIATE and re-read the version inside it). A journal
    already at ``SCHEMA_VERSION`` is not written at all: opening must work on a full disk."""
    if int(conn.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION:
        return
    for step, sql in enumerate(_STEPS, start=1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version == 0:
                version = _legacy_version(conn)
            if version > SCHEMA_VERSION:
                raise SpoolError(
                    f"journal schema version {version} is newer than this camvault's "
                    f"({SCHEMA_VERSION}): upgrade camvault"
                )
            if version < step:
                for statement in sql.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                version = step
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (e.g. disk full)
                conn.execute("ROLLBACK")
            raise


def _uuid4_hex() -> str:
    """``uuid.uuid4().hex`` (the same bits: random, version 4, RFC 4122 variant) without
    importing ``uuid``, which imports ``platform``: ~5 ms of every `camvault ingest`."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return b.hex()


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True, slots=True)
class FileDigest:
    """Size, SHA-256 and (for multipart uploads) CRC32 of a file, read in one pass."""

    size_bytes: int
    sha256_hex: str
    crc32: int  # full-object CRC32, what S3 verifies on multipart uploads

    # base64 imported here: only an upload needs these, not `camvault ingest`
    @property
    def sha256_b64(self) -> str:
        import base64

        return base64.b64encode(bytes.fromhex(self.sha256_hex)).decode()

    @property
    def crc32_b64(self) -> str:
        import base64

        return base64.b64encode(self.crc32.to_bytes(4, "big")).decode()


def digest_file(path: Path, *, crc32_min_bytes: int = 0) -> FileDigest:
    """SHA-256 (always) and CRC32 in one read. The CRC32 is only needed for multipart
    uploads, so files smaller than ``crc32_min_bytes`` skip it (it costs ~0.6 ms/MB)."""
    sha = hashlib.sha256()
    crc = 0
    size = 0
    with_crc = path.stat().st_size >= crc32_min_bytes
    # one buffer filled in place (unbuffered readinto): no bytes object per chunk, no
    # copy through a BufferedReader — 40 % less CPU than read() on a 33 MB segment
    buf = bytearray(_HASH_CHUNK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            chunk = view[:n]
            sha.update(chunk)
            if with_crc:
                crc = zlib.crc32(chunk, crc)
            size += n
    return FileDigest(size, sha.hexdigest(), crc)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


DIR_MODE = 0o700  # footage is private to camvault's user, whatever the umask
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """mkdir -p with 0700 set explicitly (mkdir's mode is filtered by the umask)."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _move_durably(src: Path, dst: Path, *, src_fd: int | None = None) -> bool:
    """rename when on one filesystem, else copy + fsync + rename; the source is removed last.
    The destination ends up 0600 in a 0700 directory. A symlink is moved as the link itself
    (never its target). With ``src_fd`` (the file ingest checked), the copy reads that fd and
    the source name is removed only if it still names that file. True when renamed (the
    same inode), False when copied."""
    private_dir(dst.parent)
    link = stat.S_ISLNK(os.lstat(src).st_mode)
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = dst.with_name(dst.name + ".part")
        if link:
            tmp.unlink(missing_ok=True)
            os.symlink(os.readlink(src), tmp)
        else:
            _copy_private(src, tmp, src_fd)
        os.replace(tmp, dst)
        _fsync_dir(dst.parent)
        if src_fd is None or _same_file(os.lstat(src), os.fstat(src_fd)):
            src.unlink()
        return False
    if not link:
        os.chmod(dst, FILE_MODE)
    _fsync_dir(dst.parent)
    return True


def _copy_private(src: Path, tmp: Path, src_fd: int | None) -> None:
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(out, "wb") as fout:
        os.fchmod(fout.fileno(), FILE_MODE)
        if src_fd is not None:
            os.lseek(src_fd, 0, os.SEEK_SET)
            while chunk := os.read(src_fd, 4 << 20):
                fout.write(chunk)
        else:
            with src.open("rb") as fin:
                shutil.copyfileobj(fin, fout, 4 << 20)
        fout.flush()
        os.fsync(fout.fileno())


@dataclass(frozen=True, slots=True)
class NewSegment:
    """What ingest/recorder knows about a file before it enters the spool."""

    camera_id: str
    source: Path
    start_time: datetime
    end_time: datetime
    duration_seconds: float
    codec: str
    width: int
    height: int
    ext: str
    s3_key: str
    run_id: str | None = None


class Spool:
    """Segments waiting for S3 and the catalog: files in a directory plus a SQLite journal."""

    def __init__(
        self, directory: Path, quarantine_dir: Path | None = None, *, crc32_min_bytes: int = 0
    ) -> None:
        self._crc32_min_bytes = crc32_min_bytes
        self.dir = Path(directory)
        self.files_dir = self.dir / "segments"
        self.quarantine_dir = Path(quarantine_dir or self.dir / "quarantine")
        try:
            private_dir(self.dir)
            private_dir(self.files_dir)
            private_dir(self.quarantine_dir)
            journal = self.dir / "journal.sqlite3"
            os.close(os.open(journal, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE))
            # SQLite gives new -wal/-shm files the journal's mode; fix ones from before
            for f in (
                journal,
                journal.with_name(journal.name + "-wal"),
                journal.with_name(journal.name + "-shm"),
            ):
                if f.exists():
                    os.chmod(f, FILE_MODE)
            self._conn = sqlite3.connect(
                journal,
                timeout=30,
                isolation_level=None,
                check_same_thread=False,
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed state change survives power loss, not just a process crash
            self._conn.execute("PRAGMA synchronous=FULL")
            _upgrade(self._conn)
        except (OSError, sqlite3.Error) as exc:
            if _disk_full(exc):
                raise self._full("the journal cannot be opened") from exc
            raise SpoolError(f"spool {self.dir} unusable: {exc}") from exc
        self._lock = threading.RLock()
        self._lock_file: IO[str] | None = None
        # wakes an idle uploader of this process when a segment is queued, instead of it
        # finding the segment at its next poll (segment closed → row queryable latency)
        self._queued = threading.Condition()
        self._queued_count = 0

    def close(self) -> None:
        self._conn.close()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the uploader lock
            self._lock_file = None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if _disk_full(exc):
                    raise self._full("the journal cannot grow") from exc
                raise SpoolError(f"spool journal error: {exc}") from exc

    # admission -------------------------------------------------------------------------
    def admit(
        self, new: NewSegment, *, digest: FileDigest | None = None, source_fd: int | None = None
    ) -> Segment:
        """Move ``new.source`` into the spool and queue it. Durable before returning.
        With ``source_fd`` (the file ingest validated), a name swapped for another file
        in the meantime is caught: that file is quarantined, ``SourceReplaced`` raised."""
        seg_id = _uuid4_hex()
        dest = self.files_dir / new.camera_id / f"{seg_id}.{new.ext}"
        now = _ts(utcnow())
        with self._tx() as c:
            c.execute(
                "INSERT INTO segments (id, camera_id, source_path, path, start_time, end_time,"
                " duration_seconds, size_bytes, checksum_algorithm, checksum, codec, width,"
                " height, ext, s3_key, state, run_id, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    seg_id,
                    new.camera_id,
                    str(new.source),
                    str(dest),
                    _ts(new.start_time),
                    _ts(new.end_time),
                    new.duration_seconds,
                    0,
                    "sha256",
                    "",
                    new.codec,
                    new.width,
                    new.height,
                    new.ext,
                    new.s3_key,
                    SegmentState.STAGING,
                    new.run_id,
                    now,
                    now,
                ),
            )
        try:
            renamed = _move_durably(new.source, dest, src_fd=source_fd)
        except OSError as exc:
            self._forget(seg_id)  # the source is where it was; the ingest can be retried
            if _disk_full(exc):
                raise self._full(f"cannot move {new.source.name} in") from exc
            raise SpoolError(f"cannot move {new.source} into the spool: {exc}") from exc
        # a copy was read from the fd itself; a rename must have moved the checked inode
        if (
            renamed
            and source_fd is not None
            and not _same_file(os.lstat(dest), os.fstat(source_fd))
        ):
            with self._tx() as c:
                c.execute("DELETE FROM segments WHERE id=?", (seg_id,))
            reason = "the file was replaced while it was being ingested"
            moved = self.quarantine(dest, reason, camera_id=new.camera_id)
            raise SourceReplaced(f"{new.source}: {reason}", str(moved))
        try:
            return self._finish_staging(seg_id, dest, digest)
        except SpoolFull:
            # give a renamed file back so the caller can retry it when space returns (if
            # even forgetting the row fails, recover() drops or finishes it). A copied one
            # stays staged here: copying it back could fail too; recover() finishes it.
            if renamed:
                os.replace(dest, new.source)
                self._forget(seg_id)
            raise

    def _forget(self, seg_id: str) -> None:
        with contextlib.suppress(SpoolError), self._tx() as c:
            c.execute("DELETE FROM segments WHERE id=? AND state='staging'", (seg_id,))

    def _full(self, what: str) -> SpoolFull:
        try:
            st = os.statvfs(self.dir)
            free = f"{st.f_bavail * st.f_frsize / 2**20:.1f} MiB free"
        except OSError:
            free = "free space unknown"
        return SpoolFull(
            f"spool disk full: {self.dir} ({free}): {what}; nothing was lost, "
            "retry when space returns"
        )

    def _finish_staging(self, seg_id: str, dest: Path, digest: FileDigest | None) -> Segment:
        d = digest or digest_file(dest, crc32_min_bytes=self._crc32_min_bytes)
        with self._tx() as c:
            c.execute(
                "UPDATE segments SET state=?, size_bytes=?, checksum=?, crc32=?, updated_at=?"
                " WHERE id=?",
                (
                    SegmentState.QUEUED,
                    d.size_bytes,
                    d.sha256_hex,
                    d.crc32_b64,
                    _ts(utcnow()),
                    seg_id,
                ),
            )
        with self._queued:
            self._queued_count += 1
            self._queued.notify_all()
        return self.get(seg_id)

    def wake_uploaders(self) -> None:
        """End every ``wait_queued`` now (e.g. no more segments will come)."""
        with self._queued:
            self._queued_count += 1
            self._queued.notify_all()

    def queued_token(self) -> int:
        """Pass to ``wait_queued`` after a ``claim`` found nothing (no wake-up is lost
        between the two)."""
        return self._queued_count

    def wait_queued(self, token: int, stop: threading.Event, timeout: float) -> bool:
        """Wait until a segment is queued by this process (since ``token``: True), ``stop``
        is set, or ``timeout`` passes — the uploader's idle wait."""
        deadline = time.monotonic() + timeout
        with self._queued:
            while self._queued_count == token and not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queued.wait(min(left, 0.1))  # 0.1: `stop` is an Event, not ours
            return self._queued_count != token

    # reading ---------------------------------------------------------------------------
    def get(self, seg_id: str) -> Segment:
        with self._lock:
            row = self._conn.execute("SELECT * FROM segments WHERE id=?", (seg_id,)).fetchone()
        if row is None:
            raise SpoolError(f"no segment {seg_id} in the spool journal")
        return _segment(row)

    def crc32_b64(self, seg_id: str) -> str:
        with self._lock:
            row = self._conn.execute("SELECT crc32 FROM segments WHERE id=?", (seg_id,)).fetchone()
        return "" if row is None else str(row["crc32"])

    def segments(self, *states: SegmentState) -> list[Segment]:
        sql = "SELECT * FROM segments"
        args: tuple[Any, ...] = ()
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            args = tuple(states)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY start_time", args).fetchall()
        return [_segment(r) for r in rows]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counts = {
                r[0]: r[1]
                for r in self._conn.execute("SELECT state, count(*) FROM segments GROUP BY state")
            }
            oldest = self._conn.execute(
                "SELECT min(created_at) FROM segments WHERE state NOT IN ('committed')"
            ).fetchone()[0]
            pending_bytes = self._conn.execute(
                "SELECT coalesce(sum(size_bytes),0) FROM segments WHERE state NOT IN ('committed')"
            ).fetchone()[0]
            quarantined = self._conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
            errors = self._conn.execute("SELECT count(*) FROM pending_errors").fetchone()[0]
        return {
            "by_state": {s.value: counts.get(s.value, 0) for s in SegmentState},
            "pending": sum(v for k, v in counts.items() if k != SegmentState.COMMITTED),
            "pending_bytes": pending_bytes,
            "oldest_pending": oldest,
            "quarantined": quarantined,
            "unflushed_errors": errors,
        }

    # state transitions -----------------------------------------------------------------
    def claim(
        self,
        *,
        now: datetime | None = None,
        ignore_delay: bool = False,
        exclude: set[str] | frozenset[str] = frozenset(),
    ) -> Segment | None:
        """Atomically take the oldest queued segment that is due, marking it uploading.

        Oldest first, also when a backlog drains after an outage: each camera's catalog then
        fills in time order, so it is complete up to a watermark that only moves forward (no
        holes that fill in later, which an investigator would read as lost footage), and no
        segment waits longer than the backlog takes to drain. The newest footage is the
        last to land, by at most backlog bytes / throughput."""
        now_s = _ts(now or utcnow())
        due = "" if ignore_delay else " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
        args: tuple[Any, ...] = () if ignore_delay else (now_s,)
        if exclude:
            due += f" AND id NOT IN ({','.join('?' * len(exclude))})"
            args += tuple(exclude)
        with self._tx() as c:
            # never two uploads of one key at once: a duplicate waits for the first to end
            row = c.execute(
                # `due` holds only constant SQL and ? placeholders
                f"SELECT id FROM segments WHERE state='queued'{due} AND s3_key NOT IN"  # noqa: S608
                " (SELECT s3_key FROM segments WHERE state='uploading')"
                " ORDER BY start_time LIMIT 1",
                args,
            ).fetchone()
            if row is None:
                return None
            c.execute(
                "UPDATE segments SET state='uploading', updated_at=? WHERE id=?", (now_s, row["id"])
            )
        return self.get(row["id"])

    def lock_for_upload(
        self,
        *,
        timeout: float = 0.0,
        on_wait: Callable[[float], None] | None = None,
        poll: float = 0.2,
    ) -> None:
        """One uploader per spool: ``recover()`` re-queues 'uploading' rows, which is only
        safe when no other live process owns them. Held until ``close()``.

        ``timeout`` > 0 waits that long for another uploader to let go (e.g. ``run`` still
        finishing its in-flight uploads), calling ``on_wait(seconds waited)`` about every
        5 s; 0 fails at once."""
        if self._lock_file is not None:
            return
        fd = os.open(self.dir / "uploader.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        lock_file = os.fdopen(fd, "a+")
        deadline = time.monotonic() + timeout
        began, next_report = time.monotonic(), 0.0
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if now >= deadline:
                    lock_file.close()
                    waited = f" (waited {timeout:g} s)" if timeout > 0 else ""
                    raise SpoolError(
                        f"another camvault uploader is already using the spool {self.dir}" + waited
                    ) from None
                if on_wait is not None and now - began >= next_report:
                    on_wait(now - began)
                    next_report += 5.0
                time.sleep(min(poll, max(0.0, deadline - now)))
        self._lock_file = lock_file

    def record_attempt(self, seg_id: str, error: str | None) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE segments SET attempts=attempts+1, last_error=?, updated_at=? WHERE id=?",
                (error, _ts(utcnow()), seg_id),
            )

    def release(
        self,
        seg_id: str,
        *,
        error: str,
        next_attempt_at: datetime,
        round_exhausted: bool,
        hold: str | None = None,
    ) -> Segment:
        """Back to queued after a failed round; the file stays. ``hold='endpoint'``: the
        delay is the endpoint's fault, ``clear_holds`` lifts it when it answers again."""
        with self._tx() as c:
            c.execute(
                "UPDATE segments SET state='queued', last_error=?, next_attempt_at=?,"
                " rounds=rounds+?, hold=?, updated_at=? WHERE id=?",
                (error, _ts(next_attempt_at), int(round_exhausted), hold, _ts(utcnow()), seg_id),
            )
        return self.get(seg_id)

    def clear_holds(self, hold: str = "endpoint") -> int:
        """The endpoint is back: the segments it held are due now (per-segment delays of
        failures specific to a segment stay)."""
        with self._tx() as c:
            return c.execute(
                "UPDATE segments SET next_attempt_at=NULL, hold=NULL, updated_at=?"
                " WHERE state='queued' AND hold=?",
                (_ts(utcnow()), hold),
            ).rowcount

    def commits_due_now(self) -> int:
        """The catalog is back: every deferred commit is due now."""
        now = _ts(utcnow())
        with self._tx() as c:
            return c.execute(
                "UPDATE segments SET next_attempt_at=? WHERE state='uploaded'"
                " AND next_attempt_at IS NOT NULL AND next_attempt_at > ?",
                (now, now),
            ).rowcount

    def mark_uploaded(self, seg_id: str, obj: StoredObject, *, attempted: bool = False) -> Segment:
        """``attempted``: also count the successful attempt (one journal commit, one fsync,
        instead of ``record_attempt`` and this one)."""
        with self._tx() as c:
            c.execute(
                "UPDATE segments SET state='uploaded', etag=?, storage_class=?, sse=?,"
                " attempts=attempts+?, last_error=NULL, next_attempt_at=NULL, updated_at=?"
                " WHERE id=?",
                (obj.etag, obj.storage_class, obj.sse, int(attempted), _ts(utcnow()), seg_id),
            )
        return self.get(seg_id)

    def defer_commit(self, seg_id: str, *, error: str, delay: Callable[[int], float]) -> int:
        """Catalog commit failed: stays 'uploaded' (the reprocessing queue), retried after
        ``delay(n)`` seconds, n = failed commits so far. Returns n."""
        with self._tx() as c:
            row = c.execute(
                "UPDATE segments SET commit_attempts=commit_attempts+1, last_error=?,"
                " updated_at=? WHERE id=? AND state='uploaded' RETURNING commit_attempts",
                (error, _ts(utcnow()), seg_id),
            ).fetchone()
            n = 0 if row is None else int(row[0])
            c.execute(
                "UPDATE segments SET next_attempt_at=? WHERE id=?",
                (_ts(utcnow() + timedelta(seconds=delay(n))), seg_id),
            )
        return n

    def key_states(self, key: str) -> set[str]:
        """States of the journal rows for one object key (the multipart sweeper asks)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT state FROM segments WHERE s3_key=?", (key,)
            ).fetchall()
        return {str(r[0]) for r in rows}

    def due_commits(
        self, *, now: datetime | None = None, ignore_delay: bool = False
    ) -> list[Segment]:
        """Uploaded segments whose commit was deferred and is due again. A segment whose
        commit is in progress right now has next_attempt_at NULL and is not returned, so
        a housekeeping thread never commits what a worker is committing. ``ignore_delay``
        (drain, reconcile) returns every uploaded segment: call it when no worker runs."""
        now_s = _ts(now or utcnow())
        due = "" if ignore_delay else " AND next_attempt_at IS NOT NULL AND next_attempt_at <= ?"
        args: tuple[Any, ...] = () if ignore_delay else (now_s,)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT * FROM segments WHERE state='uploaded'{due} ORDER BY start_time",  # noqa: S608
                args,
            ).fetchall()
        return [_segment(r) for r in rows]

    def mark_committed(self, seg_id: str) -> None:
        """Row is in the catalog: close the entry, then delete the file."""
        seg = self.get(seg_id)
        with self._tx() as c:
            c.execute(
                "UPDATE segments SET state='committed', last_error=NULL, updated_at=? WHERE id=?",
                (_ts(utcnow()), seg_id),
            )
        Path(seg.path).unlink(missing_ok=True)

    def mark_conflict(self, seg_id: str, reason: str) -> None:
        """Held for an operator: the file stays in the spool, nothing is overwritten."""
        with self._tx() as c:
            c.execute(
                "UPDATE segments SET state='conflict', last_error=?, updated_at=? WHERE id=?",
                (reason, _ts(utcnow()), seg_id),
            )

    def recover(self) -> dict[str, int]:
        """Start-up: finish interrupted moves, put claimed segments back in the queue,
        delete files whose commit was recorded. Only one uploader may own a spool."""
        fixed = {"staging": 0, "uploading": 0, "uploaded": 0, "committed_files": 0}
        for seg in self.segments(SegmentState.STAGING):
            src, dest = Path(self._source_of(seg.id)), Path(seg.path)
            if not dest.exists() and src.exists():
                _move_durably(src, dest)
            if dest.exists():
                self._finish_staging(seg.id, dest, None)
            else:
                # neither file exists: the move never started and the source is gone
                with self._tx() as c:
                    c.execute("DELETE FROM segments WHERE id=?", (seg.id,))
            fixed["staging"] += 1
        with self._tx() as c:
            fixed["uploading"] = c.execute(
                "UPDATE segments SET state='queued', updated_at=? WHERE state='uploading'",
                (_ts(utcnow()),),
            ).rowcount
            # a commit cut off by the crash is due now
            fixed["uploaded"] = c.execute(
                "UPDATE segments SET next_attempt_at=? WHERE state='uploaded'"
                " AND next_attempt_at IS NULL",
                (_ts(utcnow()),),
            ).rowcount
        for leftover in self._committed_files():
            leftover.unlink()
            fixed["committed_files"] += 1
        return fixed

    def _committed_files(self) -> list[Path]:
        """Files whose row is committed (a crash came between the commit and the unlink).
        Found from the files on disk — the pending ones, a few — not from the committed
        rows, which are kept ``keep_committed_days`` (tens of thousands on a busy node)
        and would be read on every `upload --once` / `ingest --upload` start."""
        found = []
        with self._lock:
            for cam_dir in self.files_dir.iterdir():
                if not cam_dir.is_dir():
                    continue
                for f in cam_dir.iterdir():
                    row = self._conn.execute(
                        "SELECT state, path FROM segments WHERE id=?", (f.name.split(".")[0],)
                    ).fetchone()
                    # the exact path: a ".part" copy in progress is never taken for it
                    if row is not None and row["state"] == "committed" and row["path"] == str(f):
                        found.append(f)
        return found

    def _source_of(self, seg_id: str) -> str:
        row = self._conn.execute(
            "SELECT source_path FROM segments WHERE id=?", (seg_id,)
        ).fetchone()
        return "" if row is None else str(row["source_path"])

    def prune_committed(self, older_than: timedelta) -> int:
        cutoff = _ts(utcnow() - older_than)
        with self._tx() as c:
            return c.execute(
                "DELETE FROM segments WHERE state='committed' AND updated_at < ?", (cutoff,)
            ).rowcount

    # quarantine ------------------------------------------------------------------------
    def quarantine(self, src: Path, reason: str, camera_id: str | None = None) -> Path:
        """Move a rejected file aside with its reason. Never deletes it."""
        qid = _uuid4_hex()[:12]
        sub = self.quarantine_dir / (camera_id or "_unknown")
        dest = sub / f"{qid}_{src.name}"
        try:
            _move_durably(src, dest)
        except OSError as exc:
            if _disk_full(exc):
                raise self._full(f"cannot quarantine {src.name}") from exc
            raise SpoolError(f"cannot quarantine {src}: {exc}") from exc
        sidecar = dest.with_name(dest.name + ".reason.json")
        record = {
            "original_path": str(src),
            "camera_id": camera_id,
            "reason": reason,
            "quarantined_at": _ts(utcnow()),
        }
        try:
            fd = os.open(sidecar, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
            with os.fdopen(fd, "w") as f:
                os.fchmod(f.fileno(), FILE_MODE)
                f.write(json.dumps(record, indent=2))
            with self._tx() as c:
                c.execute(
                    "INSERT INTO quarantine VALUES (?,?,?,?,?,?)",
                    (qid, camera_id, str(src), str(dest), reason, _ts(utcnow())),
                )
        except (OSError, SpoolFull) as exc:
            # a quarantine without its reason is no quarantine: put the file back
            sidecar.unlink(missing_ok=True)
            os.replace(dest, src)
            if isinstance(exc, SpoolFull):
                raise
            if _disk_full(exc):
                raise self._full(f"cannot quarantine {src.name}") from exc
            raise SpoolError(f"cannot quarantine {src}: {exc}") from exc
        return dest

    def quarantined(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(r) for r in self._conn.execute("SELECT * FROM quarantine ORDER BY created_at")
            ]

    # locally journaled upload errors (flushed to PostgreSQL when it is back) ----------
    def journal_error(self, payload: dict[str, Any]) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO pending_errors (payload, created_at) VALUES (?, ?)",
                (json.dumps(payload, default=str), _ts(utcnow())),
            )

    def pending_errors(self) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            return [
                (r["id"], json.loads(r["payload"]))
                for r in self._conn.execute("SELECT id, payload FROM pending_errors ORDER BY id")
            ]

    def drop_pending_error(self, error_id: int) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM pending_errors WHERE id=?", (error_id,))


def _disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT from the OS, SQLITE_FULL from the journal (by code, not message)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL
    return False


def _segment(row: sqlite3.Row) -> Segment:
    start, end = _dt(row["start_time"]), _dt(row["end_time"])
    assert start is not None and end is not None
    return Segment(
        id=row["id"],
        camera_id=row["camera_id"],
        path=row["path"],
        start_time=start,
        end_time=end,
        duration_seconds=row["duration_seconds"],
        size_bytes=row["size_bytes"],
        checksum_algorithm=row["checksum_algorithm"],
        checksum=row["checksum"],
        codec=row["codec"],
        width=row["width"],
        height=row["height"],
        ext=row["ext"],
        s3_key=row["s3_key"],
        state=SegmentState(row["state"]),
        attempts=row["attempts"],
        rounds=row["rounds"],
        next_attempt_at=_dt(row["next_attempt_at"]),
        last_error=row["last_error"],
        etag=row["etag"],
        storage_class=row["storage_class"],
        sse=row["sse"],
        run_id=row["run_id"],
    )
