"""Planning a clip: which recordings, where to cut, where the gaps are — no I/O here.

A clip is cut with ffmpeg's concat demuxer in stream-copy mode, so it can only start on
a keyframe. The first entry starts at the keyframe at or before the requested start when
the requester may see that instant (``allowed_start``), else at the first keyframe at or
after it — never on footage outside what they may see. Every entry ends at its
recording's catalog end (or the requested end), and carries a ``duration`` reaching to the
next recording's start, so a gap between recordings stays a gap on the clip's timeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from camvault.errors import InputError

CUT_BEFORE = "keyframe_at_or_before"
CUT_AFTER = "keyframe_at_or_after"
# recordings this close count as contiguous (segment boundaries are not frame-exact)
GAP_TOLERANCE = timedelta(milliseconds=500)


@dataclass(frozen=True, slots=True)
class Source:
    """One recording feeding the clip; ``url`` is what ffmpeg reads (presigned GET)."""

    recording_id: int
    start: datetime
    end: datetime
    url: str
    origin: float = 0.0  # the file's first timestamp, seconds (concat points are absolute)
    key: str = ""  # the object, for ``feed`` (ranged GETs instead of ffmpeg's HTTP)
    size: int = 0  # its bytes (catalog); 0: not fed, ffmpeg reads ``url``


@dataclass(frozen=True, slots=True)
class Keyframes:
    """Keyframes around a target offset (seconds from the file's first timestamp)."""

    before: float | None  # the last keyframe at or before the target
    after: float | None  # the first keyframe at or after the target


KEY_EPS = 1e-6  # seconds: a keyframe this close to the offset is at it


def keyframes_around(
    packets: Iterable[tuple[float, bool]], offset: float, horizon: float = 30.0
) -> Keyframes:
    """The keyframes around ``offset`` among ``packets`` ((seconds, is a keyframe), in
    decode order, from at or before the keyframe wanted): the last at or before it and the
    first at or after it, read no further than that or ``horizon`` past the offset. The
    one rule of the keyframe probes (PyAV's demuxer, sample tables, an mfra's fragments)."""
    before: float | None = None
    for t, key in packets:
        if t > offset + horizon:
            break
        if not key:
            continue
        if t <= offset + KEY_EPS:
            before = t
        if t >= offset - KEY_EPS:
            return Keyframes(before, t)
    return Keyframes(before, None)


def search_back(offset: float, scan: Callable[[float], Keyframes]) -> Keyframes:
    """The keyframes around ``offset`` as ``scan(start)`` finds them: a seek to ``start``
    (seconds, ≥ 0), then a read forward. ffmpeg seeks by decoding time, so with B-frames the
    seek can land past the keyframe at or before ``offset``: then the scan starts again
    further back (1, 2, 4 … s), down to the file's start."""
    lead = 0.0
    while True:
        start = offset - lead
        found = scan(max(start, 0.0))
        if found.before is not None or start <= 0:
            return found
        lead = max(1.0, 2 * lead)


@dataclass(frozen=True, slots=True)
class Entry:
    """One source in the ffconcat script: which file, and the in/out points and duration it
    contributes."""

    source: Source
    inpoint: float | None  # absolute file timestamps, seconds
    outpoint: float
    duration: float | None  # span on the clip's timeline up to the next entry


@dataclass(frozen=True, slots=True)
class ClipPlan:
    """How a clip is cut from its sources: the entries, where it actually starts and ends
    (keyframes), how the start was cut, and the gaps inside."""

    entries: tuple[Entry, ...]
    cut: str  # CUT_BEFORE | CUT_AFTER
    actual_start: datetime
    actual_end: datetime
    gaps: tuple[tuple[datetime, datetime], ...]

    @property
    def seconds(self) -> float:
        return (self.actual_end - self.actual_start).total_seconds()

    def gaps_json(self) -> list[dict[str, str]]:
        return [{"start": a.isoformat(), "end": b.isoformat()} for a, b in self.gaps]


def first_offset(sources: Sequence[Source], start: datetime) -> float | None:
    """Where in the first recording the cut falls (None: the range begins before it)."""
    first = sources[0]
    return (start - first.start).total_seconds() if first.start < start else None


def plan_clip(
    sources: Sequence[Source],
    start: datetime,
    end: datetime,
    *,
    keyframes: Keyframes | None,
    allowed_start: datetime,
) -> ClipPlan:
    """``sources`` oldest first, each overlapping [start, end); ``keyframes`` around
    ``first_offset`` in the first one (None when that is None)."""
    if not sources:
        raise InputError("no footage in the requested range")
    first = sources[0]
    offset = first_offset(sources, start)
    inpoint: float | None = None
    if offset is None:
        wall0 = first.start  # the range begins before the footage: its first frame
        cut = CUT_BEFORE if first.start == start else CUT_AFTER
    else:
        if keyframes is None:
            raise ValueError("keyframes are needed when the range starts inside a recording")
        kf_before = keyframes.before
        if kf_before is not None and first.start + timedelta(seconds=kf_before) >= allowed_start:
            at, cut = kf_before, CUT_BEFORE
        elif keyframes.after is not None:
            at, cut = keyframes.after, CUT_AFTER
        else:
            raise InputError("no keyframe inside the requested range to start the clip on")
        wall0 = first.start + timedelta(seconds=at)
        if wall0 >= min(end, first.end):
            raise InputError("no keyframe inside the requested range to start the clip on")
        inpoint = first.origin + at
    entries = []
    gaps = []
    for i, src in enumerate(sources):
        begin = wall0 if i == 0 else src.start
        stop = min(src.end, end)
        outpoint = src.origin + (stop - src.start).total_seconds()
        duration = None
        if i + 1 < len(sources):
            nxt = sources[i + 1].start
            duration = (nxt - begin).total_seconds()
            if nxt - stop > GAP_TOLERANCE:
                gaps.append((stop, nxt))
        entries.append(Entry(src, inpoint if i == 0 else None, outpoint, duration))
    actual_end = min(sources[-1].end, end)
    return ClipPlan(tuple(entries), cut, wall0, actual_end, tuple(gaps))


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def ffconcat(plan: ClipPlan) -> str:
    """The concat demuxer script of a plan."""
    lines = ["ffconcat version 1.0"]
    for e in plan.entries:
        lines.append(f"file {_quote(e.source.url)}")
        if e.inpoint is not None:
            lines.append(f"inpoint {e.inpoint:.6f}")
        lines.append(f"outpoint {e.outpoint:.6f}")
        if e.duration is not None:
            lines.append(f"duration {e.duration:.6f}")
    return "\n".join(lines) + "\n"
