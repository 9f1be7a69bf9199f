"""Shopwatch's own figures, in Prometheus text format at ``/metrics``.

Each app builds its own :class:`Metrics` with its own registry: no global state, so
tests and several apps in one process never share counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shopwatch.ingest.writer import CommitStats

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Gauges(Collector):
    """Gauges read at scrape time from callbacks (queue depth, store size)."""

    def __init__(self, gauges: dict[str, tuple[str, Callable[[], float]]]) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (doc, read) in self._gauges.items():
            yield GaugeMetricFamily(name, doc, value=read())


class Metrics:
    """The counters and histograms ingest and the writer update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter("shopwatch_events_accepted", "Events acknowledged (committed).",
                                registry=r)
        self.rejected = Counter("shopwatch_events_rejected",
                                "Events not stored, by reason.", ["reason"], registry=r)
        self.requests = Counter("shopwatch_ingest_requests", "Ingest requests by HTTP status.",
                                ["status"], registry=r)
        self.request_seconds = Histogram("shopwatch_ingest_request_seconds",
                                         "Ingest request latency, receipt to acknowledgement.",
                                         buckets=_LATENCY_BUCKETS, registry=r)
        self.rum_rows = Counter("shopwatch_rum_rows", "RUM records stored, by kind.", ["kind"],
                                registry=r)
        self.rum_dropped = Counter(
            "shopwatch_rum_dropped",
            "RUM records not stored, by reason (invalid, sampled_out, origin).", ["reason"],
            registry=r)
        self.otlp_accepted = Counter(
            "shopwatch_otlp_accepted", "OpenTelemetry items stored (committed), by signal: "
            "traces (spans), metrics (data points), logs (log records).", ["signal"],
            registry=r)
        self.otlp_rejected = Counter(
            "shopwatch_otlp_rejected", "OpenTelemetry items rejected one by one (invalid), "
            "by signal.", ["signal"], registry=r)
        self.commit_seconds = Histogram("shopwatch_commit_seconds",
                                        "Duration of one group commit to the event store.",
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.commit_events = Histogram(
            "shopwatch_commit_events", "Events per group commit.",
            buckets=(1, 10, 100, 1000, 5000, 10_000, 50_000, 100_000), registry=r)
        self.commit_failures = Counter("shopwatch_commit_failures",
                                       "Group commits that failed (nothing acknowledged).",
                                       registry=r)

    def add_gauges(self, gauges: dict[str, tuple[str, Callable[[], float]]]) -> None:
        """Register gauges whose values are read at scrape time."""
        self.registry.register(_Gauges(gauges))

    def observe_commit(self, stats: CommitStats) -> None:
        """Writer observer: called after every group commit."""
        self.commit_seconds.observe(stats.seconds)
        self.commit_events.observe(stats.events)
        if not stats.ok:
            self.commit_failures.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
