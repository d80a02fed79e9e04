"""A recording's index read through the S3 boundary's ranged GETs, for the clip splice
(``export.splice``) and the streamed routes' plan (``export.streamplan``).

One GET of the object's head usually holds the ``ftyp`` and ``moov`` (and a fragmented
file's first ``moof``); a moov at the end is found from the top-level box headers, one
small GET each. What ``mp4track`` does not vouch for raises ``ValueError`` (or another of
``TABLE_ERRORS``): the caller leaves that clip to ffmpeg. From a plain file's table come
the same answers the PyAV probes give (``media.probe_origin``/``probe_keyframes``): its
origin, and the keyframes around an offset — so a spliced clip needs no probe
(``plan_indexed``: the plan from them, for the streamed routes and export jobs alike).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime

from camvault.errors import StorageUnavailable
from camvault.export.clip import (
    ClipPlan,
    Keyframes,
    Source,
    first_offset,
    keyframes_around,
    plan_clip,
)
from camvault.export.feed import ATTEMPTS, MB, RangeReader
from camvault.mp4track import TABLE_ERRORS, VideoTrack, fragment_samples, read_moov

log = logging.getLogger(__name__)

__all__ = ["Index", "box_header", "plan_indexed", "read_at", "read_indexes", "read_range"]

HEAD = 64 * 1024  # the first GET of each recording: ftyp + moov (+ first moof), usually
MAX_BOX = 64 * MB  # a moov/moof this large is not a camera segment's
_MAX_BOXES = 16  # top-level boxes looked at before the moov (and first moof) is found
_SEGMENT_BOXES = (b"styp", b"sidx", b"ssix", b"prft", b"emsg")


@dataclass(frozen=True, slots=True)
class Index:
    """A recording's video track (``track``), its size as S3 says it (``total``), the
    decode time of its first video sample (``first_dts``) and where its fragments start
    (``start``: the first moof's offset; 0 for a plain file)."""

    key: str
    track: VideoTrack
    total: int
    first_dts: int
    start: int

    @property
    def origin(self) -> float:
        """The file's first video timestamp in seconds (what ``media.probe_origin`` says)."""
        return self.first_dts / self.track.timescale

    def keyframes(self, offset: float, horizon: float = 30.0) -> Keyframes | None:
        """The keyframes around ``offset`` (seconds from the origin) as
        ``media.probe_keyframes`` finds them; None for a fragmented file, whose table is
        read only as it streams."""
        if self.track.fragmented:
            return None
        scale, first = self.track.timescale, self.first_dts
        packets = (((s.dts - first) / scale, s.sync) for s in self.track.samples)
        return keyframes_around(packets, offset, horizon)


def read_indexes(store: RangeReader, sources: Sequence[Source]) -> list[Index] | None:
    """The indexes of ``sources`` (read concurrently) when every one qualifies and they
    share the timescale and the exact sample entry (one init segment fits them all);
    else None. S3 errors propagate."""
    if not sources or any(not s.key or s.size <= 0 for s in sources):
        return None
    try:
        with ThreadPoolExecutor(min(8, len(sources)), thread_name_prefix="clip-index") as pool:
            indexes = list(pool.map(lambda s: _read_index(store, s.key), sources))
    except (*TABLE_ERRORS, StopIteration) as exc:
        log.debug("clip assembled by ffmpeg: a source's index does not qualify (%s)", exc)
        return None
    first = indexes[0].track
    if any(i.track.timescale != first.timescale or i.track.entry != first.entry for i in indexes):
        log.debug("clip assembled by ffmpeg: the sources' codec settings differ")
        return None
    return indexes


def plan_indexed(
    store: RangeReader,
    sources: list[Source],
    start: datetime,
    end: datetime,
    *,
    allowed_start: datetime,
    probe: Callable[[Source, float], Keyframes],
) -> tuple[ClipPlan, list[Index]] | None:
    """The clip's plan from the sources' indexes (origins; a plain first recording's
    keyframes), with their indexes; None when a source does not qualify (then the
    caller probes and plans as before). ``probe(first source, offset)``: the keyframes of
    a fragmented first recording without a usable mfra (its table is read only as it
    streams)."""
    indexes = read_indexes(store, sources)
    if indexes is None:
        return None
    sources = [replace(s, origin=i.origin) for s, i in zip(sources, indexes, strict=True)]
    offset = first_offset(sources, start)
    keyframes = None
    if offset is not None:
        # a plain file's table; a fragmented one's mfra; else the probe (imported here:
        # randomaccess builds on this module)
        from camvault.export.randomaccess import fragment_keyframes

        keyframes = indexes[0].keyframes(offset)
        if keyframes is None:
            keyframes = fragment_keyframes(store, indexes[0], offset)
        if keyframes is None:
            keyframes = probe(sources[0], offset)
    plan = plan_clip(sources, start, end, keyframes=keyframes, allowed_start=allowed_start)
    return plan, indexes


def read_range(store: RangeReader, key: str, offset: int, into: memoryview) -> tuple[int, int]:
    """(bytes read, the object's size): ``store.read_range``, retried as the feed does; a
    read that ends short of ``into`` before the object's end raises."""
    for attempt in range(ATTEMPTS):
        try:
            n, total = store.read_range(key, offset, into)
        except StorageUnavailable as exc:
            if exc.code == "InvalidRange" or attempt + 1 == ATTEMPTS:
                raise
            log.info("clip splice: GET of %s retried: %s", key, exc)
            time.sleep(0.2 * 2**attempt)
            continue
        if n != len(into) and offset + n != total:
            raise StorageUnavailable(f"S3 GET {key} ended early ({offset + n} of {total} bytes)")
        return n, total
    raise AssertionError("unreachable")


def read_at(store: RangeReader, key: str, offset: int, n: int) -> bytes:
    """``n`` bytes of ``key`` from ``offset`` (fewer at the object's end), ``read_range``."""
    buf = memoryview(bytearray(n))
    return bytes(buf[: read_range(store, key, offset, buf)[0]])


def box_header(data: bytes, left: int) -> tuple[bytes, int, int]:
    """(type, size, header size) of the box whose first bytes are ``data``, ``left``
    bytes before the end of the file."""
    if len(data) < 8:
        raise ValueError("a box header past the end of the file")
    size, kind = int.from_bytes(data[:4], "big"), bytes(data[4:8])
    header = 8
    if size == 1:
        if len(data) < 16:
            raise ValueError("a box header past the end of the file")
        size, header = int.from_bytes(data[8:16], "big"), 16
    elif size == 0:
        size = left
    if size < header:
        raise ValueError("box size")
    return kind, size, header


def _read_index(store: RangeReader, key: str) -> Index:
    """The recording's top-level boxes up to the moov and, when fragmented, the first
    moof with a video sample."""
    head = memoryview(bytearray(HEAD))
    got, total = read_range(store, key, 0, head)
    head = head[:got]

    def fetch(offset: int, n: int) -> bytes:
        if offset + n <= len(head):
            return bytes(head[offset : offset + n])
        return read_at(store, key, offset, n)

    track: VideoTrack | None = None
    pos = 0
    for i in range(_MAX_BOXES):
        if pos + 8 > total:
            break
        kind, size, header = box_header(fetch(pos, min(16, total - pos)), total - pos)
        if (i == 0 and kind != b"ftyp") or kind in _SEGMENT_BOXES or size > total - pos:
            raise ValueError(f"layout ({kind!r} box)")
        if kind in (b"moov", b"moof") and size > MAX_BOX:
            raise ValueError("box too large")
        if kind == b"moov":
            if track is not None:
                raise ValueError("two moov boxes")
            track = read_moov(fetch(pos + header, size - header))
            if not track.fragmented:
                table = track.samples
                if max(s.offset + s.size for s in table) > total:
                    raise ValueError("samples past the end of the file")  # cut short
                return Index(key, track, total, table[0].dts, 0)
        elif kind == b"moof":
            if track is None:
                raise ValueError("a moof before the moov")
            first = fragment_samples(fetch(pos + header, size - header), pos, track)
            if first:
                return Index(key, track, total, first[0].dts, pos)
        pos += size
    raise ValueError("no moov, or no video fragment, near the start")
