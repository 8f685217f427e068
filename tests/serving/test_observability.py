"""Bearer token, model and confidence metrics, and the monitoring verdict, in-process."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from har_mlops.pipelines.monitoring.verdict import VERDICTS as PIPELINE_VERDICTS
from har_mlops.serving import metrics
from har_mlops.serving.app import create_app
from har_mlops.serving.metrics import (
    CONFIDENCE_BUCKETS,
    MonitoringReportCollector,
    forget_dead_workers,
    model_info_labels,
)
from tests.serving.conftest import request_body

TOKEN = "planted-token-0c4e"


@pytest.fixture(scope="module")
def good_body(sample_table):
    return json.dumps(request_body(sample_table)).encode()


@pytest.fixture(scope="module")
def secured(loaded, settings, tmp_path_factory):
    report = tmp_path_factory.mktemp("monitoring") / "report.json"
    update = {"api_token": SecretStr(TOKEN), "monitoring_report": str(report)}
    with TestClient(create_app(loaded, settings.model_copy(update=update))) as client:
        yield client


def _predict(client, body, **headers):
    return client.post(
        "/predict", content=body, headers={"content-type": "application/json", **headers}
    )


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN, "Bearer", f"Bearer {TOKEN}x"],
)
def test_predict_and_model_need_the_token(secured, good_body, authorization):
    headers = {} if authorization is None else {"authorization": authorization}
    for response in (
        _predict(secured, good_body, **headers),
        secured.get("/model", headers=headers),
    ):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"] == "Missing or invalid bearer token"
        assert TOKEN not in response.text


def test_the_token_opens_predict_and_model(secured, good_body, caplog):
    with caplog.at_level(logging.DEBUG):
        predicted = _predict(secured, good_body, authorization=f"Bearer {TOKEN}")
        described = secured.get("/model", headers={"Authorization": f"bearer {TOKEN}"})
    assert predicted.status_code == 200, predicted.text
    assert described.status_code == 200, described.text
    assert TOKEN not in predicted.text + described.text + caplog.text
    assert TOKEN not in repr(secured.app.state.settings)


def test_health_and_metrics_need_no_token(secured):
    assert secured.get("/health").status_code == 200
    metrics = secured.get("/metrics")
    assert metrics.status_code == 200
    # Refusals are counted like any other answer.
    assert 'har_http_requests_total{endpoint="/predict",status="401"}' in metrics.text


def test_model_loaded_and_info(loaded, settings):
    app = create_app(loaded, settings)
    registry = app.state.metrics.registry
    labels = {"name": "pretrained", "version": "", "alias": "", "source": "local"}
    # Before the lifespan ran: no model served yet.
    assert registry.get_sample_value("har_model_loaded") == 0.0
    assert registry.get_sample_value("har_model_info", labels) is None
    with TestClient(app) as client:
        assert registry.get_sample_value("har_model_loaded") == 1.0
        assert registry.get_sample_value("har_model_info", labels) == 1.0
        text = client.get("/metrics").text
    assert 'har_model_info{alias="",name="pretrained",source="local",version=""} 1.0' in text


def test_model_info_labels_of_a_registered_model():
    source = {
        "kind": "registry",
        "uri": "models:/har_cnn_bilstm@champion",
        "name": "har_cnn_bilstm",
        "alias": "champion",
        "version": 7,
        "run_id": "abc",
    }
    assert model_info_labels(source) == {
        "name": "har_cnn_bilstm",
        "version": "7",
        "alias": "champion",
        "source": "registry",
    }
    by_version = {
        "kind": "registry",
        "uri": "models:/m/3",
        "name": "m",
        "alias": None,
        "version": 3,
    }
    assert model_info_labels(by_version) == {
        "name": "m",
        "version": "3",
        "alias": "",
        "source": "registry",
    }
    local = {"kind": "local", "path": "/srv/models/bundle-2026"}
    assert model_info_labels(local)["name"] == "bundle-2026"


def test_confidence_histogram(secured, good_body, loaded, sample_table):
    registry = secured.app.state.metrics.registry

    def value(name, **labels):
        return registry.get_sample_value(name, labels) or 0.0

    windows, _ = loaded.predictor.predict(sample_table)
    confidence = windows["confidence"].to_numpy()
    before = {
        "count": value("har_prediction_confidence_count"),
        "sum": value("har_prediction_confidence_sum"),
        "0.5": value("har_prediction_confidence_bucket", le="0.5"),
        "0.9": value("har_prediction_confidence_bucket", le="0.9"),
    }
    response = _predict(secured, good_body, authorization=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert value("har_prediction_confidence_count") == before["count"] + len(windows)
    assert value("har_prediction_confidence_sum") == pytest.approx(
        before["sum"] + confidence.sum(), abs=1e-6
    )
    assert (
        value("har_prediction_confidence_bucket", le="0.5")
        == before["0.5"] + (confidence <= 0.5).sum()
    )
    assert (
        value("har_prediction_confidence_bucket", le="0.9")
        == before["0.9"] + (confidence <= 0.9).sum()
    )
    bounds = [float(b) for b in CONFIDENCE_BUCKETS]
    assert bounds == pytest.approx([0.1 * i for i in range(1, 11)])


VERDICTS = ("ok", "warn", "retrain")


def _verdicts(registry):
    return {
        v: registry.get_sample_value("har_monitoring_verdict", {"verdict": v}) for v in VERDICTS
    }


def test_monitoring_verdict_follows_the_report_file(secured):
    registry = secured.app.state.metrics.registry
    report = secured.app.state.metrics.monitoring.path
    report.write_text(json.dumps({"verdict": "retrain", "reasons": []}))
    os.utime(report, (1_700_000_000, 1_700_000_000))
    assert _verdicts(registry) == {"ok": 0.0, "warn": 0.0, "retrain": 1.0}
    assert registry.get_sample_value("har_monitoring_report_timestamp_seconds") == 1_700_000_000
    text = secured.get("/metrics").text
    assert 'har_monitoring_verdict{verdict="retrain"} 1.0' in text
    assert 'har_monitoring_verdict{verdict="ok"} 0.0' in text
    # Read at each scrape: a new report changes the verdict without a restart.
    report.write_text(json.dumps({"verdict": "ok"}))
    assert _verdicts(registry) == {"ok": 1.0, "warn": 0.0, "retrain": 0.0}


def test_the_monitoring_pipelines_report_format(tmp_path):
    assert metrics.VERDICTS == PIPELINE_VERDICTS
    # The head of a report the monitoring pipeline wrote (data/08_reporting/).
    shipped = {"verdict": "warn", "reasons": [{"check": "batch_size", "severity": "warn"}]}
    path = tmp_path / "monitoring_report.json"
    path.write_text(json.dumps(shipped))
    families = {m.name: m for m in MonitoringReportCollector(path).collect()}
    samples = {s.labels["verdict"]: s.value for s in families["har_monitoring_verdict"].samples}
    assert samples == {"ok": 0.0, "warn": 1.0, "retrain": 0.0}


@pytest.mark.parametrize(
    "content", [None, "{not json", json.dumps({"verdict": "panic"}), json.dumps(["warn"])]
)
def test_no_monitoring_series_without_a_usable_report(loaded, settings, tmp_path, caplog, content):
    report = tmp_path / "report.json"
    if content is not None:
        report.write_text(content)
    app = create_app(loaded, settings.model_copy(update={"monitoring_report": str(report)}))
    registry = app.state.metrics.registry
    client = TestClient(app)
    with caplog.at_level(logging.WARNING, logger="har_mlops.serving.metrics"):
        for _ in range(3):
            response = client.get("/metrics")
            assert response.status_code == 200
            assert "har_monitoring_verdict" not in response.text
            assert "har_monitoring_report_timestamp_seconds" not in response.text
        assert set(_verdicts(registry).values()) == {None}
    warnings = [r for r in caplog.records if r.name == "har_mlops.serving.metrics"]
    # Logged once, not at every scrape.
    assert len(warnings) == 1
    assert str(report) in warnings[0].getMessage()


def test_exited_workers_values_are_forgotten(tmp_path):
    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid, live_pid = int(exited.stdout), os.getpid()
    for pid in (dead_pid, live_pid):
        (tmp_path / f"gauge_livemin_{pid}.db").write_bytes(b"")
        (tmp_path / f"counter_{pid}.db").write_bytes(b"")
    assert forget_dead_workers(tmp_path) == [dead_pid]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{dead_pid}.db", f"counter_{live_pid}.db", f"gauge_livemin_{live_pid}.db"]
    )


def test_a_request_is_counted_before_its_last_bytes_are_sent(monkeypatch):
    import asyncio

    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    registry = metrics.Metrics()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        await send({"type": "http.response.body", "body": b"}"})

    def counted() -> float:
        return registry.requests.labels(endpoint="/predict", status="200")._value.get()

    seen = []

    async def send(message):
        # What a client scraping /metrics would find when this message reaches it.
        seen.append((message["type"], message.get("more_body", False), counted()))

    middleware = metrics.RequestMetricsMiddleware(app, registry, {"/predict"})
    asyncio.run(middleware({"type": "http", "path": "/predict"}, None, send))
    assert seen == [
        ("http.response.start", False, 0.0),
        ("http.response.body", True, 0.0),
        ("http.response.body", False, 1.0),
    ]
    assert counted() == 1.0  # once, not again when the app returns
