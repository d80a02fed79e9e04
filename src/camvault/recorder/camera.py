"""The run loop: one ``CameraRecorder`` per camera records run after run, and a
``Recorder`` runs them all.

A run ends when the stream stops — camera reboot, network drop, socket timeout, ffmpeg
crash: the open segment is closed and handed on (a short segment, not lost), the loss is
reported as the end of the run, and the camera is reconnected with capped exponential
backoff (full jitter); the next run has a new run id, so the catalog shows the gap.

A segment reaches the spool (``Ingestor.ingest``, which probes and quarantines bad files)
only once ffmpeg has finished writing it (``segmenter.finished``), placed on the camera's
``Timeline``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from camvault.errors import CamvaultError, CatalogUnavailable, InvalidMedia, SpoolFull
from camvault.ingest import IngestResult
from camvault.probe import probe
from camvault.recorder import metrics
from camvault.recorder.command import (
    MP4_AUDIO_CODECS,
    VIDEO_CODECS,
    ffmpeg_command,
    forget_source,
    probe_stream,
    write_source,
)
from camvault.recorder.redact import Redactor, mask_url
from camvault.recorder.salvage import (
    RunState,
    header_only,
    read_state,
    split_incomplete_fragment,
    write_state,
)
from camvault.recorder.supervision import Run, new_run_id, start_ffmpeg, stop_leftover_ffmpeg
from camvault.recorder.timeline import Timeline
from camvault.retry import RetryPolicy
from camvault.segmenter import finished, read_segment_list, stop_gracefully

log = logging.getLogger(__name__)

__all__ = ["CameraRecorder", "CameraSource", "Recorder", "RunLog"]


@dataclass(frozen=True, slots=True)
class CameraSource:
    """A camera to record: its id, RTSP URL and segment length."""

    camera_id: str
    url: str = field(repr=False)  # may hold credentials: never print it, use ``masked``
    segment_seconds: int = 300

    @property
    def masked(self) -> str:
        return mask_url(self.url)


class RunLog(Protocol):
    """Where runs and camera status are reported (the catalog); best effort only."""

    def run_started(self, camera_id: str, run_id: str, at: datetime) -> None: ...
    def run_ended(
        self, camera_id: str, run_id: str, at: datetime, reason: str, segments: int, size: int
    ) -> None: ...
    def camera_offline(self, camera_id: str, since: datetime, reason: str) -> None: ...


Ingest = Callable[..., IngestResult]  # Ingestor.ingest(path, camera_id, start=, run_id=)
Probe = Callable[[str, float], tuple[str, list[str]]]  # url, timeout → (video, [audio])


class CameraRecorder:
    """Supervises one camera: run after run until ``stop`` is set."""

    def __init__(
        self,
        source: CameraSource,
        ingest: Ingest,
        *,
        work_dir: Path,
        ffmpeg: str,
        run_log: RunLog | None = None,
        backoff: RetryPolicy | None = None,
        timeout_seconds: float = 10.0,
        poll_seconds: float = 0.25,
        stop_grace_seconds: float = 20.0,
        probe_stream: Probe = probe_stream,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_result: Callable[[IngestResult], None] | None = None,
        die_with_parent: bool = False,
        floor: datetime | None = None,
    ) -> None:
        self.source = source
        # fleet nodes: ffmpeg finalizes its segment and exits when the recorder dies, so a
        # killed node cannot go on recording a camera whose lease passes to another node
        self.die_with_parent = die_with_parent
        self._ingest = ingest
        self.dir = Path(work_dir) / source.camera_id
        self.ffmpeg = ffmpeg
        self._run_log = run_log
        self._backoff = backoff or RetryPolicy(base_seconds=1.0, cap_seconds=30.0)
        self.timeout = timeout_seconds
        self.poll = poll_seconds
        self.grace = stop_grace_seconds
        self._probe = probe_stream
        self._clock = clock
        self._on_result = on_result or (lambda r: None)
        self._redact = Redactor(source.url)
        # ``floor``: the previous holder's last segment ends there (fleet hand-off); nothing
        # we record starts before it. Set after the start-up salvage, which places segments
        # of our own earlier runs by their saved state.
        self._floor = floor
        self.timeline = Timeline()
        self.runs = 0
        self._leftovers = False  # a run left segments it could not spool (disk full …)
        self._leftovers_tried = 0.0
        self._collected: tuple[str, int, int, int] | None = None  # see ``_collect``

    # the supervision loop ---------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        cam = self.source.camera_id
        metrics.camera_started(cam)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._salvage()
        self.timeline.raise_floor(self._floor)
        failures = 0
        offline_since: datetime | None = None
        while not stop.is_set():
            self._retry_leftovers()
            run, reason = self._run_once(stop)
            if run is not None and run.segments:
                failures = 0
            else:
                failures += 1
            if stop.is_set():
                break
            if offline_since is None or (run is not None and run.connected):
                offline_since = self._clock()  # since the stream was lost, not since retry n
            self._report_offline(offline_since, reason)
            delay = self._backoff.backoff(min(failures, 16))
            log.warning("camera %s: stream lost (%s); reconnecting in %.1f s", cam, reason, delay)
            metrics.RECONNECTS.labels(cam).inc()
            stop.wait(delay)
        metrics.CONNECTED.labels(cam).set(0)
        self._retry_leftovers(force=True)

    def _retry_leftovers(self, current: Path | None = None, *, force: bool = False) -> None:
        """Hand on segments an earlier run could not spool (disk full, catalog down), at
        most every few seconds, on a timeline of their own (the current run keeps its)."""
        now = time.monotonic()
        if not self._leftovers or (not force and now - self._leftovers_tried < 5.0):
            return
        self._leftovers, self._leftovers_tried = False, now
        saved, self.timeline = self.timeline, Timeline()
        try:
            self._salvage(skip=current)
        finally:
            self.timeline = saved

    def _run_once(self, stop: threading.Event) -> tuple[Run | None, str]:
        cam = self.source.camera_id
        try:
            video, audio = self._probe(self.source.url, self.timeout)
        except Exception as exc:  # PyAV raises its own OSError subclasses; any is "offline"
            return None, f"cannot connect to {self.source.masked}: {self._redact(str(exc))}"
        if stop.is_set():  # stopped while probing (a lease may be gone): start nothing
            return None, "stopped"
        if video not in VIDEO_CODECS:
            return None, f"video codec {video or 'none'} is not H.264/H.265 (no transcoding)"
        keep_audio = bool(audio) and audio[0] in MP4_AUDIO_CODECS
        if audio and not keep_audio:
            log.warning("camera %s: audio %s cannot go into MP4; dropping it", cam, audio[0])
        run_id = new_run_id(self._clock())
        run = Run(run_id, self.dir / run_id)
        try:
            run.dir.mkdir(parents=True, mode=0o700)
            source = write_source(run.dir, self.source.url, timeout_seconds=self.timeout)
        except OSError as exc:  # e.g. the spool disk is full: no run, retried with backoff
            shutil.rmtree(run.dir, ignore_errors=True)
            return None, f"cannot start recording: {exc.strerror or exc}"
        self.timeline.new_run()
        self._save_state(run)
        cmd = ffmpeg_command(
            self.ffmpeg, source, run.dir, self.source.segment_seconds, audio=keep_audio
        )
        run.proc = start_ffmpeg(cmd, die_with_parent=self.die_with_parent)
        self._save_state(run)  # with ffmpeg's pid: it outlives a killed recorder
        log.info(
            "camera %s: run %s recording %s (%s%s, %d s segments)",
            cam,
            run.run_id,
            self.source.masked,
            video,
            f"+{audio[0]}" if keep_audio else "",
            self.source.segment_seconds,
        )
        errors = threading.Thread(
            target=self._pump_stderr, args=(run,), name=f"ffmpeg-log-{cam}", daemon=True
        )
        errors.start()
        self.runs += 1
        while not run.exited and not stop.wait(self.poll):
            self._collect(run)
            self._retry_leftovers(current=run.dir)
        if stop.is_set():
            stop_gracefully(run.proc, self.grace)
        run.proc.wait()
        forget_source(run.dir)
        errors.join(timeout=5)
        for pipe in (run.proc.stdin, run.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._collect(run)
        ended = self._clock()
        code = run.proc.returncode
        if stop.is_set():
            reason = "stopped"
        elif code < 0:  # its last log line (if any) predates the signal: not the reason
            reason = f"ffmpeg killed by {signal.Signals(-code).name}"
        else:
            reason = run.last_error or f"ffmpeg exited ({code})"
        metrics.CONNECTED.labels(cam).set(0)
        if run.connected:
            self._report(
                lambda rl: rl.run_ended(cam, run.run_id, ended, reason, run.segments, run.size)
            )
        log.info("camera %s: run %s ended: %s (%d segments)", cam, run.run_id, reason, run.segments)
        self._cleanup(run)
        return run, reason

    def _pump_stderr(self, run: Run) -> None:
        assert run.proc is not None and run.proc.stderr is not None
        for raw in run.proc.stderr:
            line = self._redact(raw.decode("utf-8", "replace").rstrip())
            if line:
                run.last_error = line[:300]
                log.warning("camera %s: ffmpeg: %s", self.source.camera_id, line)

    # handing finished segments to the spool --------------------------------------------
    def _collect(self, run: Run) -> None:
        # Most polls find nothing new: two stats instead of a glob and a list parse. A new
        # segment file changes the directory's mtime, a cut appends to list.csv; an ended
        # ffmpeg or an unfinished earlier pass always looks again.
        mark = None if run.exited else _change_mark(run.dir)
        if mark is not None and mark == self._collected:
            return
        self._collected = None
        files = run.files()
        if files and not run.connected:
            run.connected = True
            forget_source(run.dir)  # ffmpeg read it before connecting: no secret at rest
            metrics.CONNECTED.labels(self.source.camera_id).set(1)
            started = self._clock()
            self._report(lambda rl: rl.run_started(self.source.camera_id, run.run_id, started))
        listed = read_segment_list(run.dir / "list.csv")
        done = finished(listed, files, exited=run.exited)
        names = [s.name for s in done]
        crashed: list[str] = []
        if run.exited:  # an ffmpeg that crashed never listed the segment it was writing
            crashed = [f for f in files if f not in {s.name for s in listed}]
        media = {
            s.name: s.end - s.start for s in listed if s.start is not None and s.end is not None
        }
        for name in names + crashed:
            if name in run.handed:
                continue
            if not self._hand_over(run, name, media.get(name), crashed=name in crashed):
                return  # the catalog cannot confirm the camera now; try again next poll
        self._collected = mark

    def _hand_over(
        self, run: Run, name: str, media_seconds: float | None, *, crashed: bool = False
    ) -> bool:
        cam = self.source.camera_id
        path = run.dir / name
        stat = path.stat() if path.exists() else None
        if stat is None or stat.st_size == 0:
            run.handed.add(name)  # ffmpeg gave up before writing anything into it
            path.unlink(missing_ok=True)
            return True
        if crashed and header_only(path):  # killed before its first fragment: no footage
            log.warning(
                "camera %s: %s held a header and no footage (%d bytes): dropped",
                cam,
                name,
                stat.st_size,
            )
            run.handed.add(name)
            self._save_state(run)
            path.unlink(missing_ok=True)
            return True
        # its complete fragments are good footage; the cut-off rest is quarantined after it
        try:
            tail = split_incomplete_fragment(path) if crashed else None
        except OSError as exc:  # no room for the tail: keep the whole file, retry later
            log.error("camera %s: cannot split %s yet: %s", cam, name, exc)
            return False
        if media_seconds is None and not self.timeline.in_run:
            try:  # a first segment without a list line: measure it to anchor the run
                media_seconds = probe(path).duration_seconds
            except InvalidMedia:
                media_seconds = 0.0
        seen = self._clock()
        if run.exited:  # ffmpeg's last write ended the footage: long ago, for a crash salvaged
            seen = min(seen, datetime.fromtimestamp(stat.st_mtime, UTC))  # on a restart
        placement = self.timeline.place(media_seconds or 0.0, seen)
        if placement.note:
            log.warning("camera %s: %s: %s", cam, name, placement.note)
        try:
            result = self._ingest(path, cam, start=placement.start, run_id=run.run_id)
        except (CatalogUnavailable, SpoolFull) as exc:  # the file stays here; retried
            log.warning("camera %s: cannot spool %s yet: %s", cam, name, exc)
            self._leftovers = True
            return False
        run.handed.add(name)
        if result.segment is not None:
            seg = result.segment
            end = self.timeline.advance(placement.start, seg.duration_seconds)
            run.segments += 1
            run.size += seg.size_bytes
            metrics.SEGMENTS.labels(cam).inc()
            metrics.BYTES.labels(cam).inc(seg.size_bytes)
            metrics.LAST_SEGMENT.labels(cam).set(end.timestamp())
        else:
            self.timeline.advance(placement.start, media_seconds or 0.0)
            metrics.QUARANTINED.labels(cam).inc()
            log.error("camera %s: recorded segment %s quarantined: %s", cam, name, result.reason)
        self._save_state(run)
        self._on_result(result)
        if tail is not None:
            return self._hand_over(run, tail.name, 0.0)
        return True

    # crash salvage ----------------------------------------------------------------------
    def salvage(self) -> None:
        """Hand on what a killed recorder left behind, without recording (a fleet node
        does this at start-up for every camera, held or not)."""
        if self.dir.is_dir():
            self._salvage()

    def _save_state(self, run: Run) -> None:
        state = RunState(
            run.run_id,
            frozenset(run.handed),
            self.timeline.floor,
            run.ffmpeg_pid,
        )
        try:
            write_state(run.dir, state)
        except OSError as exc:  # only salvage after a crash needs it: best effort
            log.warning("camera %s: cannot save run state: %s", self.source.camera_id, exc)

    def _salvage(self, skip: Path | None = None) -> None:
        """Hand on what a killed recorder left in its run directories (but ``skip``)."""
        cam = self.source.camera_id
        for run_dir in sorted(p for p in self.dir.iterdir() if p.is_dir() and p != skip):
            state = read_state(run_dir)
            run = Run(state.run_id, run_dir, handed=set(state.handed))
            forget_source(run_dir)
            stop_leftover_ffmpeg(state.ffmpeg_pid, run_dir, self.grace, cam)
            self.timeline.new_run()
            if state.next_start is not None:
                self.timeline.advance(state.next_start, 0.0)  # continue that run's timeline
            if run.files():
                log.warning("camera %s: salvaging segments of run %s", cam, run.run_id)
            self._collect(run)
            self._cleanup(run)
        self.timeline.new_run()

    def _cleanup(self, run: Run) -> None:
        if all(f in run.handed for f in run.files()):
            shutil.rmtree(run.dir, ignore_errors=True)

    def _report_offline(self, since: datetime, reason: str) -> None:
        self._report(lambda rl: rl.camera_offline(self.source.camera_id, since, reason))

    def _report(self, call: Callable[[RunLog], None]) -> None:
        if self._run_log is None:
            return
        try:
            call(self._run_log)
        except CamvaultError as exc:  # status is best effort: recording goes on without it
            log.warning("camera %s: cannot report status: %s", self.source.camera_id, exc)


# --- all cameras -----------------------------------------------------------------------------
class Recorder:
    """One ``CameraRecorder`` thread per camera; ``stop()`` finalizes every open segment."""

    def __init__(self, cameras: Iterable[CameraRecorder], *, stagger_seconds: float = 0.0) -> None:
        self.cameras = list(cameras)
        self.stagger = stagger_seconds  # between camera starts: spreads the connection burst
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Recorder:
        for i, cam in enumerate(self.cameras):
            if i and self.stagger and self._stop.wait(self.stagger):
                break
            t = threading.Thread(
                target=cam.run, args=(self._stop,), name=f"rec-{cam.source.camera_id}", daemon=True
            )
            t.start()
            self._threads.append(t)
        return self

    def run(self, stop: threading.Event) -> None:
        """Record until ``stop`` is set, then finalize every open segment."""
        self.start()
        stop.wait()
        self.stop()

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _change_mark(run_dir: Path) -> tuple[str, int, int, int] | None:
    """What changes whenever ffmpeg starts a segment file or lists a finished one."""
    try:
        d = os.stat(run_dir)
        lst = os.stat(run_dir / "list.csv")
    except FileNotFoundError:
        return None  # no cut yet (or no directory): look every time
    return str(run_dir), d.st_mtime_ns, lst.st_mtime_ns, lst.st_size
