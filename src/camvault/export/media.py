"""The media side of clips: keyframe probes (PyAV) and ffmpeg stream-copy runs.

Both read the recordings straight from S3 through presigned URLs: libav's HTTP client
issues ranged GETs and keeps only its read buffer in memory, so neither the API nor the
worker ever holds a whole object. ffmpeg is the binary bundled with imageio-ffmpeg unless
``[recording] ffmpeg`` names another. A streamed clip whose recordings all qualify is
assembled without ffmpeg (``export.splice``: ``stream_fragments(spliced=…)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import io
import logging
import os
import re
import signal
import subprocess
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from camvault.errors import InvalidMedia, StorageUnavailable
from camvault.export.clip import (
    CUT_BEFORE,
    ClipPlan,
    Keyframes,
    Source,
    ffconcat,
    keyframes_around,
    search_back,
)
from camvault.export.feed import DEFAULT_FEED, Feed, FeedOptions, RangeReader
from camvault.export.splice import Splice
from camvault.export.splice import relay as relay_splice
from camvault.pdeathsig import set_pdeathsig

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.stream import VideoStream

log = logging.getLogger(__name__)

PROTOCOLS = "file,http,https,tcp,tls,crypto"
_URL = re.compile(r"(?:https?|file)://\S+")
_OPEN_OPTIONS = {"rw_timeout": "30000000", "reconnect": "1"}  # microseconds


def ffmpeg_exe(configured: str = "") -> str:
    if configured:
        return configured
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _die_with_parent() -> Callable[[], None]:
    """For the forked ffmpeg: SIGKILL when the thread that started it dies (Linux
    PR_SET_PDEATHSIG). Defence in depth for an ffmpeg fed through FIFOs (``feed``): if its
    feeder is killed while it waits to open the next FIFO with nothing left to write, no
    broken stdout pipe would ever end it (in the kill -9 test it died of that pipe anyway).
    The starting thread (a job's, the event loop's) outlives ffmpeg in every route."""
    return functools.partial(set_pdeathsig, signal.SIGKILL, os.getpid())


def _open(url: str) -> Any:
    # PyAV here, not at the top: its libav libraries are ~22 MB of resident pages, which
    # an export job (``camvault export``; it probes with ffmpeg: ``ffprobe``) never needs
    import av

    try:
        return av.open(url, options=_OPEN_OPTIONS, timeout=30.0)
    except av.error.HTTPError as exc:
        raise StorageUnavailable(f"cannot read recording: {_reason(exc)}") from exc
    except (av.error.FFmpegError, OSError) as exc:
        raise InvalidMedia(f"cannot read recording: {_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    # never str(exc): libav puts the file name in it, and that is a presigned URL to the
    # whole object — an error message must not hand it to a caller with a windowed grant
    return str(getattr(exc, "strerror", None) or type(exc).__name__)


def probe_origin(url: str) -> float:
    """The file's first video timestamp in seconds (concat in/out points are absolute)."""
    with _open(url) as c:
        vs = c.streams.video[0]
        return float((vs.start_time or 0) * vs.time_base)


def probe_keyframes(url: str, offset: float, *, horizon: float = 30.0) -> tuple[float, Keyframes]:
    """(origin, keyframes around ``offset``): seeks through the index to the keyframe at or
    before the offset, then reads forward at most to the next keyframe (one GOP). ffmpeg
    seeks by decoding time: with B-frames (fragmented MP4) the seek can land on the keyframe
    after the one wanted, so then it seeks again further back (``clip.search_back``)."""
    with _open(url) as c:
        vs = c.streams.video[0]
        tb = Fraction(vs.time_base)
        origin_ts = vs.start_time or 0
        found = search_back(offset, lambda s: _scan(c, vs, tb, origin_ts, s, offset, horizon))
        return float(origin_ts * tb), found


def _scan(
    c: InputContainer,
    vs: VideoStream,
    tb: Fraction,
    origin_ts: int,
    seek: float,
    offset: float,
    horizon: float,
) -> Keyframes:
    import av  # loaded by _open already

    with contextlib.suppress(av.error.FFmpegError):
        c.seek(origin_ts + int(seek / tb), stream=vs, backward=True, any_frame=False)
    packets = (
        (float((pkt.pts - origin_ts) * tb), pkt.is_keyframe)
        for pkt in c.demux(vs)
        if pkt.pts is not None
    )
    return keyframes_around(packets, offset, horizon)


def with_origins(sources: list[Source]) -> list[Source]:
    """Sources with their probed origins (a few KB of each file, probed concurrently)."""
    from dataclasses import replace

    if not sources:
        return sources
    with ThreadPoolExecutor(max_workers=min(8, len(sources))) as pool:
        origins = list(pool.map(lambda s: probe_origin(s.url), sources))
    return [replace(s, origin=o) for s, o in zip(sources, origins, strict=True)]


def base_cmd(ffmpeg: str, plan: ClipPlan, script: Path, *, strict: bool = False) -> list[str]:
    """ffmpeg reading the plan's concat script, stream copy. Audio is kept only when the
    clip starts on the keyframe at or before the requested start (the concat demuxer's
    inpoint seeks, but an audio packet just before it may still come through) and never
    when ``strict`` (a window's edge is a hard limit)."""
    audio = plan.cut == CUT_BEFORE and not strict
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-protocol_whitelist",
        PROTOCOLS,
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(script),
        "-map",
        "0:v:0",
        *(["-map", "0:a?"] if audio else []),
        "-c",
        "copy",
    ]


def write_script(plan: ClipPlan, path: Path) -> Path:
    # presigned URLs are bearer secrets: the script is readable by its owner only
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(ffconcat(plan))
    return path


class Sink(Protocol):
    """Where ``render_stream`` puts the clip: it reads ffmpeg's pipe into ``space()`` and
    reports each read with ``commit(n)``."""

    def space(self) -> memoryview: ...
    def commit(self, n: int) -> None: ...


@dataclass(frozen=True, slots=True)
class ClipMetadata:
    """The container tags written into an exported clip: title, a JSON comment (camera, ranges,
    gaps) and creation time."""

    title: str
    comment: str  # JSON: camera, ranges, gaps
    creation_time: str


# the layout of every clip camvault writes (export objects and the streamed clip.mp4):
# fragmented MP4 with an empty moov first — playable while it downloads, like +faststart,
# but written front to back in one pass, so it can go to S3 as ffmpeg produces it
FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"
MP4_LAYOUT = "fragmented"  # what the export row, the object's metadata and the API say
_PIPE_BYTES = 1024 * 1024


def render_stream(
    ffmpeg: str,
    plan: ClipPlan,
    script: Path,
    meta: ClipMetadata,
    sink: Sink,
    *,
    on_progress: Callable[[float], None],
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
    feed: Feed | None = None,
) -> None:
    """Concat + cut into one fragmented MP4 on ffmpeg's stdout, read straight into
    ``sink``'s buffer as it is produced; progress lines come on stderr (with ``-loglevel
    error`` the rest of stderr is ffmpeg's complaint, if any). ``feed``: the plan's
    inputs come through it (``plan`` is then the plan it returned)."""
    write_script(plan, script)
    cmd = [
        *base_cmd(ffmpeg, plan, script),
        "-metadata",
        f"title={meta.title}",
        "-metadata",
        f"comment={meta.comment}",
        "-metadata",
        f"creation_time={meta.creation_time}",
        "-movflags",
        FRAGMENTED,
        "-progress",
        "pipe:2",
        "-nostats",
        "-f",
        "mp4",
        "pipe:1",
    ]
    total = max(plan.seconds, 1e-3)
    errors: list[str] = []

    def read_stderr(stream: Any) -> None:
        for raw in stream:
            key, sep, value = raw.decode("utf-8", "replace").strip().partition("=")
            if sep and key == "out_time_us" and value.lstrip("-").isdigit():
                on_progress(min(99.0, max(0.0, int(value) / 1e6 / total * 100)))
            elif not sep or " " in key:
                errors.append(raw.decode("utf-8", "replace"))
                del errors[:-50]

    with subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=None if feed is None else _die_with_parent(),
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        if on_start is not None:
            on_start(proc)
        if feed is not None:
            feed.attach(proc.kill)
        fd = proc.stdout.fileno()
        with contextlib.suppress(OSError, AttributeError):  # Linux: fewer, larger reads
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        reader = threading.Thread(target=read_stderr, args=(proc.stderr,), daemon=True)
        reader.start()
        try:
            while True:
                room = sink.space()
                n = os.readv(fd, [room])
                room.release()
                if n == 0:
                    break
                sink.commit(n)
        except BaseException:
            proc.kill()
            raise
        finally:
            code = proc.wait()
            reader.join()
    if feed is not None:
        feed.check()  # a failed GET killed ffmpeg: that, not ffmpeg's exit, is the error
    if code != 0:
        # ffmpeg names its inputs: presigned URLs to whole objects, never for the job's row
        err = _URL.sub("<presigned url>", "".join(errors))
        raise InvalidMedia(f"ffmpeg could not cut the clip ({code}): {err[-500:]}")


async def stream_fragments(
    ffmpeg: str,
    plan: ClipPlan,
    script: Path,
    *,
    strict: bool,
    chunk: int = 1024 * 1024,
    store: RangeReader | None = None,
    feed: FeedOptions = DEFAULT_FEED,
    spliced: Splice | None = None,
) -> AsyncIterator[memoryview]:
    """The clip as fragmented MP4 on ffmpeg's stdout; ffmpeg is killed and the script
    removed when the consumer stops early (client gone). ``store``: feed the inputs
    through parallel ranged GETs (``feed``) instead of ffmpeg's own HTTP. ``spliced``
    (``splice.prepare`` vouched for every source): assembled from the samples instead,
    no ffmpeg at all."""
    if spliced is not None:
        async with contextlib.aclosing(relay_splice(spliced)) as assembled:
            async for data in assembled:
                yield data
        return
    cmd = [
        *base_cmd(ffmpeg, plan, script, strict=strict),
        "-movflags",
        FRAGMENTED,
        "-f",
        "mp4",
        "pipe:1",
    ]
    # aclosing: a consumer that stops early (client gone) closes _stream now, which
    # kills ffmpeg — not whenever the event loop gets round to finalizing it
    feeder = None if store is None else Feed(store, plan, feed)
    async with contextlib.aclosing(_stream(cmd, plan, script, chunk, feeder)) as relay:
        async for data in relay:
            yield data


async def stream_ts(
    ffmpeg: str, plan: ClipPlan, script: Path, *, chunk: int = 1024 * 1024
) -> AsyncIterator[memoryview]:
    """The clip as MPEG-TS (what an HLS player appends), with the strict cut of a window:
    video only, nothing before its first keyframe or at/after its end."""
    cmd = [*base_cmd(ffmpeg, plan, script, strict=True), "-f", "mpegts", "pipe:1"]
    # aclosing: a consumer that stops early (client gone) closes _stream now, which
    # kills ffmpeg — not whenever the event loop gets round to finalizing it
    async with contextlib.aclosing(_stream(cmd, plan, script, chunk)) as relay:
        async for data in relay:
            yield data


def _read_up_to(pipe: io.FileIO, size: int, first: bool) -> memoryview:
    """Blocking: up to ``size`` bytes of the pipe (fewer only at EOF); the first call
    returns whatever is there at once (time to first byte). Read in place into one fresh
    buffer per chunk: ffmpeg writes 32 KB at a time, and gathering those as bytes objects
    cost a join (a copy of every byte of the clip) on top of the pipe read itself. A
    fresh buffer, not a reused one: the server may still hold the last one unsent."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = pipe.readinto(view) or 0
    if not first:
        while 0 < got < size and (n := pipe.readinto(view[got:])):
            got += n
    return view[:got]


async def _stream(
    cmd: list[str], plan: ClipPlan, script: Path, chunk: int, feed: Feed | None = None
) -> AsyncGenerator[memoryview, None]:
    """ffmpeg's stdout relayed in ~``chunk``-sized sends. The pipe is ours, enlarged to
    1 MB, and read with blocking reads on a worker thread: one thread hop per chunk
    instead of an event-loop wake-up per 64 KB pipe read (the relay's CPU, not ffmpeg,
    was what the streamed clip paid over the manual route)."""
    loop = asyncio.get_running_loop()
    write_script(feed.__enter__() if feed is not None else plan, script)
    rfd, wfd = os.pipe()
    try:
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdout=wfd,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=None if feed is None else _die_with_parent(),
        )
    except BaseException:
        os.close(rfd)
        if feed is not None:
            await loop.run_in_executor(None, feed.__exit__, None, None, None)
        raise
    finally:
        os.close(wfd)  # ffmpeg holds the write end; EOF when it exits
    if feed is not None:

        def kill() -> None:  # called on the feeder's thread
            loop.call_soon_threadsafe(_kill, proc)

        feed.attach(kill)
    pending: asyncio.Future[memoryview] | None = None
    pipe = io.FileIO(rfd, "rb", closefd=False)
    try:
        first = True
        while True:
            pending = loop.run_in_executor(None, _read_up_to, pipe, chunk, first)
            data = await asyncio.shield(pending)  # cancelled: the read itself runs on
            pending = None
            if not data:
                break
            first = False
            yield data
        await proc.wait()
        if feed is not None:
            feed.check()  # a failed GET: the clip is short, the response must not end well
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if pending is not None:  # a read still running on rfd: let it see EOF first
            await asyncio.wait([pending])
        os.close(rfd)
        with contextlib.suppress(OSError):
            script.unlink()
        if feed is not None:  # joins the feeder (it may wait for a GET): not on the loop
            await loop.run_in_executor(None, feed.__exit__, None, None, None)


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
