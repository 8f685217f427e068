"""Grafana dashboard: well-formed panels on the provisioned datasource, and every panel's
PromQL answered with data by a real Prometheus scraping the real API.

There is no Grafana here: the dashboard JSON is checked for structure, and each expression is
evaluated through Prometheus' HTTP API (``/api/v1/query``), Grafana's variables replaced.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from har_mlops.datasets import WearableExportDataset
from har_mlops.serving.predictor import export_to_table
from har_mlops.serving.process import free_port, running_server, wait_ready
from tests.conftest import PROJECT_ROOT
from tests.deploy.conftest import (
    ALERTS,
    DASHBOARDS,
    alert_rules,
    dashboard_panels,
    provisioned_datasource_uid,
    require_tool,
)
from tests.serving.conftest import CONF_ENV, CONF_SOURCE, PRETRAINED, SAMPLE_RECORDING, request_body

PANELS = dashboard_panels()

# Grafana's variables, as a query over the last minutes would have them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


def _expressions(panel: dict[str, Any]) -> list[str]:
    return [target.get("expr", "") for target in panel.get("targets", [])]


def test_dashboards_exist_and_are_valid_json():
    assert [path.name for path in DASHBOARDS] == ["har.json"]
    dashboard = json.loads(DASHBOARDS[0].read_text())
    assert dashboard["uid"] and dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    ids = [panel["id"] for _, panel in PANELS]
    assert len(ids) == len(set(ids)), "panel ids repeat"


@pytest.mark.parametrize("panel", [p for _, p in PANELS], ids=lambda p: p["title"])
def test_panel_queries_the_provisioned_datasource(panel):
    uid = provisioned_datasource_uid()
    expressions = _expressions(panel)
    assert expressions and all(e.strip() for e in expressions), "a target without PromQL"
    assert panel["datasource"] == {"type": "prometheus", "uid": uid}
    for target in panel["targets"]:
        assert target.get("datasource", panel["datasource"])["uid"] == uid
    assert {"h", "w", "x", "y"} <= set(panel["gridPos"])


def test_the_dashboard_covers_what_the_api_exposes():
    text = " ".join(e for _, panel in PANELS for e in _expressions(panel))
    for metric in (
        "har_http_requests_total",
        "har_http_request_duration_seconds_bucket",
        "har_windows_predicted_total",
        "har_predictions_total",
        "har_low_confidence_windows_total",
        "har_model_info",
        "har_model_loaded",
        "har_prediction_confidence_bucket",
        "har_monitoring_verdict",
        "har_monitoring_report_timestamp_seconds",
    ):
        assert metric in text, metric


def promql(expression: str) -> str:
    """``expression`` with Grafana's variables replaced; fails on one it does not know."""
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    assert "$" not in expression, f"unknown Grafana variable in {expression}"
    return expression


# --------------------------------------------------------------------------- live stack


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _query(base: str, expression: str) -> list[dict[str, Any]]:
    body = _get_json(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expression}))
    assert body["status"] == "success", body
    data = body["data"]
    if data["resultType"] == "scalar":
        return [{"value": data["result"]}]
    return data["result"]


def _post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _samples_scraped(base: str) -> int:
    result = _query(base, 'count_over_time(up{job="har-api"}[10m])')
    return int(float(result[0]["value"][1])) if result else 0


def _wait_for_scrapes(base: str, count: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _samples_scraped(base) < count:
        assert time.monotonic() < deadline, f"Prometheus did not scrape the API {count} times"
        time.sleep(0.5)


def _bodies() -> list[dict[str, Any]]:
    """Three /predict bodies of 20 s of a shipped sample recording."""
    folder = PROJECT_ROOT / "data" / "01_raw" / "inference"
    table = export_to_table(WearableExportDataset(str(folder)).load()[SAMPLE_RECORDING])
    start = table["timestamp_ms"].iloc[0]
    bodies = []
    for i in range(3):
        t0 = start + i * 20_000
        part = table[(table["timestamp_ms"] >= t0) & (table["timestamp_ms"] < t0 + 20_000)]
        bodies.append(request_body(part.reset_index(drop=True), recording_id=f"rec-{i}"))
    return bodies


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[str]:
    """A Prometheus (the repo's alerts) scraping uvicorn serving the shipped model, every 1 s;
    a few /predict requests answered before and between scrapes. Yields its base URL."""
    binary = require_tool("prometheus")
    folder = tmp_path_factory.mktemp("prometheus")
    api_port, prom_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(PROJECT_ROOT / "src"), os.environ.get("PYTHONPATH", "")]
        ),
        "HAR_MODEL_PATH": str(PRETRAINED),
        "HAR_MONITORING_REPORT": str(folder / "monitoring_report.json"),
        "HAR_MODEL_URI": "",
        "HAR_CONF_SOURCE": CONF_SOURCE,
        "HAR_CONF_ENV": CONF_ENV,
        "KEDRO_DISABLE_TELEMETRY": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    api_command = [sys.executable, "-m", "uvicorn", "har_mlops.serving.app:app"]
    api_command += ["--host", "127.0.0.1", "--port", str(api_port), "--log-level", "warning"]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": "har-api", "static_configs": [{"targets": [f"127.0.0.1:{api_port}"]}]}
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom_command = [
        binary,
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]
    # The monitoring run's latest verdict, as the API exposes it to Prometheus.
    (folder / "monitoring_report.json").write_text(json.dumps({"verdict": "retrain"}))
    bodies = _bodies()
    with running_server(
        "uvicorn", api_command, api_port, folder / "api.log", env=env, cwd=PROJECT_ROOT
    ) as api:
        wait_ready(api, "/health", timeout_s=300.0)
        assert [_post(f"{api.url}/predict", body) for body in bodies[:2]] == [200, 200]
        with running_server(
            "prometheus", prom_command, prom_port, folder / "prometheus.log", cwd=folder
        ) as prom:
            wait_ready(prom, "/-/ready", timeout_s=60.0)
            _wait_for_scrapes(prom.url, 2)
            # Traffic between scrapes, so that rates are not all zero; a rejected request too.
            assert _post(f"{api.url}/predict", bodies[2]) == 200
            assert _post(f"{api.url}/predict", {"recording_id": "incomplete"}) == 422
            scraped = _samples_scraped(prom.url)
            _wait_for_scrapes(prom.url, scraped + 2)
            yield prom.url


@pytest.mark.parametrize("panel", [p for _, p in PANELS], ids=lambda p: p["title"])
def test_panel_expression_returns_series_from_the_running_api(prometheus, panel):
    for expression in _expressions(panel):
        assert _query(prometheus, promql(expression)), f"no series for {expression}"


def test_prometheus_loaded_and_evaluates_the_alert_rules(prometheus):
    expected = {rule["alert"] for rule in alert_rules()}
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    deadline = time.monotonic() + 30.0
    while True:
        loaded = _get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
        rules = [rule for group in loaded for rule in group["rules"]]
        evaluated = all(rule.get("health") == "ok" for rule in rules)
        if evaluated or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {group["name"] for group in loaded} == {group["name"] for group in groups}
    assert {rule["name"] for rule in rules} == expected
    assert [(r["name"], r.get("lastError")) for r in rules if r.get("health") != "ok"] == []
    # Healthy traffic: no alert fires, none on the API's health is even pending (the share of
    # low-confidence windows in these few samples may exceed the alert's, pending for 30 min).
    active = _get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
    assert [a["labels"]["alertname"] for a in active if a["state"] == "firing"] == []
    # The report's `retrain` verdict reached the rule through the API's gauge: pending (for 5m).
    assert {
        (a["labels"]["alertname"], a["state"])
        for a in active
        if a["labels"]["alertname"] == "HarMonitoringVerdictRetrain"
    } == {("HarMonitoringVerdictRetrain", "pending")}
    api_alerts = {rule["alert"] for rule in groups[0]["rules"]}
    assert [
        a["labels"]["alertname"] for a in active if a["labels"]["alertname"] in api_alerts
    ] == []
