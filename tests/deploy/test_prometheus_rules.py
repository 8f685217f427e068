"""Prometheus configuration and alerts: promtool's checks and unit tests, runbook links."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.deploy.conftest import (
    ALERTS,
    ALERTS_TEST,
    DEPLOYMENT_DOC,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    alert_rules,
    require_tool,
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool")
    return subprocess.run(
        [promtool, *args],
        check=False,
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_promtool_check_config():
    # The scrape target api:8000 is not resolved by the check.
    result = _promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules():
    result = _promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass():
    result = _promtool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_fires_and_stays_silent_in_the_unit_tests():
    """Each alert has a case where it fires and one where it does not (at some eval time)."""
    tests = yaml.safe_load(ALERTS_TEST.read_text())
    assert tests["rule_files"] == [ALERTS.name]
    firing, silent = set(), set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert len(names) == len(alert_rules()), "alert names repeat"
    assert names - firing == set(), "alerts never expected to fire"
    assert names - silent == set(), "alerts never expected to stay silent"
    assert (firing | silent) - names == set(), "unit tests of alerts that do not exist"


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors (as tests/test_docs.py computes them)."""
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+\s+(.+)$", text, flags=re.MULTILINE)
    }


def test_every_alert_is_labelled_annotated_and_has_a_runbook_section():
    anchors = _anchors(DEPLOYMENT_DOC.read_text())
    for rule in alert_rules():
        name = rule["alert"]
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        assert annotations.get("summary") and annotations.get("description"), name
        page, _, anchor = annotations["runbook"].partition("#")
        assert page == "docs/deployment.md", name
        assert anchor in anchors, f"{name}: no heading #{anchor} in docs/deployment.md"
