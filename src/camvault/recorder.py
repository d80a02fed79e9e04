"""The recorder: pull H.264/H.265 from RTSP cameras into gapless MP4 segments in the spool.

One supervised ffmpeg process per camera, **stream copy only** (never a transcode), RTSP
over TCP, cut by the segment muxer on keyframes into fragmented MP4 files (a fragment per
GOP: an ffmpeg killed mid-segment still leaves every complete GOP readable). A **run** is
one continuous connection: its segments abut exactly (see ``recorder_time``). When the
stream stops — camera reboot, network drop, socket timeout, ffmpeg crash — the open
segment is closed and handed on (a short segment, not lost), the loss is reported as the
end of the run, and the camera is reconnected with capped exponential backoff (full
jitter); the next run starts a new run id, so the catalog shows the gap.

A segment reaches the spool (``Ingestor.ingest``, which probes and quarantines bad files)
only once ffmpeg has finished writing it (``segmenter.finished``). Each run's working
directory (under ``<spool>/recording/<camera>/<run>``) keeps ``state.json`` with where the
next segment starts and ffmpeg's pid, so segments left behind by a crash are salvaged on the
next start (after stopping an ffmpeg that outlived its recorder). The segment a killed
ffmpeg was writing is cut after its last complete fragment (spooled); the cut-off rest is
quarantined (``split_incomplete_fragment``).

Credentials in camera URLs are masked in every log line (ffmpeg's and PyAV's messages
quote the URL): ``mask_url`` / ``Redactor``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Counter, Gauge

from camvault.errors import CamvaultError, CatalogUnavailable, InvalidMedia, SpoolFull
from camvault.ingest import IngestResult
from camvault.probe import probe
from camvault.recorder_time import Timeline
from camvault.retry import RetryPolicy
from camvault.segmenter import finished, read_segment_list, stop_gracefully

log = logging.getLogger(__name__)

__all__ = [
    "REGISTRY",
    "CameraRecorder",
    "CameraSource",
    "Recorder",
    "Redactor",
    "RunLog",
    "ffmpeg_command",
    "mask_url",
    "write_source",
]

VIDEO_CODECS = ("h264", "hevc")
MP4_AUDIO_CODECS = ("aac",)  # what we copy into MP4; anything else is dropped (and said so)
SEGMENT_PATTERN = "seg_%06d.mp4"
_SEGMENT_RE = re.compile(r"seg_\d{6}(?:\.tail)?\.mp4")  # .tail: see split_incomplete_fragment

# Metrics for the API's /metrics: a registry of our own, so tests and several recorders in
# one process do not collide with prometheus_client's global default registry.
REGISTRY = CollectorRegistry(auto_describe=True)
SEGMENTS = Counter(
    "camvault_recorder_segments", "Segments recorded and spooled", ["camera"], registry=REGISTRY
)
BYTES = Counter(
    "camvault_recorder_bytes", "Bytes of spooled recorded segments", ["camera"], registry=REGISTRY
)
RECONNECTS = Counter(
    "camvault_recorder_reconnects", "Reconnects after a lost stream", ["camera"], registry=REGISTRY
)
QUARANTINED = Counter(
    "camvault_recorder_quarantined", "Recorded segments quarantined", ["camera"], registry=REGISTRY
)
LAST_SEGMENT = Gauge(
    "camvault_recorder_last_segment_end_seconds",
    "Unix time of the end of the camera's latest spooled segment",
    ["camera"],
    registry=REGISTRY,
)
CONNECTED = Gauge(
    "camvault_recorder_connected", "1 while the camera streams", ["camera"], registry=REGISTRY
)


# --- credentials --------------------------------------------------------------------------
def mask_url(url: str) -> str:
    """``rtsp://user:secret@host/x`` → ``rtsp://user:***@host/x`` (no password: unchanged)."""
    parts = urlsplit(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


class Redactor:
    """Removes a URL's password (raw and percent-decoded) from any text."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        raw = userinfo.split(":", 1)[1] if ":" in userinfo else ""
        self._secrets = sorted({s for s in (raw, unquote(raw)) if s}, key=len, reverse=True)
        self._url, self._masked = url, mask_url(url)

    def __call__(self, text: str) -> str:
        text = text.replace(self._url, self._masked)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


# --- configuration and collaborators -------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CameraSource:
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


def probe_stream(url: str, timeout: float) -> tuple[str, list[str]]:
    """Connect once and read the stream layout: (video codec, audio codecs). Raises
    ``OSError`` / ``av.FFmpegError`` when the camera cannot be reached."""
    import av

    options = {
        "rtsp_transport": "tcp",
        "timeout": str(int(timeout * 1e6)),
        "analyzeduration": "0",
        "probesize": "65536",
    }
    with av.open(url, options=options, timeout=timeout) as c:
        video = next((s.codec_context.name for s in c.streams.video), "")
        audio = [s.codec_context.name for s in c.streams.audio]
    return video, audio


SOURCE_FILE = "source.ffconcat"
# what the concat demuxer may open on ffmpeg's behalf: the script itself, then the camera
_PROTOCOLS = "file,rtsp,rtsps,rtp,srtp,tcp,udp,tls"


def write_source(run_dir: Path, url: str, *, timeout_seconds: float = 10.0) -> Path:
    """The camera URL in a 0600 ffconcat script that ffmpeg reads, instead of on its command
    line: any local user can read a process's argv from /proc/PID/cmdline, and ffmpeg takes
    RTSP credentials only inside the URL. The RTSP input options go with it (``option``)."""
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in url):
        raise ValueError("camera URL contains control characters")
    quoted = url.replace("'", "'\\''")  # ffconcat quoting: close, escaped quote, reopen
    # ffmpeg's RTSP demuxer survives one timed-out socket read and gives up on the second
    # (a silent camera ends the run), so half the budget each
    timeout_us = int(timeout_seconds / 2 * 1e6)
    text = (
        "ffconcat version 1.0\n"
        f"file '{quoted}'\n"
        "option rtsp_transport tcp\n"
        f"option timeout {timeout_us}\n"
    )
    path = run_dir / SOURCE_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


# What keeps each camera's ffmpeg small, measured by bench/recorder_cpu.py (PSS per
# camera). One thread for the decoder ffmpeg opens while probing the stream: by default
# one per core, so on a many-core node each camera briefly spawns a pool it never uses
# (stream copy decodes nothing afterwards). Smaller -probesize/-analyzeduration measured
# no saving, and a probe that misses the SPS fails on cameras whose SDP lacks it: not used.
INPUT_OPTIONS: tuple[str, ...] = ("-threads", "1")
# glibc gives each of ffmpeg's threads its own malloc arena; one arena measured ~0.9 MB
# (~9 %) less private memory per camera, at no CPU cost for ffmpeg's few small allocations.
FFMPEG_ENV: dict[str, str] = {"MALLOC_ARENA_MAX": "1"}


def ffmpeg_command(
    ffmpeg: str,
    source: Path,
    run_dir: Path,
    segment_seconds: int,
    *,
    audio: bool,
) -> list[str]:
    """The ffmpeg command of one run: RTSP/TCP in (the URL read from ``source``, see
    ``write_source``), stream copy, fragmented MP4 segments."""
    maps = ["-map", "0:v:0"] + (["-map", "0:a:0"] if audio else [])
    return [
        ffmpeg,
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "warning",
        "-f",
        "concat",
        "-safe",
        "0",  # the "file" is a URL, not a relative path
        "-protocol_whitelist",
        _PROTOCOLS,
        *INPUT_OPTIONS,
        "-i",
        str(source),
        *maps,
        "-c",
        "copy",
        # ffmpeg's default flushing is kept on purpose: with -flush_packets 0 (~0.1 % of a
        # core cheaper per camera) a killed ffmpeg loses the unflushed tail of its last
        # complete fragment — footage — so the CPU goal yields to "nothing is lost"
        "-f",
        "segment",
        "-segment_time",
        str(segment_seconds),
        "-reset_timestamps",
        "1",
        "-segment_format",
        "mp4",
        "-segment_format_options",
        "movflags=+frag_keyframe+empty_moov+default_base_moof",
        "-segment_list",
        str(run_dir / "list.csv"),
        "-segment_list_type",
        "csv",
        str(run_dir / SEGMENT_PATTERN),
    ]


def split_incomplete_fragment(path: Path) -> Path | None:
    """A fragmented MP4 whose ffmpeg was killed ends inside its last fragment, so the
    whole file fails the probe. Move those trailing bytes to ``seg_N.tail.mp4`` (kept: it
    is quarantined like any bad file) and cut the file after its last complete fragment.
    None when there is nothing to split off: the file is whole, or it holds no complete
    fragment at all (then it is judged, and quarantined, as it is)."""
    size = path.stat().st_size
    pos = good = fragments = 0
    with path.open("rb") as f:
        while pos + 8 <= size:
            f.seek(pos)
            hdr = f.read(16)
            box, kind = int.from_bytes(hdr[:4], "big"), hdr[4:8]
            if box == 1 and len(hdr) == 16:
                box = int.from_bytes(hdr[8:16], "big")
            if box < 8 or pos + box > size:
                break
            pos += box
            if kind != b"moof":  # a moof is complete only with the mdat after it
                good = pos
                fragments += kind == b"mdat"
        if good == size or not fragments:
            return None
        f.seek(good)
        tail = path.with_name(path.name.removesuffix(".mp4") + ".tail.mp4")
        try:
            with tail.open("wb") as out:
                shutil.copyfileobj(f, out)
                out.flush()
                os.fsync(out.fileno())
        except OSError:
            tail.unlink(missing_ok=True)  # the file is left whole; split again later
            raise
    os.truncate(path, good)
    return tail


def _ffmpeg_of(pid: object, run_dir: Path) -> bool:
    """Is ``pid`` (still) the ffmpeg writing into ``run_dir``? (Linux /proc; else False.)"""
    if not isinstance(pid, int):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()  # empty for a zombie
    except OSError:
        return False
    return os.fsencode(run_dir / SEGMENT_PATTERN) in cmdline.split(b"\0")


def _forget_source(run_dir: Path) -> None:
    (run_dir / SOURCE_FILE).unlink(missing_ok=True)


def _libc(name: str) -> Callable[..., int] | None:
    import ctypes

    try:
        fn: Callable[..., int] = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):  # not Linux
        return None
    return fn


# resolved here: the forked child must not load libraries
_PRCTL = _libc("prctl")
_SIGNAL = _libc("signal")
if _SIGNAL is not None:
    import ctypes

    _SIGNAL.argtypes = [ctypes.c_int, ctypes.c_void_p]  # type: ignore[attr-defined]
    _SIGNAL.restype = ctypes.c_void_p  # type: ignore[attr-defined]


def _sigint_on_parent_death() -> None:
    """In the forked child: SIGINT when the thread that started us dies (Linux prctl
    PR_SET_PDEATHSIG = 1), and SIGPIPE ignored — its stderr pipe dies with the parent, and
    ffmpeg must finish writing its segment, not die on its last log line. Elsewhere a no-op."""
    if _PRCTL is not None and _SIGNAL is not None:
        _SIGNAL(signal.SIGPIPE, 1)  # SIG_IGN
        _PRCTL(1, signal.SIGINT)


def _stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _new_run_id(now: datetime) -> str:
    return f"{_stamp(now)}-{uuid.uuid4().hex[:8]}"


# --- one camera ------------------------------------------------------------------------------
@dataclass
class _Run:
    run_id: str
    dir: Path
    proc: subprocess.Popen[bytes] | None = None
    handed: set[str] = field(default_factory=set)
    segments: int = 0
    size: int = 0
    connected: bool = False
    last_error: str = ""

    def files(self) -> list[str]:
        return sorted(p.name for p in self.dir.glob("seg_*.mp4") if _SEGMENT_RE.fullmatch(p.name))

    @property
    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None


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
        self.timeline = Timeline()
        self.runs = 0
        self._leftovers = False  # a run left segments it could not spool (disk full …)
        self._leftovers_tried = 0.0

    # the supervision loop ---------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        cam = self.source.camera_id
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._salvage()
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
            RECONNECTS.labels(cam).inc()
            stop.wait(delay)
        CONNECTED.labels(cam).set(0)
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

    def _run_once(self, stop: threading.Event) -> tuple[_Run | None, str]:
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
        run_id = _new_run_id(self._clock())
        run = _Run(run_id, self.dir / run_id)
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
        run.proc = subprocess.Popen(
            cmd,
            env={**os.environ, **FFMPEG_ENV},
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C in a terminal is ours to relay, not ffmpeg's
            preexec_fn=_sigint_on_parent_death if self.die_with_parent else None,
        )
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
        _forget_source(run.dir)
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
        CONNECTED.labels(cam).set(0)
        if run.connected:
            self._report(
                lambda rl: rl.run_ended(cam, run.run_id, ended, reason, run.segments, run.size)
            )
        log.info("camera %s: run %s ended: %s (%d segments)", cam, run.run_id, reason, run.segments)
        self._cleanup(run)
        return run, reason

    def _pump_stderr(self, run: _Run) -> None:
        assert run.proc is not None and run.proc.stderr is not None
        for raw in run.proc.stderr:
            line = self._redact(raw.decode("utf-8", "replace").rstrip())
            if line:
                run.last_error = line[:300]
                log.warning("camera %s: ffmpeg: %s", self.source.camera_id, line)

    # handing finished segments to the spool --------------------------------------------
    def _collect(self, run: _Run) -> None:
        files = run.files()
        if files and not run.connected:
            run.connected = True
            _forget_source(run.dir)  # ffmpeg read it before connecting: no secret at rest
            CONNECTED.labels(self.source.camera_id).set(1)
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
                break  # the catalog cannot confirm the camera now; try again next poll

    def _hand_over(
        self, run: _Run, name: str, media_seconds: float | None, *, crashed: bool = False
    ) -> bool:
        cam = self.source.camera_id
        path = run.dir / name
        if not path.exists() or path.stat().st_size == 0:
            run.handed.add(name)  # ffmpeg gave up before writing anything into it
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
        placement = self.timeline.place(media_seconds or 0.0, self._clock())
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
            SEGMENTS.labels(cam).inc()
            BYTES.labels(cam).inc(seg.size_bytes)
            LAST_SEGMENT.labels(cam).set(end.timestamp())
        else:
            self.timeline.advance(placement.start, media_seconds or 0.0)
            QUARANTINED.labels(cam).inc()
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

    def _save_state(self, run: _Run) -> None:
        state = {
            "run_id": run.run_id,
            "handed": sorted(run.handed),
            "next_start": self.timeline.floor.isoformat() if self.timeline.floor else None,
            "ffmpeg_pid": run.proc.pid if run.proc is not None else None,
        }
        tmp = run.dir / "state.json.tmp"
        try:
            tmp.write_text(json.dumps(state))
            os.replace(tmp, run.dir / "state.json")
        except OSError as exc:  # only salvage after a crash needs it: best effort
            log.warning("camera %s: cannot save run state: %s", self.source.camera_id, exc)

    def _salvage(self, skip: Path | None = None) -> None:
        """Hand on what a killed recorder left in its run directories (but ``skip``)."""
        for run_dir in sorted(p for p in self.dir.iterdir() if p.is_dir() and p != skip):
            try:
                state = json.loads((run_dir / "state.json").read_text())
            except (OSError, ValueError):
                state = {}
            run = _Run(str(state.get("run_id") or run_dir.name), run_dir)
            _forget_source(run_dir)
            run.handed = set(state.get("handed") or ())
            self._stop_leftover_ffmpeg(state.get("ffmpeg_pid"), run_dir)
            self.timeline.new_run()
            if state.get("next_start"):
                nxt = datetime.fromisoformat(state["next_start"])
                self.timeline.advance(nxt, 0.0)  # continue that run's timeline
            if run.files():
                log.warning(
                    "camera %s: salvaging segments of run %s", self.source.camera_id, run.run_id
                )
            self._collect(run)
            self._cleanup(run)
        self.timeline.new_run()

    def _stop_leftover_ffmpeg(self, pid: object, run_dir: Path) -> None:
        """The ffmpeg of a killed recorder records on (its own session; nobody reads what it
        writes): let it finish its open segment (SIGINT) before salvaging its run, so the
        directory is not collected, and removed, under it."""
        if not _ffmpeg_of(pid, run_dir):
            return
        assert isinstance(pid, int)
        log.warning("camera %s: stopping leftover ffmpeg %d", self.source.camera_id, pid)
        deadline = time.monotonic() + self.grace
        sig = signal.SIGINT
        with contextlib.suppress(OSError):
            os.kill(pid, sig)
        while _ffmpeg_of(pid, run_dir) and time.monotonic() < deadline + 5:
            if sig == signal.SIGINT and time.monotonic() > deadline:
                sig = signal.SIGKILL
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
            time.sleep(0.05)

    def _cleanup(self, run: _Run) -> None:
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
