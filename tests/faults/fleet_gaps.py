"""Reading a fleet run back: where each camera passed from one node to another, and how.

The gaps are measured from the catalog (one row per segment: start, end, node). Which
passes were orderly hand-offs is read from the old holder's log — its release line says
to whom the lease went (``released CAM (epoch N): passed to NODE``) — because only those
carry the ≤ 3 s bound; a kill, a cut-off node or a shutdown leave gaps of another kind.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_RELEASE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO camvault\.fleet\.node: node (\S+): "
    r"released (\S+) \(epoch \d+\): passed to (\S+)$"
)


@dataclass(frozen=True, slots=True)
class Pass:
    """Camera ``camera`` recorded by ``before`` until ``end``, then by ``after`` from
    ``start``."""

    camera: str
    before: str
    after: str
    end: datetime
    start: datetime

    @property
    def gap(self) -> float:
        return (self.start - self.end).total_seconds()

    def report(self, kind: str) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "from": self.before,
            "to": self.after,
            "at": self.end.isoformat(timespec="milliseconds"),
            "gap_seconds": round(self.gap, 3),
            "kind": kind,
        }


def passes(rows: Iterable[Mapping[str, Any]]) -> list[Pass]:
    """Every change of recording node, per camera (rows ordered by camera, start)."""
    out = []
    for cam, seq in itertools.groupby(rows, key=lambda r: r["camera_id"]):
        for a, b in itertools.pairwise(list(seq)):
            if a["node_id"] != b["node_id"]:
                out.append(Pass(cam, a["node_id"], b["node_id"], a["end_time"], b["start_time"]))
    return out


def overlaps(rows: Iterable[Mapping[str, Any]], tolerance: timedelta) -> list[tuple[Any, ...]]:
    """Consecutive segments of one camera that overlap by more than ``tolerance``."""
    out = []
    for cam, seq in itertools.groupby(rows, key=lambda r: r["camera_id"]):
        for a, b in itertools.pairwise(list(seq)):
            if b["start_time"] < a["end_time"] - tolerance:
                out.append((cam, a["s3_key"], b["s3_key"], (b["start_time"] - a["end_time"])))
    return out


def releases(log_text: str) -> list[tuple[datetime, str, str, str]]:
    """(when, node, camera, heir) of every hand-off release in a node's ``-v`` log."""
    out = []
    for line in log_text.splitlines():
        m = _RELEASE.match(line)
        if m:  # logging's asctime is local time
            when = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)
            out.append((when, m[2], m[3], m[4]))
    return out


def is_handoff(p: Pass, released: list[tuple[datetime, str, str, str]]) -> bool:
    """Did ``p.before`` release the camera to ``p.after`` between the two segments? (A
    second of slack each side: segment times are placed from media durations.)"""
    slack = timedelta(seconds=1)
    return any(
        (node, cam, heir) == (p.before, p.camera, p.after)
        and p.end - slack <= when <= p.start + slack
        for when, node, cam, heir in released
    )
