"""Free space on the spool's filesystem: measured, exported, alerted on.

S3 down for a weekend fills the spool. Below ``[spool] min_free_mb`` camvault alerts once
per episode (through the same de-duplicated sinks as upload failures) and says so in
``camvault status`` and ``/healthz``; it never deletes footage to make room. When the disk
is truly full, writes fail with ``SpoolFull`` at the spool boundary (``spool.py``): the
recorder ends the camera's run (the gap is recorded) and retries, ingest answers a clear
error, and everything resumes by itself once space returns.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from camvault.alerts import Alert, AlertSink
from camvault.errors import SpoolFull

log = logging.getLogger(__name__)

LOW_KIND = "spool_low"
OK_KIND = "spool_space_ok"


@dataclass(frozen=True, slots=True)
class DiskSpace:
    """Free and total space of the spool's filesystem against the configured minimum; ``low`` when
    below it."""

    path: str
    free_bytes: int  # available to camvault's (unprivileged) user
    total_bytes: int
    min_free_bytes: int

    @property
    def low(self) -> bool:
        return self.free_bytes < self.min_free_bytes

    def describe(self) -> str:
        return (
            f"spool disk {self.path}: {self.free_bytes / 2**20:.1f} MiB free of "
            f"{self.total_bytes / 2**20:.1f} MiB (minimum {self.min_free_bytes / 2**20:.0f} MiB)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "free_bytes": self.free_bytes,
            "total_bytes": self.total_bytes,
            "min_free_bytes": self.min_free_bytes,
            "low": self.low,
        }


def disk_space(path: Path, min_free_bytes: int) -> DiskSpace:
    st = os.statvfs(path)
    return DiskSpace(
        str(path), st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, min_free_bytes
    )


def space_check(path: Path, min_free_bytes: int) -> None:
    """A health check: raises ``SpoolFull`` naming the disk when it is below the minimum."""
    space = disk_space(path, min_free_bytes)
    if space.low:
        raise SpoolFull(f"low: {space.describe()}")


class SpaceWatcher:
    """Polls the spool's free space; one alert when it drops below the minimum, one notice
    when it is back above it."""

    def __init__(
        self,
        path: Path,
        min_free_bytes: int,
        alerts: AlertSink,
        *,
        node: str = "",
        poll_seconds: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.min_free_bytes = min_free_bytes
        self._alerts = alerts
        self._node = node or socket.gethostname()
        self._poll = poll_seconds
        self._low = False

    def check(self) -> DiskSpace:
        space = disk_space(self.path, self.min_free_bytes)
        if space.low != self._low:
            self._low = space.low
            kind = LOW_KIND if space.low else OK_KIND
            if space.low:
                log.error(
                    "%s: below the minimum; footage is kept, nothing deleted", space.describe()
                )
            else:
                log.warning("%s: back above the minimum", space.describe())
            self._send(kind, space)
        return space

    def _send(self, kind: str, space: DiskSpace) -> None:
        now = datetime.now(UTC)
        alert = Alert(
            kind=kind,
            camera_id="",
            # the episode's start makes the dedupe key unique per episode (the alert
            # Lambda drops repeats of a key), while this watcher sends each only once
            segment_id=f"spool-disk-{now:%Y%m%dT%H%M%SZ}",
            s3_key="",
            error_class="SpoolFull" if space.low else "",
            message=space.describe(),
            attempts=0,
            node=self._node,
            occurred_at=now,
            extra=space.as_dict(),
        )
        try:
            self._alerts.send(alert)
        except Exception:  # an alert sink failing must not stop the watching
            log.exception("cannot send the %s alert", kind)

    def run(self, stop: threading.Event) -> None:
        while True:
            try:
                self.check()
            except OSError as exc:
                log.warning("cannot measure the spool disk %s: %s", self.path, exc)
            if stop.wait(self._poll):
                return
