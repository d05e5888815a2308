"""The gateway's Prometheus metrics, per service and instance: counters and histograms fed by
the handlers and the dispatch, and gauges read from the live state at scrape time."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pai_lab.serving.gateway.core import Gateway


class Metrics:
    """Prometheus metrics, per service and instance."""

    def __init__(self, gateway: Gateway):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pai_serving_requests",
            "Requests answered, by HTTP status",
            ["service", "instance", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pai_serving_request_latency_seconds",
            "Time from arrival to answer",
            ["service"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_size = Histogram(
            "pai_serving_batch_size",
            "Samples per model call",
            ["service", "instance"],
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        )
        self._children: dict = {}
        self.registry.register(_LiveCollector(gateway))

    def _child(self, metric, *labels):
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, service: str, instance: str, code: int, seconds: float) -> None:
        self._child(self.requests, service, instance, str(code)).inc()
        if service:
            self._child(self.latency, service).observe(seconds)

    def batch(self, service: str, instance: str, size: int) -> None:
        self._child(self.batch_size, service, instance).observe(size)


class _LiveCollector:
    """Gauges read at scrape time from the live state: queue depth, in flight, ready, restarts."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        queue = GaugeMetricFamily(
            "pai_serving_queue_depth", "Requests waiting in an instance's queue", labels=["service", "instance"]
        )
        inflight = GaugeMetricFamily("pai_serving_inflight", "Model calls under way", labels=["service", "instance"])
        ready = GaugeMetricFamily(
            "pai_serving_instance_ready", "1 when the instance takes traffic", labels=["service", "instance"]
        )
        restarts = GaugeMetricFamily(
            "pai_serving_instance_restarts", "Times the instance was restarted", labels=["service", "instance"]
        )
        for svc in list(self.gateway.services.values()):
            for inst in [*svc.instances, *svc.incoming]:
                labels = [svc.name, inst.name]
                queue.add_metric(labels, len(inst.pending))
                inflight.add_metric(labels, len(inst.inflight))
                ready.add_metric(labels, int(inst.ready))
                restarts.add_metric(labels, inst.restarts)
        yield from (queue, inflight, ready, restarts)
