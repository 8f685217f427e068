"""Prometheus metrics of the HTTP API and the ASGI middleware that counts and times requests."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# The monitoring pipeline's verdicts (pipelines/monitoring/verdict.py), mildest first.
VERDICTS = ("ok", "warn", "retrain")
# Set by the launcher (``python -m har_mlops.serving``) before the workers start.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Files of the "live" gauge modes: gauge_livemin_<pid>.db, gauge_livemax_<pid>.db, ...
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(?P<pid>\d+)\.db$")


def multiprocess_dir() -> str | None:
    """The Prometheus multiprocess folder, when this process runs in that mode."""
    return os.environ.get(MULTIPROC_ENV) or None


def model_info_labels(source: dict[str, Any]) -> dict[str, str]:
    """``har_model_info`` labels of a loaded model's source (see ``loading.py``)."""
    if source.get("kind") == "registry":
        return {
            "name": str(source.get("name", source.get("uri", ""))),
            "version": str(source.get("version", "")),
            "alias": str(source.get("alias") or ""),
            "source": "registry",
        }
    return {
        "name": Path(str(source.get("path", ""))).name,
        "version": "",
        "alias": "",
        "source": str(source.get("kind", "local")),
    }


def _is_running(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine, where all workers run)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_workers(folder: str | Path) -> list[int]:
    """Removes the live-gauge values of exited workers; their pids.

    uvicorn replaces a worker that dies or misses its health check without a hook to call
    ``mark_process_dead``, so the scrape does it: otherwise a worker killed while loading
    would hold ``har_model_loaded`` at 0 for good.
    """
    dead = set()
    for path in Path(folder).glob("gauge_live*.db"):
        match = _LIVE_GAUGE_FILE.match(path.name)
        if match and not _is_running(int(match["pid"])):
            dead.add(int(match["pid"]))
    for pid in sorted(dead):
        mark_process_dead(pid, str(folder))
    return sorted(dead)


class MonitoringReportCollector(Collector):
    """The latest monitoring report's verdict, read from its JSON file at each scrape."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # What was last warned about: a file that stays missing is logged once, not per scrape.
        self._warned: str | None = None

    def _warn_once(self, problem: str) -> None:
        """Logs ``problem`` unless it is the one logged last."""
        if problem != self._warned:
            logger.warning("No monitoring metrics: %s", problem)
            self._warned = problem

    def _read(self) -> tuple[str, float] | None:
        """The report's verdict and modification time; None (logged) when unusable."""
        try:
            mtime = self.path.stat().st_mtime
            report = json.loads(self.path.read_text())
        except FileNotFoundError:
            self._warn_once(f"no monitoring report at {self.path}")
            return None
        except (OSError, ValueError) as exc:
            self._warn_once(f"cannot read the monitoring report {self.path} ({exc})")
            return None
        verdict = report.get("verdict") if isinstance(report, dict) else None
        if verdict not in VERDICTS:
            self._warn_once(
                f"the monitoring report {self.path} has no verdict among {', '.join(VERDICTS)}"
            )
            return None
        self._warned = None
        return verdict, mtime

    def collect(self) -> Iterator[Metric]:
        """``har_monitoring_verdict{verdict}`` and the report's timestamp; nothing if unusable."""
        read = self._read()
        if read is None:
            return
        verdict, mtime = read
        verdicts = GaugeMetricFamily(
            "har_monitoring_verdict",
            "1 for the verdict of the latest monitoring report, 0 for the others",
            labels=["verdict"],
        )
        for name in VERDICTS:
            verdicts.add_metric([name], 1.0 if name == verdict else 0.0)
        yield verdicts
        yield GaugeMetricFamily(
            "har_monitoring_report_timestamp_seconds",
            "Modification time of the latest monitoring report (Unix seconds)",
            value=mtime,
        )


class Metrics:
    """Prometheus metrics of one app instance, in its own registry.

    In multiprocess mode (:data:`MULTIPROC_ENV` set) the values also go to the shared folder,
    and a scrape reads every worker's values from there instead of this registry.
    """

    def __init__(self, monitoring_report: str | Path | None = None) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir()
        self.monitoring = (
            MonitoringReportCollector(monitoring_report) if monitoring_report is not None else None
        )
        if self.monitoring is not None:
            self.registry.register(self.monitoring)
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
        self.confidence = Histogram(
            "har_prediction_confidence",
            "Confidence (top class probability) of each predicted window",
            buckets=CONFIDENCE_BUCKETS,
            registry=self.registry,
        )
        # Max over the running workers: all serve the same model, and one without a model
        # adds no series. "live": the values of exited workers are dropped at the scrape.
        self.model_info = Gauge(
            "har_model_info",
            "1 for the served model (name, version, alias; source: registry or local)",
            ["name", "version", "alias", "source"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        # Min over the running workers: one still loading shows 0 for the whole service.
        self.model_loaded = Gauge(
            "har_model_loaded",
            "1 once a model is loaded (in every worker), 0 before",
            multiprocess_mode="livemin",
            registry=self.registry,
        )

    def set_model(self, source: dict[str, Any]) -> None:
        """Marks the model of ``source`` as served."""
        self.model_info.labels(**model_info_labels(source)).set(1)
        self.model_loaded.set(1)

    def observe_prediction(self, windows: pd.DataFrame) -> None:
        """Counts windows, classes and low-confidence windows of one response."""
        self.windows.inc(len(windows))
        for activity, count in windows["activity"].value_counts().items():
            self.predictions.labels(activity=str(activity)).inc(int(count))
        self.low_confidence.inc(int(windows["low_confidence"].sum()))
        for confidence in windows["confidence"].to_numpy(dtype=float).tolist():
            self.confidence.observe(confidence)

    def scrape_registry(self) -> CollectorRegistry:
        """What ``/metrics`` exposes: this registry, or every worker's values (multiprocess)."""
        if self.multiprocess_dir is None:
            return self.registry
        forget_dead_workers(self.multiprocess_dir)
        # A fresh registry per scrape, as prometheus_client's multiprocess docs prescribe.
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        if self.monitoring is not None:
            # Not per-process state: the report is read once per scrape, not summed over workers.
            registry.register(self.monitoring)
        return registry


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
        status, counted = 500, False

        def count() -> None:
            nonlocal counted
            if not counted:
                counted = True
                self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
                self.metrics.latency.labels(endpoint=endpoint).observe(
                    time.perf_counter() - started
                )

        async def send_with_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Counted before the last bytes leave: a client that has its answer and then
                # scrapes /metrics must find its request counted.
                count()
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            count()
