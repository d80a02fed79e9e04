"""The recorder's Prometheus metrics, per camera.

A registry of its own, so tests and several recorders in one process do not collide with
prometheus_client's global default registry. The API serves it on ``/metrics`` with every
series labelled ``node`` (``api.server.label_by_node``), next to the API's and the fleet's.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["REGISTRY", "camera_started"]

REGISTRY = CollectorRegistry(auto_describe=True)
SEGMENTS = Counter(
    "camvault_recorder_segments", "Segments recorded and spooled", ["camera"], registry=REGISTRY
)
BYTES = Counter(
    "camvault_recorder_bytes", "Bytes of spooled recorded segments", ["camera"], registry=REGISTRY
)
RECONNECTS = Counter(
    "camvault_recorder_reconnects", "Reconnects after a lost stream", ["camera"], registry=REGISTRY
)
QUARANTINED = Counter(
    "camvault_recorder_quarantined", "Recorded segments quarantined", ["camera"], registry=REGISTRY
)
LAST_SEGMENT = Gauge(
    "camvault_recorder_last_segment_end_seconds",
    "Unix time of the end of the camera's latest spooled segment",
    ["camera"],
    registry=REGISTRY,
)
CONNECTED = Gauge(
    "camvault_recorder_connected", "1 while the camera streams", ["camera"], registry=REGISTRY
)


def camera_started(camera_id: str) -> None:
    """Create the camera's series at 0: a counter that has never moved is exported as 0
    instead of missing, so ``rate()`` and alert rules see its first increment. Not the
    last segment's end: at 0 it would read as "no footage since 1970" and page someone."""
    for metric in (SEGMENTS, BYTES, RECONNECTS, QUARANTINED, CONNECTED):
        metric.labels(camera_id)
