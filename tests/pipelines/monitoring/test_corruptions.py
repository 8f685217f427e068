"""Each sensor fault or data change on unseen HAPT test subjects gets the right reason.

The reference comes from other HAPT subjects (see conftest.py); the current data are the UCI
test subjects, clean or corrupted in one way each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from har_mlops.pipelines.monitoring.behaviour import assess_behaviour
from har_mlops.pipelines.monitoring.nodes import (
    check_quality,
    compute_window_features,
    compute_window_gates,
    measure_data_drift,
    measure_prediction_drift,
)
from har_mlops.pipelines.monitoring.verdict import decide_verdict
from har_mlops.units import STANDARD_GRAVITY

from .conftest import CURRENT_SUBJECTS, build_windows, no_days, stand_in_predictions


def monitor(
    windows: dict[str, np.ndarray],
    validation_report: dict[str, Any],
    profile: dict[str, Any],
    params: dict[str, Any],
    classes: list[str],
    daily_activity: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The monitoring run's nodes in order, on in-memory inputs; returns the report."""
    if daily_activity is None:
        daily_activity = no_days(classes)
    quality = check_quality(
        compute_window_gates(windows, validation_report, params), validation_report, params
    )
    predictions = stand_in_predictions(windows, classes)
    features = compute_window_features(windows, predictions, quality, profile, params)
    data_drift = measure_data_drift(features, quality, profile, params)
    prediction_drift = measure_prediction_drift(features, quality, profile)
    behaviour = assess_behaviour(prediction_drift, daily_activity, profile, params)
    report, _ = decide_verdict(quality, data_drift, prediction_drift, behaviour, profile, params)
    return report


def _codes(report: dict[str, Any]) -> list[str]:
    return [r["code"] for r in report["reasons"]]


def _with_signals(windows: dict[str, np.ndarray], signals: np.ndarray) -> dict[str, np.ndarray]:
    return {**windows, "signals": signals.astype(np.float32)}


def _accuracy(probabilities: np.ndarray, labels: np.ndarray, classes: list[str]) -> float:
    return float((np.asarray(classes)[probabilities.argmax(axis=1)] == labels).mean())


def test_reference_is_calibrated_at_monitored_batch_sizes(
    reference_inputs, reference_profile, classes
):
    calibration = reference_profile["calibration"]
    assert calibration["batch_sizes"] == [100, 300, 1000]
    assert calibration["min_batch_windows"] in calibration["batch_sizes"]
    thresholds = [calibration["dataset"][str(s)]["js_distance"] for s in calibration["batch_sizes"]]
    # The noise floor falls with the batch size.
    assert thresholds == sorted(thresholds, reverse=True)
    # The label-free accuracy estimate, fitted on the validation subjects, finds the stand-in
    # model's errors (STAND_IN_ERROR_SHARE) on the test subjects; a threshold of 0, 0.5 or at
    # the wrong tail misses by 0.05 or more.
    splits, predictions = reference_inputs
    test_accuracy = _accuracy(
        predictions["probabilities"]["test"], splits["test"]["label"], classes
    )
    assert test_accuracy < 0.95, "the stand-in model must make errors for ATC to estimate"
    atc = reference_profile["predictions"]["atc"]
    assert atc["test_accuracy"] == pytest.approx(test_accuracy, abs=0.005)
    assert atc["test_estimated_accuracy"] == pytest.approx(test_accuracy, abs=0.02)
    assert reference_profile["predictions"]["estimated_accuracy"] == pytest.approx(
        test_accuracy, abs=0.02
    )


def test_clean_unseen_subjects_are_ok(current, reference_profile, monitoring_params, classes):
    windows, report = current
    result = monitor(windows, report, reference_profile, monitoring_params, classes)
    assert result["batch"]["valid"], result["batch"]
    assert result["quality"]["quarantined"] == 0
    assert result["verdict"] == "ok", result["reasons"]
    # The label-free accuracy estimate holds on subjects the calibration never saw either.
    check = result["prediction_drift"]["accuracy_check"]
    assert check["true_accuracy"] < 0.95
    assert check["abs_error"] < 0.02


def test_milli_g_declared_as_si_fails_the_gravity_check(
    current, reference_profile, monitoring_params, classes
):
    windows, report = current
    signals = windows["signals"].copy()
    # Raw milli-g numbers read as m/s^2: every acceleration 1000 / 9.80665 times too large.
    signals[:, :, :3] *= 1000.0 / STANDARD_GRAVITY
    result = monitor(
        _with_signals(windows, signals), report, reference_profile, monitoring_params, classes
    )
    assert result["verdict"] == "warn"
    assert result["reasons"][0]["code"] == "gravity"
    assert result["quality"]["by_reason"] == {"gravity": len(signals)}
    gravity = next(iter(result["quality"]["recordings"].values()))["gravity"]
    assert gravity["hint"] == "data in milli_g declared as m/s^2"
    # Quarantined windows stay out of the drift statistics.
    assert result["data_drift"]["windows"] == 0


def test_swapped_axes_drift_within_activities(
    current, reference_profile, monitoring_params, classes
):
    windows, report = current
    signals = windows["signals"][:, :, [1, 0, 2, 3, 4, 5]]
    result = monitor(
        _with_signals(windows, signals), report, reference_profile, monitoring_params, classes
    )
    assert result["verdict"] == "retrain"
    reason = result["reasons"][0]
    assert reason["code"] == "feature_drift"
    top = list(result["data_drift"]["features"])[:5]
    assert all(name.startswith(("acc_x", "acc_y", "acc_xz", "acc_yz")) for name in top), top


def test_flat_lined_channel_is_quarantined(current, reference_profile, monitoring_params, classes):
    windows, report = current
    signals = windows["signals"].copy()
    stuck = windows["recording_id"] == windows["recording_id"][0]
    signals[stuck, :, 4] = signals[stuck][0, 0, 4]
    result = monitor(
        _with_signals(windows, signals), report, reference_profile, monitoring_params, classes
    )
    assert result["quality"]["by_reason"] == {"flat_line": int(stuck.sum())}
    assert result["verdict"] == "warn"
    assert result["reasons"][0]["code"] == "flat_line"
    assert "gyro_y" in result["reasons"][0]["message"]
    # The stuck recording is left out; the rest is judged as usual and is clean.
    assert "feature_drift" not in _codes(result)


def test_added_noise_drifts(current, reference_profile, monitoring_params, classes):
    windows, report = current
    rng = np.random.default_rng(0)
    noise = rng.normal(size=windows["signals"].shape) * np.array([0.3] * 3 + [0.05] * 3)
    result = monitor(
        _with_signals(windows, windows["signals"] + noise),
        report,
        reference_profile,
        monitoring_params,
        classes,
    )
    assert result["verdict"] in {"warn", "retrain"}
    assert result["reasons"][0]["code"] == "feature_drift"
    # Noise shows most in the still activities' spread.
    top = next(iter(result["data_drift"]["features"].values()))
    assert top["activity"] in {"SITTING", "STANDING", "LAYING"}


def test_changed_sampling_rate_is_quarantined(
    processing_params, reference_profile, monitoring_params, classes
):
    # 50 Hz data with timestamps of a 25 Hz device: every movement looks twice as slow.
    windows, report = build_windows(CURRENT_SUBJECTS[:3], processing_params, rate_hz=25.0)
    result = monitor(windows, report, reference_profile, monitoring_params, classes)
    assert result["verdict"] == "warn"
    assert set(result["quality"]["by_reason"]) == {"sampling_rate"}
    assert result["reasons"][0]["code"] == "sampling_rate"
    assert "observed 25 Hz, declared 50 Hz" in result["reasons"][0]["message"]


def _mostly_still(windows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Clean windows whose only change is the activity mix: sitting, standing, lying."""
    rng = np.random.default_rng(1)
    keep = np.isin(windows["label"], ["SITTING", "STANDING", "LAYING"]) | (
        rng.random(windows["label"].size) < 0.05
    )
    return {name: values[keep] for name, values in windows.items()}


def test_a_change_of_activity_mix_is_a_behaviour_finding_not_drift(
    current, reference_profile, monitoring_params, classes
):
    windows, report = current
    result = monitor(_mostly_still(windows), report, reference_profile, monitoring_params, classes)
    assert result["verdict"] != "retrain"
    # The batch is a little smaller than the verdict's minimum, and nothing else is said.
    assert _codes(result) == ["batch_too_small"]
    behaviour = result["behaviour_change"]
    assert behaviour["class_mix"]["changed"], behaviour["class_mix"]
    assert behaviour["class_mix"]["current"]["WALKING"] < 0.05
    assert any("Activity mix differs from the reference" in f for f in behaviour["findings"])
    # Each still activity's windows are judged against the reference strata they resemble.
    still = result["data_drift"]["activities"]["SITTING"]
    assert still["judged"] and max(still["composition"].values()) > 0.5


def test_a_rotated_sensor_in_the_same_mix_is_still_drift(
    current, reference_profile, monitoring_params, classes
):
    windows, report = current
    mostly_still = _mostly_still(windows)
    # The watch worn turned by 90 degrees about its z axis: x -> y, y -> -x.
    rotated = mostly_still["signals"].copy()
    rotated[:, :, [0, 1, 3, 4]] = mostly_still["signals"][:, :, [1, 0, 4, 3]] * [1, -1, 1, -1]
    result = monitor(
        _with_signals(mostly_still, rotated), report, reference_profile, monitoring_params, classes
    )
    (drift,) = [r for r in result["reasons"] if r["code"] == "feature_drift"]
    # Retrain-strength, capped to warn only because the batch is below the verdict's minimum.
    assert drift["value"] >= monitoring_params["verdict"]["retrain_drift_share"]
    assert "retrain once confirmed" in drift["message"]
    profile = {
        **reference_profile,
        "calibration": {**reference_profile["calibration"], "min_batch_windows": 300},
    }
    result = monitor(
        _with_signals(mostly_still, rotated), report, profile, monitoring_params, classes
    )
    assert result["verdict"] == "retrain"


def test_small_batches_warn_that_the_verdict_is_not_valid(
    current, reference_profile, monitoring_params, classes
):
    windows, report = current
    first = windows["recording_id"] == windows["recording_id"][0]
    result = monitor(
        {name: values[first] for name, values in windows.items()},
        report,
        reference_profile,
        monitoring_params,
        classes,
    )
    assert not result["batch"]["valid"]
    assert _codes(result) == ["batch_too_small"]


def test_drift_in_a_too_small_batch_warns_but_never_says_retrain(
    current, reference_profile, monitoring_params, classes
):
    windows, report = current
    first = windows["recording_id"] == windows["recording_id"][0]
    small = {name: values[first] for name, values in windows.items()}
    swapped = _with_signals(small, small["signals"][:, :, [1, 0, 2, 3, 4, 5]])
    result = monitor(swapped, report, reference_profile, monitoring_params, classes)
    assert not result["batch"]["valid"]
    assert result["verdict"] == "warn"
    assert "feature_drift" in _codes(result)
    assert "batch_too_small" in _codes(result)


def test_predictions_of_another_model_are_refused(
    current, reference_profile, monitoring_params, classes
):
    windows, report = current
    gates = compute_window_gates(windows, {}, monitoring_params)
    quality = check_quality(gates, report, monitoring_params)
    predictions = stand_in_predictions(windows, classes)
    predictions.loc[0, "activity"] = "STAND_TO_SIT"
    with pytest.raises(ValueError, match=r"STAND_TO_SIT.*monitoring_reference"):
        compute_window_features(windows, predictions, quality, reference_profile, monitoring_params)
