"""Prometheus metrics of the API process: request latency, plus pipeline/spool figures
read on each scrape from a callable the wiring passes in (no globals, one registry per app).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MetricsSource = Callable[[], Mapping[str, float]]

# Label values must come from bounded sets: a client picks the method and the path, so raw
# values would let anyone grow /metrics without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED_ROUTE = "unmatched"

# name → help; the source returns any subset of these
SOURCE_METRICS = {
    "camvault_uploads_committed": "Segments uploaded and committed by this process",
    "camvault_upload_bytes": "Bytes of segments uploaded by this process",
    "camvault_upload_failed_rounds": "Upload retry rounds that failed in this process",
    "camvault_upload_conflicts": "Segments held because a different object/row exists",
    "camvault_spool_depth": "Segments in the local spool not yet committed",
    "camvault_spool_pending_bytes": "Bytes in the local spool not yet committed",
    "camvault_spool_quarantined": "Files in quarantine",
    "camvault_spool_conflicts": "Segments held in the spool: a different object/row is at the key",
    "camvault_spool_free_bytes": "Free bytes on the spool's filesystem",
    "camvault_spool_min_free_bytes": "[spool] min_free_mb in bytes: below it camvault alerts",
}


class _SourceCollector(Collector):
    def __init__(self, source: MetricsSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        try:
            values = self._source()
        except Exception as exc:  # a scrape must not fail because the spool is busy
            log.warning("metrics source failed: %s", exc)
            return
        for name, help_text in SOURCE_METRICS.items():
            if name in values:
                yield GaugeMetricFamily(name, help_text, value=float(values[name]))


class ApiMetrics:
    """The API's Prometheus registry: request latency by route template, plus the pipeline/spool
    figures the wiring's ``source`` reports on each scrape."""

    def __init__(self, source: MetricsSource | None = None) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "camvault_api_request_duration_seconds",
            "API request latency by route template",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        if source is not None:
            self.registry.register(_SourceCollector(source))

    def observe(self, method: str, route: str | None, status: int, seconds: float) -> None:
        """``route`` is the matched route's template (``None`` when nothing matched)."""
        m = method if method in METHODS else OTHER_METHOD
        self.latency.labels(m, route or UNMATCHED_ROUTE, str(status)).observe(seconds)
