"""The per-camera timeline: covered spans, the gaps between them, and playlist entries.

Everything is computed in SQL (``timeline.sql``) as the acting user under row-level
security, so a caller with a windowed grant sees only the spans inside their window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from camvault.catalog.access import Identity
from camvault.catalog.connector import Connector
from camvault.catalog.queries import query

_SQL = "timeline.sql"
# Recordings closer than this are one span: a recorder's segments abut to the frame, and
# ingested files are rounded to the second.
ABUT_TOLERANCE = timedelta(seconds=1)
PLAYABLE_ELSEWHERE = frozenset({"archived", "restoring"})


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of gapless visible footage in one storage state."""

    start: datetime
    end: datetime
    state: str  # the storage class (e.g. STANDARD), or archived / restoring / restored
    recordings: int
    codecs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch with no visible footage."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class PlaylistEntry:
    """One playable (part of a) recording for the HLS playlist: its visible [start, end), storage
    state and object."""

    id: int
    start: datetime
    end: datetime
    duration_seconds: float
    codec: str
    state: str
    clipped: bool = False  # only part of the recording is visible: [start, end) of it
    recording_start: datetime | None = None
    s3_bucket: str = ""
    s3_key: str = ""
    first_frame: datetime | None = None  # a part's first keyframe, once probed (API side)

    @property
    def playable(self) -> bool:
        return self.state not in PLAYABLE_ELSEWHERE


def gaps_between(spans: list[Span], tolerance: timedelta = ABUT_TOLERANCE) -> list[Gap]:
    """Uncovered stretches between consecutive spans (a change of storage state alone is
    no gap)."""
    out: list[Gap] = []
    covered_to: datetime | None = None
    for s in spans:
        if covered_to is not None and s.start > covered_to + tolerance:
            out.append(Gap(covered_to, s.start))
        covered_to = s.end if covered_to is None else max(covered_to, s.end)
    return out


class TimelineCatalog:
    """Timeline queries (spans, gaps, playlist entries) run as ``acting_user``, so row-level
    security clips them to what that user may see."""

    def __init__(self, connector: Connector, acting_user: Identity) -> None:
        self._db = connector
        self._who = acting_user

    def spans(self, camera_id: str, start: datetime, end: datetime) -> list[Span]:
        with self._db.transaction(acting_user=self._who.user_id) as s:
            rows = s.fetchall(
                query("timeline_spans", _SQL),
                {"camera_id": camera_id, "start": start, "end": end, "tolerance": ABUT_TOLERANCE},
            )
        return [
            Span(r["start_time"], r["end_time"], r["state"], r["recordings"], tuple(r["codecs"]))
            for r in rows
        ]

    def playlist(
        self, camera_id: str, start: datetime, end: datetime, *, limit: int
    ) -> list[PlaylistEntry]:
        with self._db.transaction(acting_user=self._who.user_id) as s:
            rows = s.fetchall(
                query("playlist_recordings", _SQL),
                {"camera_id": camera_id, "start": start, "end": end, "limit": limit},
            )
        return [
            PlaylistEntry(
                r["id"],
                r["start_time"],
                r["end_time"],
                r["duration_seconds"],
                r["codec"],
                r["state"],
                r["clipped"],
                r["rec_start"],
                r["s3_bucket"],
                r["s3_key"],
            )
            for r in rows
        ]
