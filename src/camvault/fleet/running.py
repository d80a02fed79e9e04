"""What a node knows of each camera it holds (``Grant``) and records (``Running``), when a
recording camera may be handed on, and where the next holder's timeline starts. Plain
state and rules, no I/O (``camvault.fleet.node``)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from camvault.recorder import CameraRecorder

log = logging.getLogger(__name__)

__all__ = [
    "HANDOFF_MIN_RUN",
    "HANDOFF_MIN_SEGMENT",
    "MAX_FLOOR_LEAD",
    "Grant",
    "Running",
    "handed_floor",
    "latest_ends",
    "waiting_text",
]

# A camera started this recently is not handed on yet (the asker waits): ffmpeg reads ~2 s
# of stream (frame-rate probing) before it writes a byte, and stopped within that time it
# leaves nothing — the hand-off would cost the whole run. (Lease deadlines, drain and
# shutdown do not wait.)
HANDOFF_MIN_RUN = 3.0
# Nor within this long of ffmpeg's latest cut: object keys name a segment by its start
# *second*, and the new holder starts its timeline after the old holder's last segment
# (the lease's last_end; the two recorders' clocks anchor runs up to ~1 s apart) and in a
# later second than it began (``Timeline.handoff_floor``). A last segment over a second
# long leaves the next holder's first where its own clock puts it; a shorter one — a cut
# can still land between this decision and ffmpeg's stop — pushes it up to ~1 s later.
HANDOFF_MIN_SEGMENT = 1.2
# A handed-on last_end further than this ahead of our own clock is the old holder's clock
# running ahead, not footage: starting after it would shift our whole run that late.
MAX_FLOOR_LEAD = timedelta(seconds=2)


@dataclass
class Grant:
    """A lease this node holds on a camera: its fencing epoch, how long it may record by
    its own clock, and the node a hand-off was asked for (if any)."""

    epoch: int
    until: float  # monotonic deadline
    url: str | None
    segment_seconds: int | None
    handoff_to: str | None = None
    floor: datetime | None = None  # the lease's last_end: our recorder starts no earlier


@dataclass
class Running:
    """A camera this node records now: the recorder thread, its stop flag and whether the
    lease is released (orderly stop) or left to expire once the thread ended."""

    epoch: int
    url: str
    segment_seconds: int | None
    recorder: CameraRecorder
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    release: bool = False  # stopped in order: release the lease once the thread ended
    why: str = ""
    started: float = 0.0  # monotonic


def handed_floor(camera_id: str, last_end: datetime | None, now: datetime) -> datetime | None:
    """Where a recorder of ``camera_id`` starting at ``now`` begins its timeline: at the end
    of the previous holder's last segment (the lease's ``last_end``: the two recorders
    anchor their runs on their own clocks, up to ~1 s apart) — unless that lies more than
    ``MAX_FLOOR_LEAD`` in our future (the clocks differ: said, and ignored)."""
    if last_end is not None and last_end > now + MAX_FLOOR_LEAD:
        log.warning(
            "camera %s: its previous holder's last segment ends at %s, %.1f s ahead of our "
            "clock: are the nodes' clocks in sync? Not starting after it",
            camera_id,
            last_end.isoformat(),
            (last_end - now).total_seconds(),
        )
        return None
    return last_end


def latest_ends(ended: dict[str, datetime], running: dict[str, Running]) -> dict[str, datetime]:
    """By camera, where the next holder may start (``Timeline.handoff_floor``): of
    recorders that ended (``ended``, until released) and of those recording now."""
    ends = dict(ended)
    for cam, run in running.items():
        end = run.recorder.timeline.handoff_floor()
        if end is not None:
            ends[cam] = end
    return ends


def waiting_text(cameras: list[str], leases: dict[str, Any]) -> str:
    """What `camvault record` says of the cameras it waits for (``leases``: by camera)."""

    def why(cam: str) -> str:
        row = leases.get(cam)
        if row is None or not row["recordable"] or not row["enabled"]:
            return f"{cam} (not recordable: unknown, disabled or without url)"
        if row["live"] and row["holder"]:
            return f"{cam} (held by {row['holder']})"
        return cam

    return f"waiting for the lease of {', '.join(why(c) for c in cameras)}: records it once free"
