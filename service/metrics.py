"""Prometheus metrics of one app: requests, latencies, predictions per label.

Each app gets its own registry, so that tests can build many apps in one
process. With several uvicorn workers, ``xinxi serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` aggregates every worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from model import Prediction

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The service's metrics, registered in a registry of their own."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "xinxi_http_requests",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "xinxi_http_request_duration_seconds",
            "Time from request to the end of the response.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.items = Counter("xinxi_predicted_items", "Items scored.", registry=self.registry)
        self.topics = Counter(
            "xinxi_predicted_topics",
            "Items per selected topic ('none' when no topic applies).",
            ["label"],
            registry=self.registry,
        )
        self.kinds = Counter(
            "xinxi_predicted_kinds", "Items per predicted kind.", ["label"], registry=self.registry
        )
        self.model_loaded = Gauge(
            "xinxi_model_loaded",
            "1 when a model is loaded and serving.",
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.model_swaps = Counter(
            "xinxi_model_loads", "Model versions loaded.", ["outcome"], registry=self.registry
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_predictions(self, predictions: Iterable[Prediction]) -> None:
        for prediction in predictions:
            self.items.inc()
            selected = [topic.label for topic in prediction.topics if topic.selected]
            for label in selected or ["none"]:
                self.topics.labels(label).inc()
            if prediction.kind is not None:
                self.kinds.labels(prediction.kind.label).inc()

    def render(self) -> bytes:
        """The exposition text; aggregated over worker processes in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
