"""Feeding ffmpeg's concat demuxer from parallel, prefetched ranged GETs.

ffmpeg reading presigned URLs fetches each object over one sequential HTTP connection, one
object after the other. Here the objects are read with ranged GETs through the S3
boundary, ``parallel`` at a time and at most ``ahead`` parts of ``part_bytes`` buffered, in
clip order, and each object's bytes are written into its own FIFO, which the concat script
names instead of the URL. ffmpeg opens one FIFO after the other, so memory stays at
``ahead * part_bytes`` (fixed buffers, reused) whatever the clip's length.

Opt-in (``[api] export_fetch_parallel``): against a local SeaweedFS on 2 cores one
connection already reads ~400 MB/s and the feed's two extra copies (socket → buffer →
FIFO) cost more CPU than the parallelism saves (``bench/export_clip.py --no-feed`` vs
without). It is meant for an S3 whose single connection is the limit.

Only entries without an ``inpoint`` are fed: MP4 inputs are read front to back (the moov
comes first in camvault's segments, fragmented or +faststart), but the concat demuxer
seeks to an inpoint, and in a fragmented MP4 read from a pipe that seek fails — ffmpeg
then writes an empty clip and exits 0 (measured with ffmpeg 9.0). The first entry of a
clip that starts inside a recording therefore keeps its presigned URL.

When ffmpeg closes a FIFO early (the entry's outpoint came before the object's end), the
write gets EPIPE and the rest of that object is not fetched. A failed GET (after
``ATTEMPTS`` tries) kills ffmpeg through ``attach``: a FIFO closed short would otherwise
look like the end of the recording and make a clip with a hole that ffmpeg reports as a
success; ``check`` then raises the error.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from camvault.errors import StorageUnavailable
from camvault.export.clip import ClipPlan

log = logging.getLogger(__name__)

MB = 1024 * 1024
ATTEMPTS = 3  # per part: a dropped connection mid-clip is retried, not fatal
_PIPE_BYTES = 1024 * 1024
_DIR_PREFIX = "camvault-feed-"


@runtime_checkable
class RangeReader(Protocol):
    """``BotoObjectStore`` and the twin: ``len(into)`` bytes of ``key`` from ``offset``
    into ``into``; returns (how many arrived — fewer only at the object's end, the object's
    size). A range past the end raises ``StorageUnavailable(code="InvalidRange")``."""

    def read_range(self, key: str, offset: int, into: memoryview) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class FeedOptions:
    """How the inputs are fetched: parts of ``part_bytes``, ``parallel`` GETs in flight,
    ``ahead`` parts buffered at most (fetched or in flight; memory = ahead * part_bytes)."""

    part_bytes: int = 4 * MB
    parallel: int = 4
    ahead: int = 6


DEFAULT_FEED = FeedOptions()


@dataclass(frozen=True, slots=True)
class _Part:
    entry: int
    key: str
    offset: int
    length: int


@dataclass(slots=True)
class _Pending:
    part: _Part
    buf: bytearray
    future: Future[int]


def sweep_dead_dirs(root: Path | None = None) -> int:
    """Remove the FIFO directories of feeds whose process is gone (an API killed while
    streaming never ran ``__exit__``). Returns how many were removed."""
    removed = 0
    for d in Path(root or tempfile.gettempdir()).glob(f"{_DIR_PREFIX}*-*"):
        pid = d.name[len(_DIR_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or not d.is_dir() or _alive(int(pid)):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to judge
        return True
    return True


def feedable(plan: ClipPlan) -> list[int]:
    """The entries that can be fed through a FIFO: no inpoint, object key and size known."""
    return [
        i
        for i, e in enumerate(plan.entries)
        if e.inpoint is None and e.source.key and e.source.size > 0
    ]


class Feed:
    """``with Feed(store, plan) as fed:`` — ``fed`` is the plan with FIFO paths instead of
    URLs for the fed entries; the feeding runs on a thread until ffmpeg has read them (or
    the block ends). Call ``attach`` with a kill function once ffmpeg runs, and ``check``
    after it exited."""

    def __init__(
        self, store: RangeReader, plan: ClipPlan, options: FeedOptions = DEFAULT_FEED
    ) -> None:
        self._store = store
        self._plan = plan
        self._opt = options
        self._fed = feedable(plan)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._kill: Callable[[], None] | None = None
        self._error: BaseException | None = None
        self._dir: Path | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._free: list[bytearray] = []
        self._allocated = 0
        self.fetched_bytes = 0  # what the GETs brought (less than the objects: early EOF)
        self._totals: dict[int, int] = {}  # entry → the object's size, as S3 says it

    def __enter__(self) -> ClipPlan:
        if not self._fed:
            return self._plan
        # FIFOs only (no bytes, no secrets): the system temp dir, removed on exit; the
        # name carries our pid so that a process killed meanwhile is swept later
        self._dir = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-"))
        entries = list(self._plan.entries)
        paths: dict[int, Path] = {}
        for i in self._fed:
            paths[i] = self._dir / f"{i}.mp4"
            os.mkfifo(paths[i], 0o600)
            src = replace(entries[i].source, url=str(paths[i]))
            entries[i] = replace(entries[i], source=src)
        self._pool = ThreadPoolExecutor(self._opt.parallel, thread_name_prefix="export-get")
        self._thread = threading.Thread(
            target=self._run, args=(paths,), name="export-feed", daemon=True
        )
        self._thread.start()
        return replace(self._plan, entries=tuple(entries))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def buffers(self) -> int:
        """Part buffers allocated (the memory bound: at most ``ahead``, +1 for a tail)."""
        return self._allocated

    def attach(self, kill: Callable[[], None]) -> None:
        """ffmpeg runs: ``kill`` stops it if feeding fails (now, if it already has)."""
        with self._lock:
            self._kill = kill
            failed = self._error is not None
        if failed:
            kill()

    def check(self) -> None:
        """Raise what made feeding fail (ffmpeg was killed for it), if anything."""
        if self._error is not None:
            raise self._error

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            self._error = exc
            kill = self._kill
        log.warning("export feed failed: %s", exc)
        if kill is not None:
            kill()

    def _run(self, paths: dict[int, Path]) -> None:
        parts = deque(self._parts())
        pending: deque[_Pending] = deque()
        dropped: set[int] = set()

        def top_up() -> None:
            while parts and len(pending) < self._opt.ahead:
                p = parts.popleft()
                if p.entry in dropped:
                    continue
                buf = self._buffer()
                assert self._pool is not None
                pending.append(_Pending(p, buf, self._pool.submit(self._fetch, p, buf)))

        try:
            top_up()
            for i in self._fed:
                fd = self._open(paths[i])
                if fd is None:
                    return  # stopped: ffmpeg is done (or never started)
                written = 0
                try:
                    while pending and pending[0].part.entry == i:
                        item = pending.popleft()
                        n = item.future.result()
                        try:
                            _write_all(fd, memoryview(item.buf)[:n])
                        except BrokenPipeError:
                            # ffmpeg reached the outpoint and closed it: no more of this object
                            dropped.add(i)
                            self._free.append(item.buf)
                            self._drop(pending, i)
                            break
                        written += n
                        self._free.append(item.buf)
                        top_up()
                    else:
                        self._tail(fd, i, written)
                finally:
                    os.close(fd)
                top_up()
        except BaseException as exc:  # reported through check()
            self._fail(exc)
        finally:
            for item in pending:
                item.future.cancel()

    def _tail(self, fd: int, entry: int, written: int) -> None:
        """The object turned out larger than the catalog says: the rest, part by part (the
        catalog's size only plans the GETs; a FIFO closed early would cut the clip)."""
        key = self._plan.entries[entry].source.key
        buf = self._buffer()
        try:
            while written < self._totals.get(entry, 0):
                n = self._fetch(_Part(entry, key, written, len(buf)), buf)
                if n == 0:
                    return
                with contextlib.suppress(BrokenPipeError):
                    _write_all(fd, memoryview(buf)[:n])
                    written += n
                    continue
                return
        finally:
            self._free.append(buf)

    def _parts(self) -> list[_Part]:
        size = self._opt.part_bytes
        out = []
        for i in self._fed:
            src = self._plan.entries[i].source
            for off in range(0, src.size, size):
                out.append(_Part(i, src.key, off, min(size, src.size - off)))
        return out

    def _buffer(self) -> bytearray:
        if self._free:
            return self._free.pop()
        self._allocated += 1
        return bytearray(self._opt.part_bytes)

    def _drop(self, pending: deque[_Pending], entry: int) -> None:
        """Forget the queued parts of ``entry``; their buffers come back once their GET
        (if it already runs) ends."""
        keep = [p for p in pending if p.part.entry != entry]
        for p in pending:
            if p.part.entry == entry:
                p.future.cancel()
                with contextlib.suppress(BaseException):
                    p.future.result()
                self._free.append(p.buf)
        pending.clear()
        pending.extend(keep)

    def _fetch(self, part: _Part, buf: bytearray) -> int:
        into = memoryview(buf)[: part.length]
        for attempt in range(ATTEMPTS):
            if self._stop.is_set():
                return 0
            try:
                n, total = self._store.read_range(part.key, part.offset, into)
            except StorageUnavailable as exc:
                if exc.code == "InvalidRange":
                    return 0  # past the end: the object is smaller than the catalog says
                if attempt + 1 == ATTEMPTS:
                    raise
                log.info("export feed: GET of %s retried: %s", part.key, exc)
                self._stop.wait(0.2 * 2**attempt)
                continue
            if n != part.length and part.offset + n != total:
                raise StorageUnavailable(
                    f"S3 GET {part.key} ended early ({part.offset + n} of {total} bytes)"
                )
            with self._lock:
                self.fetched_bytes += n
                self._totals[part.entry] = total
            return n
        return 0

    def _open(self, path: Path) -> int | None:
        """Open the FIFO for writing once ffmpeg opens it for reading (polled: a blocking
        open would hang if ffmpeg never gets there); None when stopped first."""
        delay = 0.0005
        while not self._stop.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
                self._stop.wait(delay)
                delay = min(delay * 2, 0.01)
                continue
            os.set_blocking(fd, True)
            with contextlib.suppress(OSError):  # Linux: fewer, larger writes
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
            return fd
        return None


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]
