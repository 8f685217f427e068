"""The small rules of calibration and verdict on hand-made inputs."""

from __future__ import annotations

import copy

import pytest

from har_mlops.pipelines.monitoring.calibration import min_batch_windows
from har_mlops.pipelines.monitoring.verdict import downgrade_unconfirmed, overall_verdict


def _limits(median_wasserstein: dict[str, float | None]) -> dict[str, dict[str, float | None]]:
    return {
        size: {"median_wasserstein_threshold": value} for size, value in median_wasserstein.items()
    }


def test_min_batch_is_the_smallest_size_that_detects_the_shift():
    dataset = _limits({"100": 0.9, "300": 0.6, "1000": 0.4})
    assert min_batch_windows(dataset, 0.75) == 300


def test_a_threshold_equal_to_the_shift_detects_it():
    assert min_batch_windows(_limits({"100": 0.75, "300": 0.5}), 0.75) == 100


def test_batch_sizes_compare_as_numbers_not_strings():
    # "1000" < "300" as strings.
    assert min_batch_windows(_limits({"1000": 0.4, "300": 0.6}), 0.75) == 300


def test_without_a_sensitive_size_the_largest_is_the_minimum():
    assert min_batch_windows(_limits({"100": None, "300": 0.9, "1000": 0.8}), 0.75) == 1000


def _reason(check: str, severity: str, code: str) -> dict[str, str]:
    return {"check": check, "severity": severity, "code": code, "message": code}


def test_no_reason_is_ok():
    assert overall_verdict([]) == ("ok", [])


@pytest.mark.parametrize(
    ("severities", "verdict"),
    [(["warn"], "warn"), (["warn", "retrain", "warn"], "retrain"), (["retrain"], "retrain")],
)
def test_the_verdict_is_the_most_severe_reason(severities, verdict):
    reasons = [_reason("data_drift", s, f"r{i}") for i, s in enumerate(severities)]
    assert overall_verdict(reasons)[0] == verdict


def test_reasons_rank_by_severity_then_the_batch_caveat_last_in_its_severity():
    reasons = [
        _reason("batch_size", "warn", "batch_too_small"),
        _reason("data_quality", "warn", "gaps"),
        _reason("prediction_drift", "retrain", "estimated_accuracy_drop"),
        _reason("prediction_drift", "warn", "class_mix"),
    ]
    _, ranked = overall_verdict(reasons)
    assert [r["code"] for r in ranked] == [
        "estimated_accuracy_drop",
        "gaps",
        "class_mix",
        "batch_too_small",
    ]


def test_unconfirmed_retrain_findings_only_warn_and_say_so():
    findings = [
        _reason("data_drift", "retrain", "feature_drift"),
        _reason("prediction_drift", "warn", "class_mix"),
    ]
    before = copy.deepcopy(findings)
    downgraded = downgrade_unconfirmed(findings)
    assert [r["severity"] for r in downgraded] == ["warn", "warn"]
    assert downgraded[0]["message"] == (
        "feature_drift (retrain once confirmed on a full-size batch)"
    )
    assert downgraded[1] == before[1]
    assert findings == before  # the findings passed in are left as they were
