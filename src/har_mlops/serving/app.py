"""HTTP API: ``uvicorn har_mlops.serving.app:app``; one recording in, activities per window out.

TensorFlow and the model load in the lifespan handler, not at import. The request schema and
error responses are in :mod:`.schema`, the Prometheus metrics in :mod:`.metrics`.
"""

from __future__ import annotations

import gc
import hmac
import json
import logging
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .loading import LoadedModel, ServingSettings, SettingsError, load_model
from .metrics import Metrics, RequestMetricsMiddleware
from .prediction_log import PredictionLog
from .predictor import PredictionResult, RecordingRejectedError
from .schema import (
    BadRequestError,
    PredictRequest,
    bad_request_handler,
    parse_request,
    request_validation_handler,
)

logger = logging.getLogger(__name__)

# Metric labels of these paths; every other path is counted as "other".
ENDPOINTS = ("/predict", "/health", "/model", "/metrics")


@dataclass
class Service:
    """What the routes of one app share: settings, metrics, the limiter and the model."""

    settings: ServingSettings
    metrics: Metrics
    limiter: anyio.CapacityLimiter
    loaded: LoadedModel | None = None
    # Served windows for `kedro run --pipelines monitoring --env served` (HAR_PREDICTION_LOG).
    prediction_log: PredictionLog = field(default_factory=lambda: PredictionLog(path=None))

    def model_or_503(self) -> LoadedModel:
        """The loaded model; a 503 while the lifespan is still loading it."""
        if self.loaded is None:
            raise BadRequestError(503, "No model loaded yet")
        return self.loaded


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing it (413) beyond ``limit`` bytes, by header and by actual size."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequestError(400, "Content-Length header is not an integer") from None
        if size > limit:
            raise BadRequestError(413, f"Body of {size} bytes exceeds the limit of {limit} bytes")
    chunks, received = [], 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise BadRequestError(413, f"Body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _repairs(report: dict[str, Any]) -> list[str]:
    """Problems validation repaired: the batch pipeline accepts them, the API need not."""
    return [
        f"{p['file']}: {p['problem']} ({p['rows_affected']} rows)"
        for entry in report["recordings"]
        for p in entry["problems"]
        if p["action"] == "repaired"
    ]


def _json_value(value: Any) -> Any:
    """NaN, infinities and pandas' NA (e.g. no duration) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return None if value is pd.NA else value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe records of Python scalars (``to_dict`` costs ~2 ms for a one-row summary)."""
    names = [str(name) for name in frame.columns]
    return [
        {name: _json_value(value) for name, value in zip(names, row)}
        for row in frame.to_numpy(dtype=object).tolist()
    ]


def _response(
    request: PredictRequest, windows: pd.DataFrame, summary: pd.DataFrame, loaded: LoadedModel
) -> dict[str, Any]:
    """The /predict response body: one entry per window, the summary, the model's source."""
    classes = loaded.predictor.contract["class_names"]
    # Column by column: selecting a column list costs ~0.4 ms of pandas bookkeeping.
    probabilities = np.column_stack([windows[f"p_{c}"].to_numpy(np.float64) for c in classes])
    rows = [
        {
            "window_start_ms": float(start),
            "window_end_ms": float(end),
            "activity": str(activity),
            "confidence": float(confidence),
            "low_confidence": bool(low),
            "probabilities": dict(zip(classes, p.tolist())),
        }
        for start, end, activity, confidence, low, p in zip(
            windows["window_start_ms"].to_numpy(),
            windows["window_end_ms"].to_numpy(),
            windows["activity"].to_numpy(dtype=object),
            windows["confidence"].to_numpy(dtype=np.float64),
            windows["low_confidence"].to_numpy(),
            probabilities,
        )
    ]
    summary_rows = _records(summary)
    for row in summary_rows:
        row["recording_id"] = request.recording_id
    return {
        "recording_id": request.recording_id,
        "model": loaded.source,
        "windows": rows,
        "summary": summary_rows[0] if summary_rows else None,
    }


async def _predict(
    parsed: PredictRequest,
    loaded: LoadedModel,
    limiter: anyio.CapacityLimiter,
    reject_repaired: bool,
) -> PredictionResult:
    """Runs the predictor in a worker thread; what validation rejects becomes a 422."""
    window_size = loaded.predictor.window_size
    if len(parsed.timestamp_ms) < window_size:
        raise BadRequestError(
            422,
            f"timestamp_ms has {len(parsed.timestamp_ms)} samples, fewer than one window "
            f"({window_size} samples)",
        )
    units = {
        "accelerometer_unit": parsed.accelerometer_unit,
        "gyroscope_unit": parsed.gyroscope_unit,
    }
    # No recording id in the table: validation reports problems against the predictor's
    # default id, so that error messages never carry the client's.
    table = parsed.table()
    try:
        result = await anyio.to_thread.run_sync(
            loaded.predictor.predict_detailed, table, units, limiter=limiter
        )
    except RecordingRejectedError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise BadRequestError(422, f"Rejected by validation: {'; '.join(lines)}") from None
    repaired = _repairs(result.report)
    if repaired and reject_repaired:
        raise BadRequestError(
            422,
            "Rejected by validation (the batch pipeline would repair, this API does not): "
            + "; ".join(repaired),
        )
    return result


def _service(request: Request) -> Service:
    """The :class:`Service` of the app that received ``request``."""
    return request.app.state.service


async def require_token(request: Request) -> None:
    """401 unless ``Authorization: Bearer <HAR_API_TOKEN>`` (a no-op when no token is set)."""
    token = _service(request).settings.api_token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # Constant-time comparison: the time to refuse does not reveal how much of it matched.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.get_secret_value().encode()
    ):
        raise BadRequestError(
            401, "Missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
        )


async def predict(request: Request) -> Response:
    """Per-window activity, confidence, probabilities and the recording summary."""
    service = _service(request)
    loaded = service.model_or_503()
    settings = service.settings
    body = await _read_body(request, settings.max_body_bytes)
    parsed = parse_request(body)
    result = await _predict(parsed, loaded, service.limiter, settings.reject_repaired)
    service.metrics.observe_prediction(result.windows)
    await service.prediction_log.record(parsed, result, loaded, service.metrics.registry)
    # Serialised here: FastAPI's jsonable_encoder walks every value again (~0.5 ms).
    payload = _response(parsed, result.windows, result.summary, loaded)
    return Response(json.dumps(payload, allow_nan=False), media_type="application/json")


async def health(request: Request) -> JSONResponse:
    """Whether a model is loaded, and which (``pid``: which worker process answered)."""
    loaded = _service(request).loaded
    if loaded is None:
        body = {"status": "loading", "model_loaded": False, "pid": os.getpid()}
        return JSONResponse(body, status_code=503)
    body = {"status": "ok", "model_loaded": True, "model": loaded.source, "pid": os.getpid()}
    return JSONResponse(body)


async def model(request: Request) -> dict[str, Any]:
    """The model's preprocessing contract, parameters and evaluation metrics."""
    loaded = _service(request).model_or_503()
    config = loaded.predictor.config
    return {
        "model": loaded.source,
        "contract": config["contract"],
        "preprocessing": {k: config[k] for k in ("validation", "resampling", "windowing")},
        "labels": config["labels"],
        "prediction": config["prediction"],
        "serving": config["serving"],
        "metrics": loaded.metrics,
    }


async def prometheus_metrics(request: Request) -> Response:
    """Prometheus exposition of this instance's metrics (every worker's in multiprocess mode)."""
    registry = _service(request).metrics.scrape_registry()
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Loads the model (unless one was injected) before the first request."""
    service: Service = app.state.service
    if service.loaded is None:
        service.loaded = await anyio.to_thread.run_sync(load_model, service.settings)
    service.metrics.set_model(service.loaded.source)
    # TensorFlow, MLflow and pandas leave millions of long-lived objects: out of the
    # collector's sight, the collections that requests trigger stop scanning them (they
    # took ~1 ms of a request's ~10).
    gc.collect()
    gc.freeze()
    yield


def _add_routes(app: FastAPI) -> None:
    """The four endpoints of :data:`ENDPOINTS`; /health and /metrics need no token."""
    auth = [Depends(require_token)]
    app.add_api_route("/predict", predict, methods=["POST"], dependencies=auth)
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/model", model, methods=["GET"], dependencies=auth)
    app.add_api_route("/metrics", prometheus_metrics, methods=["GET"])


def create_app(
    loaded: LoadedModel | None = None, settings: ServingSettings | None = None
) -> FastAPI:
    """The FastAPI app; ``loaded`` injects a model (tests), else the lifespan loads one."""
    settings = settings or ServingSettings.from_env()
    # One prediction at a time by default: TensorFlow already spreads one over the cores, and
    # parallel ones only fight over the GIL (measured: 24 vs 18 requests/s on 2 cores).
    limiter = anyio.CapacityLimiter(settings.predict_threads)
    service = Service(
        settings,
        Metrics(settings.monitoring_report),
        limiter,
        loaded,
        PredictionLog.from_settings(settings),
    )
    app = FastAPI(
        title="har-mlops activity recognition",
        summary="Wearable IMU samples in, activity per window out",
        lifespan=_lifespan,
    )
    app.state.service = service
    app.state.metrics = service.metrics
    app.state.settings = settings
    app.add_middleware(RequestMetricsMiddleware, metrics=service.metrics, endpoints=ENDPOINTS)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(BadRequestError, bad_request_handler)
    _add_routes(app)
    return app


try:
    app = create_app()
except SettingsError as exc:
    # uvicorn imports this module: one message on stderr instead of an import traceback.
    raise SystemExit(f"har-mlops serving: {exc}") from None
