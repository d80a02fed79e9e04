"""What a node knows of each camera it holds (``Grant``) and records (``Running``), and
when a recording camera may be handed on. Plain state, no I/O (``camvault.fleet.node``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from camvault.recorder import CameraRecorder

__all__ = ["HANDOFF_MIN_RUN", "HANDOFF_MIN_SEGMENT", "Grant", "Running", "waiting_text"]

# A camera started this recently is not handed on yet (the asker waits): ffmpeg reads ~2 s
# of stream (frame-rate probing) before it writes a byte, and stopped within that time it
# leaves nothing — the hand-off would cost the whole run. (Lease deadlines, drain and
# shutdown do not wait.)
HANDOFF_MIN_RUN = 3.0
# Nor within this long of ffmpeg's latest cut: object keys name a segment by its start
# *second*, and the last segment of a camera handed over in under a second could share
# that second with the new holder's first (a different object at the same key). A last
# segment this long puts the next start in a later second whatever the hand-off gap.
HANDOFF_MIN_SEGMENT = 1.2


@dataclass
class Grant:
    """A lease this node holds on a camera: its fencing epoch, how long it may record by
    its own clock, and the node a hand-off was asked for (if any)."""

    epoch: int
    until: float  # monotonic deadline
    url: str | None
    segment_seconds: int | None
    handoff_to: str | None = None


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
