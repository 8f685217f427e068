"""HTTP API: ``uvicorn har_mlops.serving.app:app``; one recording in, activities per window out.

TensorFlow and the model load in the lifespan handler, not at import. Error responses name the
problem (field locations and messages) but never echo the request's values back.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import anyio
import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)

from har_mlops.contract import CHANNELS
from har_mlops.units import UNIT_FACTORS

from .loading import LoadedModel, ServingSettings, load_model
from .predictor import TIMESTAMP_COLUMN, PredictionResult, RecordingRejectedError

logger = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 10
MAX_LOC_CHARS = 64
ENDPOINTS = ("/predict", "/health", "/model", "/metrics")
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

FiniteNumber = Annotated[float, Strict(), AllowInfNan(False)]
Samples = Annotated[list[FiniteNumber], Field(min_length=2)]
# The units units.py converts, so that the OpenAPI schema lists them and a new one flows through.
AccelerometerUnit = Literal[tuple(UNIT_FACTORS["accelerometer"])]
GyroscopeUnit = Literal[tuple(UNIT_FACTORS["gyroscope"])]


class PredictRequest(BaseModel):
    """One recording: timestamps (ms), six sensor channels of equal length, declared units."""

    model_config = ConfigDict(extra="forbid")

    recording_id: str = Field(
        default="recording", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$"
    )
    accelerometer_unit: AccelerometerUnit
    gyroscope_unit: GyroscopeUnit
    timestamp_ms: Samples
    acc_x: Samples
    acc_y: Samples
    acc_z: Samples
    gyro_x: Samples
    gyro_y: Samples
    gyro_z: Samples

    @model_validator(mode="after")
    def _equal_lengths(self) -> PredictRequest:
        """Every channel has one value per timestamp."""
        n = len(self.timestamp_ms)
        unequal = [c for c in CHANNELS if len(getattr(self, c)) != n]
        if unequal:
            raise ValueError(
                f"{', '.join(f'{c} has {len(getattr(self, c))}' for c in unequal)} values but "
                f"timestamp_ms has {n}: every channel needs one value per timestamp"
            )
        return self

    def table(self) -> pd.DataFrame:
        """The unlabelled sample table the predictor takes (one recording, no id column)."""
        return pd.DataFrame(
            {TIMESTAMP_COLUMN: np.asarray(self.timestamp_ms, dtype=np.float64)}
            | {c: np.asarray(getattr(self, c), dtype=np.float64) for c in CHANNELS},
            copy=False,
        )


class BadRequestError(Exception):
    """A request the API refuses; ``status`` and ``detail`` become the response."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors


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
    """Counts requests by endpoint and status and times them (plain ASGI, no extra task)."""

    # Starlette's BaseHTTPMiddleware (``@app.middleware``) runs each request in a task and
    # pipes the response through a stream: ~1 ms a request, a tenth of a prediction.
    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
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


def _safe_loc(loc: tuple[Any, ...]) -> list[Any]:
    # Extra keys are the client's strings: keep locations short.
    return [part if isinstance(part, int) else str(part)[:MAX_LOC_CHARS] for part in loc]


def _validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Locations and messages only: pydantic's ``input`` and ``ctx`` would echo the payload."""
    return [{"loc": _safe_loc(tuple(e["loc"])), "msg": e["msg"]} for e in errors]


def _error_response(status: int, detail: str, errors: list | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors[:MAX_REPORTED_ERRORS]
        body["error_count"] = len(errors)
    return JSONResponse(body, status_code=status)


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


def _parse(body: bytes) -> PredictRequest:
    """The body parsed and validated against :class:`PredictRequest` in one pass."""
    # pydantic's own JSON parser: ~0.2 ms for a 10-s request where json.loads alone takes ~1 ms.
    # It reads NaN and Infinity literals as numbers, which FiniteNumber then refuses by location.
    try:
        return PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        not_json = [e for e in errors if e["type"] == "json_invalid"]
        if not_json:
            problem = str(not_json[0]["msg"]).removeprefix("Invalid JSON: ")
            raise BadRequestError(400, f"Body is not valid JSON: {problem}") from None
        if len(errors) == 1 and errors[0]["type"] == "model_type" and not errors[0]["loc"]:
            raise BadRequestError(422, "Body must be a JSON object") from None
        raise BadRequestError(
            422, "Request validation failed", _validation_errors(errors)
        ) from None


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


def create_app(
    loaded: LoadedModel | None = None, settings: ServingSettings | None = None
) -> FastAPI:
    """The FastAPI app; ``loaded`` injects a model (tests), else the lifespan loads one."""
    settings = settings or ServingSettings.from_env()
    metrics = Metrics()
    state: dict[str, Any] = {"loaded": loaded}
    # One prediction at a time by default: TensorFlow already spreads one over the cores, and
    # parallel ones only fight over the GIL (measured: 24 vs 18 requests/s on 2 cores).
    limiter = anyio.CapacityLimiter(settings.predict_threads)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if state["loaded"] is None:
            state["loaded"] = await anyio.to_thread.run_sync(load_model, settings)
        # TensorFlow, MLflow and pandas leave millions of long-lived objects: out of the
        # collector's sight, the collections that requests trigger stop scanning them (they
        # took ~1 ms of a request's ~10).
        gc.collect()
        gc.freeze()
        yield

    app = FastAPI(
        title="har-mlops activity recognition",
        summary="Wearable IMU samples in, activity per window out",
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.settings = settings

    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def validation_handler(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input, and fails (500) when it holds NaN.
        return _error_response(422, "Request validation failed", _validation_errors(exc.errors()))

    @app.exception_handler(BadRequestError)
    async def bad_request_handler(_: Request, exc: BadRequestError) -> JSONResponse:
        return _error_response(exc.status, exc.detail, exc.errors)

    def model_or_503() -> LoadedModel:
        if state["loaded"] is None:
            raise BadRequestError(503, "No model loaded yet")
        return state["loaded"]

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        """Per-window activity, confidence, probabilities and the recording summary."""
        loaded = model_or_503()
        body = await _read_body(request, settings.max_body_bytes)
        parsed = _parse(body)
        result = await _predict(parsed, loaded, limiter, settings.reject_repaired)
        metrics.observe_prediction(result.windows)
        # Serialised here: FastAPI's jsonable_encoder walks every value again (~0.5 ms).
        payload = _response(parsed, result.windows, result.summary, loaded)
        return Response(json.dumps(payload, allow_nan=False), media_type="application/json")

    @app.get("/health")
    async def health() -> JSONResponse:
        """Whether a model is loaded, and which (``pid``: which worker process answered)."""
        loaded = state["loaded"]
        if loaded is None:
            body = {"status": "loading", "model_loaded": False, "pid": os.getpid()}
            return JSONResponse(body, status_code=503)
        body = {"status": "ok", "model_loaded": True, "model": loaded.source, "pid": os.getpid()}
        return JSONResponse(body)

    @app.get("/model")
    async def model() -> dict[str, Any]:
        """The model's preprocessing contract, parameters and evaluation metrics."""
        loaded = model_or_503()
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

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        """Prometheus exposition of this instance's metrics."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


app = create_app()
