"""Helpers of the clip splice tests (``export.splice``, ``export.jobsplice``): an
in-memory ranged-read store, recorder-style fragmented segments, a sink, and the frames
a plan should hold, decoded from its sources with PyAV."""

from __future__ import annotations

import hashlib
import io
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av

from camvault.errors import StorageUnavailable
from camvault.export.clip import ClipPlan, Source
from camvault.export.upload import MIN_PART
from tests.media import FFMPEG, make_h264

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
Frames = list[tuple[float, str]]


class Store:
    """An in-memory ``RangeReader``; ``fail_after``: every read after that many fails."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.reads = 0
        self.fail_after: int | None = None

    def read_range(self, key: str, offset: int, into: memoryview) -> tuple[int, int]:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise StorageUnavailable(f"S3 GET {key} failed: boom")
        body = self.objects[key]
        if offset >= len(body):
            raise StorageUnavailable("InvalidRange", code="InvalidRange")
        data = body[offset : offset + len(into)]
        into[: len(data)] = data
        return len(data), len(body)


class Collect:
    """A Sink (``media.render_stream``, ``jobsplice.write``): writes land in a growing
    buffer."""

    def __init__(self) -> None:
        self.buf = bytearray(MIN_PART)
        self.n = 0

    def space(self) -> memoryview:
        if self.n == len(self.buf):
            self.buf.extend(bytes(MIN_PART))
        return memoryview(self.buf)[self.n :]

    def commit(self, n: int) -> None:
        self.n += n

    def data(self) -> bytes:
        return bytes(self.buf[: self.n])


def box_payload(data: bytes, kind: bytes) -> bytes:
    """The payload of the first top-level ISO-BMFF box of ``kind`` in ``data``."""
    pos = 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == kind:
            return data[pos + 8 : pos + size]
        pos += size
    raise AssertionError(kind)


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", *args], check=True, capture_output=True)


def source(store: Store, n: int, path: Path, start: datetime, seconds: float) -> Source:
    store.objects[path.name] = path.read_bytes()
    end = start + timedelta(seconds=seconds)
    return Source(n, start, end, str(path), key=path.name, size=path.stat().st_size)


def recorder(tmp: Path, seconds: float = 8.0, audio: bool = False) -> list[Path]:
    """The recorder's layout: 4 s segments of fragmented MP4, a fragment every second
    and a keyframe every 2 s (so every other fragment starts on a non-keyframe),
    timestamps running on across segments."""
    src = make_h264(tmp / "cam.mp4", seconds=seconds, fps=15, gop=30, audio=audio)
    ffmpeg(
        *("-i", str(src), "-c", "copy", "-f", "segment", "-segment_time", "4"),
        *("-segment_format", "mp4", "-segment_format_options"),
        "movflags=+frag_keyframe+empty_moov+default_base_moof:frag_duration=1000000",
        str(tmp / "rec%03d.mp4"),
    )
    return sorted(tmp.glob("rec*.mp4"))


def decode(data: bytes | Path, digits: int | None = 4) -> tuple[Frames, int]:
    """(each frame's (pts in seconds from the stream's start, rounded to ``digits``,
    picture checksum), the number of audio streams)."""
    with av.open(io.BytesIO(data) if isinstance(data, bytes) else str(data)) as c:
        vs = c.streams.video[0]
        origin = vs.start_time or 0
        frames = []
        for f in c.decode(vs):
            t = float((f.pts - origin) * vs.time_base)
            frames.append((t if digits is None else round(t, digits), checksum(f)))
        return frames, len(c.streams.audio)


def checksum(frame: av.VideoFrame) -> str:
    """The decoded picture's checksum (each plane's rows without their padding)."""
    h = hashlib.md5()
    for p in frame.planes:
        data = bytes(p)
        for y in range(p.height):
            h.update(data[y * p.line_size : y * p.line_size + p.width])
    return h.hexdigest()


def expected(plan: ClipPlan) -> Frames:
    """The plan's frames, decoded from the sources: each entry from its inpoint (else its
    first frame) to before its outpoint, at (its begin - the clip's start) onwards."""
    out: Frames = []
    for i, e in enumerate(plan.entries):
        frames, _ = decode(Path(e.source.url), None)  # rounded once, on the clip's timeline
        begin = plan.actual_start if i == 0 else e.source.start
        base = (begin - plan.actual_start).total_seconds()
        lo = 0.0 if e.inpoint is None else e.inpoint - e.source.origin
        hi = e.outpoint - e.source.origin
        kept = [(t, h) for t, h in frames if lo - 1e-4 <= t < hi - 1e-4]
        out += [(round(base + t - kept[0][0], 4), h) for t, h in kept]
    return out


Packets = list[tuple[float, bytes]]


def audio_packets(data: bytes | Path) -> tuple[str, Packets, float]:
    """(the audio codec, each audio packet's (dts in seconds from the video's start,
    payload), the video's start in seconds)."""
    with av.open(io.BytesIO(data) if isinstance(data, bytes) else str(data)) as c:
        vs, aus = c.streams.video[0], c.streams.audio[0]
        origin = float((vs.start_time or 0) * vs.time_base)
        packets = [
            (float(p.dts * aus.time_base) - origin, bytes(p)) for p in c.demux(aus) if p.size
        ]
        return aus.codec_context.name, packets, origin


def expected_audio(plan: ClipPlan) -> Packets:
    """The plan's audio packets, from its sources: each entry's from its first kept
    frame's time to before its outpoint, placed as that frame is (``expected``)."""
    out: Packets = []
    for i, e in enumerate(plan.entries):
        frames, _ = decode(Path(e.source.url), None)
        _, packets, _ = audio_packets(Path(e.source.url))
        begin = plan.actual_start if i == 0 else e.source.start
        base = (begin - plan.actual_start).total_seconds()
        lo = 0.0 if e.inpoint is None else e.inpoint - e.source.origin
        hi = e.outpoint - e.source.origin
        first = next(t for t, _ in frames if lo - 1e-4 <= t)
        out += [
            (round(base + t - first, 4), d) for t, d in packets if first - 1e-6 <= t < hi - 1e-6
        ]
    return out


def rounded(packets: Packets) -> Packets:
    return [(round(t, 4), d) for t, d in packets]
