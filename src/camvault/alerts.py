"""Alerts to operators when a segment cannot be archived.

``AlertSink`` is the narrow interface; ``LogAlertSink`` is the always-on default. Network
sinks (AWS Lambda, webhook) and de-duplication plug in behind the same interface.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

log = logging.getLogger("camvault.alerts")


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str  # "upload_failed" | "recovered" | "conflict"
    camera_id: str
    segment_id: str
    s3_key: str
    error_class: str
    message: str
    attempts: int
    node: str
    occurred_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        d = asdict(self)
        d["occurred_at"] = self.occurred_at.isoformat()
        d["dedupe_key"] = f"{self.kind}:{self.camera_id}:{self.segment_id}:{self.attempts}"
        return d


class AlertSink(Protocol):
    def send(self, alert: Alert) -> None: ...


class LogAlertSink:
    def send(self, alert: Alert) -> None:
        log.warning(
            "ALERT %s camera=%s key=%s attempts=%d error=%s: %s",
            alert.kind,
            alert.camera_id,
            alert.s3_key,
            alert.attempts,
            alert.error_class,
            alert.message,
        )


class FanOutSink:
    """Send to every sink; one failing sink must not stop the others or the uploader."""

    def __init__(self, sinks: list[AlertSink]) -> None:
        self._sinks = sinks

    def send(self, alert: Alert) -> None:
        for sink in self._sinks:
            try:
                sink.send(alert)
            except Exception:
                log.exception("alert sink %s failed", type(sink).__name__)
