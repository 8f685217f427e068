"""Prometheus metrics of the HTTP API and the ASGI middleware that counts and times requests."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    """Prometheus metrics of one app instance, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "har_http_requests",
            "HTTP requests by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "har_http_request_duration_seconds",
            "Request latency by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.windows = Counter("har_windows_predicted", "Windows predicted", registry=self.registry)
        self.predictions = Counter(
            "har_predictions", "Predicted windows by activity", ["activity"], registry=self.registry
        )
        self.low_confidence = Counter(
            "har_low_confidence_windows",
            "Windows predicted below the low-confidence threshold",
            registry=self.registry,
        )

    def observe_prediction(self, windows: pd.DataFrame) -> None:
        """Counts windows, classes and low-confidence windows of one response."""
        self.windows.inc(len(windows))
        for activity, count in windows["activity"].value_counts().items():
            self.predictions.labels(activity=str(activity)).inc(int(count))
        self.low_confidence.inc(int(windows["low_confidence"].sum()))


class RequestMetricsMiddleware:
    """Counts requests by endpoint and status and times them (plain ASGI, no extra task).

    Paths outside ``endpoints`` are labelled ``other``: a label per client-chosen path would
    grow the registry without bound.
    """

    # Starlette's BaseHTTPMiddleware (``@app.middleware``) runs each request in a task and
    # pipes the response through a stream: ~1 ms a request, a tenth of a prediction.
    def __init__(self, app: Any, metrics: Metrics, endpoints: Collection[str]):
        self.app = app
        self.metrics = metrics
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Passes the request on, noting the status of the response it sends."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        endpoint = scope["path"] if scope["path"] in self.endpoints else "other"
        status = 500

        async def send_with_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
            self.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - started)
