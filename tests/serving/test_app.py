"""The HTTP API on the shipped model: happy path, every kind of bad body, metrics."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from har_mlops.serving.app import create_app
from tests.serving.conftest import request_body

# Distinctive values planted in bad bodies: no response may contain them.
MARKER = 1234567.891
MARKER_TEXT = "planted-text-9f3a"


@pytest.fixture(scope="module")
def client(loaded, settings):
    with TestClient(
        create_app(loaded, settings.model_copy(update={"max_body_bytes": 2_000_000}))
    ) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def good_body(sample_table):
    return request_body(sample_table)


def _post(client, body) -> object:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/predict", content=content, headers={"content-type": "application/json"})


def test_predict_returns_windows_and_summary(client, good_body, loaded, sample_table):
    response = _post(client, good_body)
    assert response.status_code == 200, response.text
    payload = response.json()
    windows, summary = loaded.predictor.predict(sample_table)
    assert len(payload["windows"]) == len(windows) > 0
    first = payload["windows"][0]
    assert set(first) == {
        "window_start_ms",
        "window_end_ms",
        "activity",
        "confidence",
        "low_confidence",
        "probabilities",
    }
    assert [w["activity"] for w in payload["windows"]] == windows["activity"].tolist()
    np.testing.assert_allclose(
        [w["confidence"] for w in payload["windows"]], windows["confidence"], atol=1e-6
    )
    classes = loaded.predictor.contract["class_names"]
    assert list(first["probabilities"]) == classes
    assert payload["recording_id"] == "rec-1"
    assert set(payload["summary"]) == set(summary.columns)
    assert payload["summary"]["recording_id"] == "rec-1"
    assert payload["summary"]["windows"] == len(windows)


def test_health_and_model(client, loaded):
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["model_loaded"] is True
    assert health.json()["model"]["kind"] == "local"
    assert health.json()["pid"] == os.getpid()
    model = client.get("/model").json()
    assert model["contract"] == loaded.predictor.contract
    assert model["preprocessing"]["windowing"]["window_size"] == 128
    assert model["metrics"]["network"]["macro_f1"] > 0.9


def _body_with(good, **changes):
    return {**good, **changes}


def _bad_bodies(good: dict) -> dict[str, tuple[bytes | dict, int, str]]:
    """name -> (body, expected status, text the message must contain)."""
    n = len(good["timestamp_ms"])
    missing = {k: v for k, v in good.items() if k != "gyro_z"}
    nan_text = json.dumps(good).replace(str(good["acc_x"][5]), "NaN", 1).encode()
    inf_text = json.dumps(good).replace(str(good["acc_x"][5]), "-Infinity", 1).encode()
    overflow = json.dumps(good).replace(str(good["acc_x"][5]), "1e999", 1).encode()
    unsorted = list(good["timestamp_ms"])
    unsorted[10], unsorted[11] = unsorted[11], unsorted[10]
    sparse = [good["timestamp_ms"][0] + 500.0 * i for i in range(n)]
    return {
        "missing field": (missing, 422, "gyro_z"),
        "unequal lengths": (
            _body_with(good, acc_y=good["acc_y"][:-1]),
            422,
            "acc_y has",
        ),
        "string value": (
            _body_with(good, acc_x=[MARKER_TEXT, *good["acc_x"][1:]]),
            422,
            "valid number",
        ),
        "boolean value": (
            _body_with(good, gyro_x=[True, *good["gyro_x"][1:]]),
            422,
            "valid number",
        ),
        "null value": (_body_with(good, gyro_y=[None, *good["gyro_y"][1:]]), 422, "valid number"),
        "list is a string": (_body_with(good, timestamp_ms=MARKER_TEXT), 422, "timestamp_ms"),
        "NaN literal": (nan_text, 422, "finite number"),
        "Infinity literal": (inf_text, 422, "finite number"),
        "overflowing number": (overflow, 422, "finite"),
        "too few samples": (
            {k: (v[:100] if isinstance(v, list) else v) for k, v in good.items()},
            422,
            "fewer than one window",
        ),
        "unknown accelerometer unit": (
            _body_with(good, accelerometer_unit=MARKER_TEXT),
            422,
            "accelerometer_unit",
        ),
        "unknown gyroscope unit": (_body_with(good, gyroscope_unit="rpm"), 422, "gyroscope_unit"),
        "extra field": (_body_with(good, temperature=[MARKER]), 422, "temperature"),
        "bad recording id": (
            _body_with(good, recording_id=f"../{MARKER_TEXT}"),
            422,
            "recording_id",
        ),
        "not JSON": (b"timestamp_ms=" + MARKER_TEXT.encode(), 400, "not valid JSON"),
        "empty body": (b"", 400, "not valid JSON"),
        "JSON array": ([MARKER], 422, "JSON object"),
        "non-monotonic timestamps": (
            _body_with(good, timestamp_ms=unsorted),
            422,
            "timestamps out of order",
        ),
        "duplicated timestamps": (
            _body_with(good, timestamp_ms=[good["timestamp_ms"][0], *good["timestamp_ms"][:-1]]),
            422,
            "duplicated timestamps",
        ),
        "too sparse": (_body_with(good, timestamp_ms=sparse), 422, "too sparse"),
        "beyond sensor range": (
            _body_with(good, acc_z=[1e6] * n, accelerometer_unit="m/s^2"),
            422,
            "plausible sensor range",
        ),
    }


BAD_BODY_NAMES = [
    "missing field",
    "unequal lengths",
    "string value",
    "boolean value",
    "null value",
    "list is a string",
    "NaN literal",
    "Infinity literal",
    "overflowing number",
    "too few samples",
    "unknown accelerometer unit",
    "unknown gyroscope unit",
    "extra field",
    "bad recording id",
    "not JSON",
    "empty body",
    "JSON array",
    "non-monotonic timestamps",
    "duplicated timestamps",
    "too sparse",
    "beyond sensor range",
]


@pytest.mark.parametrize("name", BAD_BODY_NAMES)
def test_bad_bodies_get_4xx_naming_the_problem_without_echo(client, good_body, name):
    bodies = _bad_bodies(good_body)
    assert set(bodies) == set(BAD_BODY_NAMES)
    body, status, text = bodies[name]
    response = _post(client, body)
    assert response.status_code == status, response.text
    assert text in response.text
    assert MARKER_TEXT not in response.text
    assert str(MARKER) not in response.text
    # No sample value comes back either.
    assert str(good_body["acc_x"][5]) not in response.text
    assert response.json()["detail"]


def test_body_over_the_limit_by_header(client):
    response = client.post("/predict", content=b"{}", headers={"content-length": str(50_000_000)})
    assert response.status_code == 413
    assert "exceeds the limit" in response.text


def test_body_over_the_limit_by_actual_size(client, good_body):
    big = json.dumps({**good_body, "acc_x": good_body["acc_x"] * 80}).encode()
    assert len(big) > 2_000_000

    def chunks():
        # A generator body is sent chunked, without Content-Length.
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    response = client.post("/predict", content=chunks())
    assert response.status_code == 413
    assert "exceeds the limit" in response.text


def test_metrics_count_requests_windows_and_classes(client, good_body, loaded, sample_table):
    registry = client.app.state.metrics.registry

    def value(name, **labels):
        return registry.get_sample_value(name, labels) or 0.0

    windows, _ = loaded.predictor.predict(sample_table)
    top = windows["activity"].value_counts().index[0]
    before = {
        "ok": value("har_http_requests_total", endpoint="/predict", status="200"),
        "bad": value("har_http_requests_total", endpoint="/predict", status="422"),
        "windows": value("har_windows_predicted_total"),
        "top": value("har_predictions_total", activity=top),
        "low": value("har_low_confidence_windows_total"),
        "latency": value("har_http_request_duration_seconds_count", endpoint="/predict"),
    }
    assert _post(client, good_body).status_code == 200
    assert _post(client, _body_with(good_body, gyroscope_unit="rpm")).status_code == 422
    assert value("har_http_requests_total", endpoint="/predict", status="200") == before["ok"] + 1
    assert value("har_http_requests_total", endpoint="/predict", status="422") == before["bad"] + 1
    assert value("har_windows_predicted_total") == before["windows"] + len(windows)
    assert (
        value("har_predictions_total", activity=top)
        == before["top"] + (windows["activity"] == top).sum()
    )
    assert (
        value("har_low_confidence_windows_total") == before["low"] + windows["low_confidence"].sum()
    )
    assert value("har_http_request_duration_seconds_count", endpoint="/predict") == (
        before["latency"] + 2
    )
    text = client.get("/metrics").text
    assert "har_windows_predicted_total" in text
    assert 'har_http_requests_total{endpoint="/predict",status="200"}' in text


def test_each_app_has_its_own_registry(loaded, settings):
    first, second = create_app(loaded, settings), create_app(loaded, settings)
    assert first.state.metrics.registry is not second.state.metrics.registry


class Positive(BaseModel):
    """A body model FastAPI validates itself."""

    value: float = Field(gt=0)


def test_fastapi_validation_errors_with_nan_give_422_without_the_input(loaded, settings):
    app = create_app(loaded, settings)

    @app.post("/positive")
    def positive(body: Positive) -> dict:
        return {"value": body.value}

    # FastAPI parses this body itself (NaN accepted by json.loads) and rejects it in pydantic;
    # its default handler would fail to serialise the NaN input (500) or echo the input.
    with TestClient(app) as test_client:
        response = test_client.post(
            "/positive",
            content=b'{"value": NaN, "other": "planted-text-9f3a"}',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"loc": ["body", "value"], "msg": "Input should be greater than 0"}
    ]
    assert MARKER_TEXT not in response.text


def test_nan_literal_is_refused_at_its_location(client, good_body):
    text = json.dumps(good_body).replace(str(good_body["acc_x"][5]), "NaN", 1).encode()
    response = _post(client, text)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"loc": ["acc_x", 5], "msg": "Input should be a finite number"}
    ]
