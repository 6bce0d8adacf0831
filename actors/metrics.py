"""Prometheus metrics of one runtime: its own registry, so tests never share counters."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actors.bus import Bus
from actors.health import HealthRegistry, HealthState

__all__ = ["Metrics"]


class _RuntimeCollector(Collector):
    """Reads actor and bus statistics at scrape time (nothing is updated per message)."""

    def __init__(self, health: HealthRegistry, bus: Bus) -> None:
        self._health = health
        self._bus = bus

    def collect(self) -> Iterator[Metric]:
        mailbox = GaugeMetricFamily(
            "takt_actor_mailbox_depth", "Messages waiting", labels=["actor"]
        )
        handled = CounterMetricFamily("takt_actor_handled", "Messages handled", labels=["actor"])
        errors = CounterMetricFamily("takt_actor_errors", "Handler errors", labels=["actor"])
        restarts = CounterMetricFamily("takt_actor_restarts", "Restarts", labels=["actor"])
        up = GaugeMetricFamily("takt_actor_up", "1 when the actor is UP", labels=["actor", "state"])
        for name, c in sorted(self._health.snapshot().items()):
            mailbox.add_metric([name], c.mailbox)
            handled.add_metric([name], c.handled)
            errors.add_metric([name], c.errors)
            restarts.add_metric([name], c.restarts)
            up.add_metric([name, c.state.value], 1.0 if c.state == HealthState.UP else 0.0)
        yield from (mailbox, handled, errors, restarts, up)
        stats = self._bus.statistics()
        published = CounterMetricFamily("takt_bus_published", "Events published")
        published.add_metric([], stats.published)
        yield published
        drops = CounterMetricFamily(
            "takt_bus_dropped", "Events a subscriber lost by falling behind", labels=["subscriber"]
        )
        drops.add_metric(["_closed"], stats.dropped_closed)
        for s in stats.subscribers:
            drops.add_metric([s.name], s.dropped)
        yield drops
        unjournaled = CounterMetricFamily(
            "takt_bus_unjournaled", "Durable events published while no journal writer listened"
        )
        unjournaled.add_metric([], stats.unjournaled)
        yield unjournaled


class Metrics:
    def __init__(self, health: HealthRegistry, bus: Bus) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_RuntimeCollector(health, bus))
        self.store_commit_seconds = Histogram(
            "takt_store_commit_seconds", "Group commit latency (one transaction)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.store_batch_rows = Histogram(
            "takt_store_batch_rows", "Rows written per group commit",
            buckets=(1, 10, 100, 1000, 5000, 20000), registry=self.registry,
        )
        self.trace_group_seconds = Histogram(
            "takt_trace_group_seconds",
            "Traceability: judging one group of scans (validation, store, commit)",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.trace_group_scans = Histogram(
            "takt_trace_group_scans", "Traceability: scans judged per group",
            buckets=(1, 2, 5, 10, 50, 256), registry=self.registry,
        )
        self.http_request_seconds = Histogram(
            "takt_http_request_seconds", "HTTP request latency",
            labelnames=["method", "route", "status"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
