"""The fleet's Prometheus metrics, and a collector that labels a registry by node.

Every node serves ``/metrics``; a fleet dashboard sums over nodes, so every series a node
exports carries ``node="<id>"`` (``NodeLabelled`` adds it to registries that do not know
about nodes, such as the recorder's).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
CLAIMS = Counter(
    "camvault_lease_claims", "Camera leases claimed by this node", ["node"], registry=REGISTRY
)
RELEASES = Counter(
    "camvault_lease_releases",
    "Camera leases handed back in order (hand-off, drain, shutdown)",
    ["node"],
    registry=REGISTRY,
)
LOST = Counter(
    "camvault_lease_lost",
    "Cameras stopped because their lease could not be renewed in time",
    ["node"],
    registry=REGISTRY,
)
RENEW_FAILURES = Counter(
    "camvault_lease_renew_failures", "Lease renewals that failed", ["node"], registry=REGISTRY
)
RENEW_SECONDS = Histogram(
    "camvault_lease_renew_duration_seconds",
    "Time of one renewal round trip to PostgreSQL",
    ["node"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HELD = Gauge("camvault_leases_held", "Camera leases this node holds", ["node"], registry=REGISTRY)
RECORDING = Gauge(
    "camvault_node_cameras_recording", "Cameras this node records now", ["node"], registry=REGISTRY
)
LAST_RENEWAL = Gauge(
    "camvault_lease_last_renewal_seconds",
    "Unix time of this node's last successful lease renewal",
    ["node"],
    registry=REGISTRY,
)


class NodeLabelled(Collector):
    """Re-exports every sample of ``registry`` with ``node=<node>`` added (samples that
    already carry a node label are passed as they are)."""

    def __init__(self, registry: CollectorRegistry, node: str) -> None:
        self._registry = registry
        self._node = node

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            out = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            for s in metric.samples:
                labels = s.labels if "node" in s.labels else {**s.labels, "node": self._node}
                out.add_sample(s.name, labels, s.value, s.timestamp, s.exemplar)
            yield out
