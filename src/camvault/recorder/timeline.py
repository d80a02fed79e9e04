"""When did a recorded segment start? Pure clock reasoning for the recorder, no I/O.

The same idea as Moonfire NVR: the camera's own clock is not trusted for *when* (it may be
wrong, or jump), only for *how long* — the media timestamps measure durations well. So:

- A **run** is one continuous connection. Its first segment is anchored on the recorder's
  wall clock: the moment we saw that segment finished, minus its media duration (an upper
  bound of the true start: we only ever see a segment *after* it ended).
- Within a run the segments abut: segment N+1 starts exactly where segment N ended
  (start + its media duration), so there is no gap and no overlap while connected.
- If the media clock runs slow against the wall clock (the run falls behind by more than
  ``noise_seconds``), each next start is pushed later by at most ``max_slew_seconds`` — a
  fraction of a frame, so boundaries still abut within one frame interval.
- If the media clock runs ahead (or jumps forward), a start is never pulled back: that
  would overlap the previous segment. The placement says so (``note``), to be logged.
- Nothing ever starts before the end of the previous segment (``floor``), across runs too,
  so a camera whose clock or timestamps jump backwards cannot produce overlapping rows, and
  durations come from the packets, so none is negative.
- Across recorders (a fleet hand-off) the next one is given ``handoff_floor``: the end of
  our last segment, and never the second that segment began in (object keys name segments
  by start second).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Placement", "Timeline"]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a segment goes on the camera's timeline, and why if not the plain rule."""

    start: datetime
    note: str | None = None  # why the start differs from the plain rule (for the log)


class Timeline:
    """Start times for one camera's segments, run after run."""

    def __init__(
        self,
        *,
        floor: datetime | None = None,
        noise_seconds: float = 1.0,
        max_slew_seconds: float = 0.015,
        max_lead_seconds: float = 2.0,
    ) -> None:
        self.floor = floor  # end of the latest segment placed: nothing may start earlier
        self.noise = noise_seconds  # how late we may notice a finished segment
        self.max_slew = timedelta(seconds=max_slew_seconds)
        self.max_lead = max_lead_seconds
        self._next: datetime | None = None  # where the run's next segment starts
        self._last_start: datetime | None = None  # of the latest segment placed

    @property
    def in_run(self) -> bool:
        return self._next is not None

    def new_run(self) -> None:
        """The connection was lost (or is new): the next segment is anchored afresh."""
        self._next = None

    def place(self, media_seconds: float, finished_at: datetime) -> Placement:
        """Start of the run's next segment, ``media_seconds`` long by its timestamps and
        seen finished at wall-clock time ``finished_at`` (timezone-aware)."""
        if finished_at.tzinfo is None:
            raise ValueError("finished_at must be timezone-aware")
        media = max(0.0, media_seconds)
        wall_start = finished_at - timedelta(seconds=media)
        note = None
        if self._next is None:
            start = wall_start
        else:
            lag = (wall_start - self._next).total_seconds()
            start = self._next
            if lag > self.noise:  # media clock slow: catch up, a fraction of a frame at a time
                start += min(self.max_slew, timedelta(seconds=lag - self.noise))
            elif lag < -(self.noise + self.max_lead):
                note = (
                    f"camera timestamps run {-lag:.1f} s ahead of the recorder's clock; "
                    "keeping segments contiguous instead of overlapping"
                )
        if self.floor is not None and start < self.floor:
            gap = (self.floor - start).total_seconds()
            note = f"start moved {gap:.3f} s later to not overlap the previous segment"
            start = self.floor
        return Placement(start, note)

    def raise_floor(self, at: datetime | None) -> None:
        """Nothing starts before ``at`` either (e.g. the end of the last segment another
        recorder of the camera placed: a fleet hand-off)."""
        if at is not None and (self.floor is None or at > self.floor):
            self.floor = at

    def advance(self, start: datetime, duration_seconds: float) -> datetime:
        """Record that the segment placed at ``start`` lasts ``duration_seconds``; returns
        its end, where the run's next segment starts."""
        end = start + timedelta(seconds=max(0.0, duration_seconds))
        self._next = end
        self._last_start = start
        self.raise_floor(end)
        return end

    def handoff_floor(self) -> datetime | None:
        """Where another recorder of this camera (the next holder of a fleet lease) may
        start: after our latest segment, and in a later second than that one started —
        object keys name segments by start second, and a last segment cut short (a stop
        that raced ffmpeg's cut: 0.4 s, seen) can end in the second it began."""
        if self.floor is None or self._last_start is None:
            return self.floor
        return max(self.floor, self._last_start.replace(microsecond=0) + timedelta(seconds=1))
