"""Ingest: validate finished segment files and admit them to the spool.

Used by ``camvault ingest`` (explicit files), by the drop-directory watcher (cameras that
push files), and by the recorder and the demo camera. Every check that can fail on the
file's account — unknown camera, not H.264/H.265, truncated, no usable start time, start
in the future — quarantines the file with a one-line reason. Nothing is deleted.

Start time, in order: an explicit ``start``; the container's ``creation_time`` tag; a
timestamp in the file name (see ``probe.start_from_filename``). End = start + the
duration measured from the packets.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from camvault.errors import (
    CatalogUnavailable,
    InputError,
    InvalidMedia,
    SourceReplaced,
    SpoolFull,
    UnknownCamera,
)
from camvault.keys import ALLOWED_EXTS, object_key
from camvault.models import MediaInfo, Segment
from camvault.probe import probe, start_from_filename
from camvault.spool import NewSegment, Spool

log = logging.getLogger(__name__)

_CONTAINER_EXT = {"mov,mp4,m4a,3gp,3g2,mj2": "mp4", "matroska,webm": "mkv", "mpegts": "ts"}
# The catalog's CHECK recordings_max_length (migration 0002) bounds listing scans; a longer
# file is rejected here with a reason instead of failing later at commit.
MAX_RECORDING_SECONDS = 6 * 3600
_IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".reason.json")


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened to one file: admitted as ``segment``, or quarantined to ``quarantined_to`` for
    ``reason``."""

    source: Path
    segment: Segment | None = None
    quarantined_to: Path | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.segment is not None


def choose_start(
    explicit: datetime | None, media: MediaInfo, filename: str
) -> tuple[datetime, str]:
    """(start, where it came from) — pure; raises InputError when nothing gives a start."""
    if explicit is not None:
        if explicit.tzinfo is None:
            raise InputError("--start needs a time zone (e.g. 2026-11-26T13:00:00Z)")
        return explicit.astimezone(UTC), "explicit"
    if media.creation_time is not None:
        return media.creation_time.astimezone(UTC), "creation_time tag"
    from_name = start_from_filename(filename)
    if from_name is not None:
        return from_name, "file name"
    raise InputError(
        "no start time: pass --start, or tag creation_time, or name the file like "
        "CAM_20261126T130000Z.mp4"
    )


def extension_for(path: Path, media: MediaInfo) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ALLOWED_EXTS:
        return suffix
    return _CONTAINER_EXT.get(media.container, "mp4")


class Ingestor:
    """Validates finished segment files (camera known, readable H.264/H.265, start time) and admits
    them to the spool, or quarantines them with a reason; never deletes."""

    def __init__(
        self,
        spool: Spool,
        camera_exists: Callable[[str], bool],
        *,
        prefix: str,
        future_tolerance: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._spool = spool
        self._camera_exists = camera_exists
        self._prefix = prefix
        self._tolerance = future_tolerance
        self._clock = clock

    def ingest(
        self,
        path: Path,
        camera_id: str,
        *,
        start: datetime | None = None,
        run_id: str | None = None,
    ) -> IngestResult:
        """Admit one file, or quarantine it with the reason. ``CatalogUnavailable`` (cannot
        check the camera) and ``SpoolFull`` propagate and leave the file where it is."""
        path = Path(path)
        try:
            # O_NOFOLLOW + fstat: the checks below are about the file we hold open, not
            # about whatever the name points to a moment later (no TOCTOU window)
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise InputError(f"{path}: no such file") from None
            return self._reject(path, camera_id, _symlink_reason(path))
        try:
            return self._ingest_fd(path, fd, camera_id, start, run_id)
        finally:
            os.close(fd)

    def _ingest_fd(
        self,
        path: Path,
        fd: int,
        camera_id: str,
        start: datetime | None,
        run_id: str | None,
    ) -> IngestResult:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path}: not a regular file")
        if st.st_nlink > 1:
            # a hard link shares footage with another name (perhaps another camera's
            # drop dir): admitting it would file that footage under this camera's grants
            return self._reject(
                path,
                camera_id,
                f"has {st.st_nlink} hard links; camvault ingests only files with a single name",
            )
        try:
            if not self._camera_exists(camera_id):
                raise UnknownCamera(camera_id)
            media = probe(Path(_fd_path(fd)))  # the inode checked above
            start_time, origin = choose_start(start, media, path.name)
            if start_time > self._clock() + self._tolerance:
                raise InputError(
                    f"start time {start_time.isoformat()} (from {origin}) is in the future "
                    f"beyond the {int(self._tolerance.total_seconds())} s tolerance"
                )
            if media.duration_seconds > MAX_RECORDING_SECONDS:
                raise InputError(
                    f"duration {media.duration_seconds / 3600:.1f} h is longer than the "
                    f"{MAX_RECORDING_SECONDS // 3600} h a catalog recording may span; "
                    "cut it into segments first"
                )
            ext = extension_for(path, media)
            new = NewSegment(
                camera_id=camera_id,
                source=path,
                start_time=start_time,
                end_time=start_time + timedelta(seconds=media.duration_seconds),
                duration_seconds=media.duration_seconds,
                codec=media.codec,
                width=media.width,
                height=media.height,
                ext=ext,
                s3_key=object_key(self._prefix, camera_id, start_time, ext),
                run_id=run_id,
            )
        except CatalogUnavailable:
            raise
        except (InvalidMedia, InputError) as exc:
            known = camera_id if not isinstance(exc, UnknownCamera) else None
            # PyAV's messages quote the name it opened: name the file, not the fd
            return self._reject(path, known, str(exc).replace(_fd_path(fd), str(path)))
        try:
            seg = self._spool.admit(new, source_fd=fd)
        except SourceReplaced as exc:
            log.warning("quarantined %s", exc)
            return IngestResult(path, quarantined_to=Path(exc.quarantined_to), reason=str(exc))
        log.info(
            "spooled %s as %s (%s, %.1f s)", path.name, seg.s3_key, seg.codec, seg.duration_seconds
        )
        return IngestResult(path, segment=seg)

    def _reject(self, path: Path, camera_id: str | None, reason: str) -> IngestResult:
        dest = self._spool.quarantine(path, reason, camera_id=camera_id)
        log.warning("quarantined %s: %s", path, reason)
        return IngestResult(path, quarantined_to=dest, reason=reason)


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _symlink_reason(path: Path) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    # the link is quarantined, never followed: it could point at another camera's footage
    return f"is a symbolic link (to {target}); camvault ingests only regular files"


class DropWatcher:
    """Polls each camera's drop directory; a file is taken once its size and mtime have
    stayed the same for ``settle_seconds`` (the camera has finished writing it)."""

    def __init__(
        self,
        ingestor: Ingestor,
        dirs: dict[str, Path],
        *,
        settle_seconds: float = 3.0,
        poll_seconds: float = 2.0,
        on_result: Callable[[IngestResult], None] | None = None,
    ) -> None:
        self._ingestor = ingestor
        self._dirs = dirs
        self._settle = settle_seconds
        self._poll = poll_seconds
        self._seen: dict[Path, tuple[int, int, float]] = {}
        self._on_result = on_result or (lambda r: None)

    def scan_once(self, now: float) -> list[IngestResult]:
        results = []
        for camera_id, directory in self._dirs.items():
            if not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                if path.name.startswith(".") or path.name.endswith(_IGNORED_SUFFIXES):
                    continue
                try:
                    st = path.lstat()  # never follow: a link is quarantined, not read
                except FileNotFoundError:
                    continue
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                    continue
                sig = (st.st_size, st.st_mtime_ns)
                prev = self._seen.get(path)
                if prev is None or prev[:2] != sig:
                    self._seen[path] = (*sig, now)
                    if self._settle > 0:
                        continue
                elif now - prev[2] < self._settle:
                    continue
                self._seen.pop(path, None)
                try:
                    result = self._ingestor.ingest(path, camera_id)
                except CatalogUnavailable as exc:
                    log.warning("drop dir %s: catalog unavailable, will retry: %s", directory, exc)
                    continue
                except SpoolFull as exc:  # the file stays in the drop dir until space returns
                    log.error("drop dir %s: %s", directory, exc)
                    continue
                results.append(result)
                self._on_result(result)
        return results

    def run(self, stop: threading.Event) -> None:
        import time

        while not stop.is_set():
            self.scan_once(time.monotonic())
            stop.wait(self._poll)
