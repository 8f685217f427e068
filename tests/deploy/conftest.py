"""Paths of the deployment stack and skips for the system tools its checks need.

CI installs the tools (`.ci/run`: the Debian packages ``prometheus`` and ``docker-compose``);
elsewhere the tests that need one are skipped, saying which.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
COMPOSE = DEPLOY / "compose.yaml"
GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DEPLOYMENT_DOC = PROJECT_ROOT / "docs" / "deployment.md"


def require_tool(name: str) -> str:
    """The path of ``name`` on PATH; skips the test when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"`{name}` is not installed (CI installs it in .ci/run: apt-get install)")
    return path


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of deploy/prometheus/alerts.yml."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def provisioned_datasource_uid() -> str:
    """The uid of the one provisioned Prometheus datasource."""
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    return source["uid"]


def dashboard_panels() -> list[tuple[str, dict[str, Any]]]:
    """(dashboard file name, panel) for every panel, rows' nested panels included."""
    found = []
    for path in DASHBOARDS:
        stack = list(json.loads(path.read_text())["panels"])
        while stack:
            panel = stack.pop(0)
            stack.extend(panel.get("panels", []))
            found.append((path.name, panel))
    return found
