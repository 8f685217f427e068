"""Behaviour change is reported for the researcher and never sets the verdict.

Also the two mechanisms that keep a change of activity mix out of the model's health: the
reference re-mixed from its strata, and confidence compared at the batch's own class mix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from har_mlops.pipelines.monitoring.behaviour import assess_behaviour, participant_day_changes
from har_mlops.pipelines.monitoring.drift import (
    batch_statistics,
    drift_statistics,
    expected_at_mix,
    prediction_deltas,
    sketch,
    strata_sketch,
)
from har_mlops.pipelines.monitoring.verdict import decide_verdict

CLASSES = ["WALKING", "SITTING", "LAYING"]
RULE = {
    "min_js_distance": 0.1,
    "min_wear_minutes": 600,
    "baseline_days": 14,
    "min_baseline_days": 3,
    "min_share_change": 0.05,
    "robust_z": 3.0,
}


def _days(lying: list[float], wear: list[float] | None = None) -> pd.DataFrame:
    """One participant's days: ``lying`` minutes, 120 walking, the rest of the wear sitting."""
    wear = wear or [900.0] * len(lying)
    dates = pd.date_range("2026-11-01", periods=len(lying), freq="D").strftime("%Y-%m-%d")
    return pd.DataFrame(
        {
            "subject_id": "p1",
            "date": dates,
            "wear_minutes": wear,
            "minutes_WALKING": 120.0,
            "minutes_SITTING": np.asarray(wear) - 120.0 - np.asarray(lying),
            "minutes_LAYING": lying,
        }
    )


def test_a_day_with_twice_the_lying_is_a_change_for_that_participant():
    rng = np.random.default_rng(0)
    lying = list(200 + rng.normal(0, 10, size=10)) + [400.0]
    result = participant_day_changes(_days(lying), CLASSES, RULE)["p1"]
    assert result["valid_days"] == 11
    assert result["assessed_days"] == 11 - RULE["min_baseline_days"]
    changes = {(c["date"], c["activity"]): c for c in result["changes"]}
    # The extra lying came out of sitting: both are changes on the last day, nothing before.
    assert set(changes) == {("2026-11-11", "LAYING"), ("2026-11-11", "SITTING")}
    lying_change = changes[("2026-11-11", "LAYING")]
    assert lying_change["direction"] == "more"
    assert lying_change["minutes"] == 400.0
    assert lying_change["expected_minutes"] == pytest.approx(200, abs=15)


def test_small_or_unassessable_changes_are_not_reported():
    # 30 min more lying on a 900-min day is 3.3 points of worn time: below min_share_change.
    lying = [200.0, 205.0, 195.0, 200.0, 230.0]
    assert participant_day_changes(_days(lying), CLASSES, RULE)["p1"]["changes"] == []
    # The change on day 3 has only two earlier valid days: not assessed.
    assert (
        participant_day_changes(_days([200.0, 200.0, 500.0]), CLASSES, RULE)["p1"]["changes"] == []
    )


def test_days_worn_too_little_are_left_out_of_the_baseline_and_the_assessment():
    lying = [200.0, 200.0, 200.0, 210.0, 200.0, 290.0]
    wear = [900.0, 900.0, 900.0, 900.0, 900.0, 300.0]  # day 6 is not a valid day
    result = participant_day_changes(_days(lying, wear), CLASSES, RULE)["p1"]
    assert result["valid_days"] == 5
    assert "2026-11-06" not in result["dates"]
    assert result["changes"] == []


def test_missing_class_columns_name_the_fix():
    with pytest.raises(ValueError, match=r"minutes_LAYING.*kedro run --pipelines inference"):
        participant_day_changes(_days([1.0]).drop(columns="minutes_LAYING"), CLASSES, RULE)


def _prediction_drift(current_mix: dict[str, float], windows: int = 1000) -> dict[str, Any]:
    reference = {c: 1 / 3 for c in CLASSES}
    js = float(jensenshannon(list(current_mix.values()), list(reference.values()), base=2))
    return {
        "windows": windows,
        "current": {"class_mix": current_mix},
        "reference": {"class_mix": reference},
        "deltas": {"js_distance": js},
        "thresholds": {"js_distance": 0.05},
    }


def test_behaviour_findings_never_change_the_verdict(monitoring_params):
    drift = _prediction_drift({"WALKING": 0.1, "SITTING": 0.3, "LAYING": 0.6})
    rng = np.random.default_rng(0)
    days = _days(list(200 + rng.normal(0, 10, size=10)) + [450.0])
    profile = {"class_names": CLASSES}
    behaviour = assess_behaviour(drift, days, profile, monitoring_params)
    assert behaviour["class_mix"]["changed"]
    assert len(behaviour["findings"]) == 3  # the mix, and lying and sitting on the last day
    assert any(
        f.startswith("Participant p1 on 2026-11-11: more LAYING") for f in behaviour["findings"]
    )
    quality = {
        "summary": {
            "windows": 1000,
            "quarantined_share": 0.0,
            "by_reason": {},
            "rejected_recordings": [],
            "recordings": {},
        }
    }
    data_drift = {
        "windows": 1000,
        "activities": {},
        "drift_share": 0.0,
        "max_score": 0.5,
        "drifted_features": [],
        "features": {},
    }
    prediction_drift = {
        **drift,
        "calibrated_batch": 1000,
        "current": {
            "class_mix": drift["current"]["class_mix"],
            "mean_confidence": 0.9,
            "low_confidence_share": 0.05,
            "estimated_accuracy": 0.9,
        },
        "deltas": {
            **drift["deltas"],
            "mean_confidence_drop": 0.0,
            "low_confidence_increase": 0.0,
            "estimated_accuracy_drop": 0.0,
        },
        "thresholds": {
            "js_distance": 0.05,
            "mean_confidence_drop": 0.02,
            "low_confidence_increase": 0.02,
            "estimated_accuracy_drop": 0.02,
        },
    }
    reference_profile = {
        "calibration": {"min_batch_windows": 1000, "per_class": {}},
        "model_source": "stand-in",
        "windows": {},
        "predictions": {"atc": {}},
    }
    report, metrics = decide_verdict(
        quality, data_drift, prediction_drift, behaviour, reference_profile, monitoring_params
    )
    assert report["verdict"] == "ok"
    assert report["reasons"] == []
    assert report["behaviour_change"]["findings"] == behaviour["findings"]
    assert metrics["behaviour_findings"]["value"] == 3.0


# ------------------------------------------------------------- mix-robust drift statistics


def _two_strata(rng: np.random.Generator, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """An activity's reference: 70 % calm windows, 30 % in-between ones, 4 features."""
    labels = np.where(rng.random(n) < 0.7, "SITTING", "")
    values = np.where(
        (labels == "SITTING")[:, None],
        rng.normal(0.0, 1.0, size=(n, 4)),
        rng.normal(3.0, 1.0, size=(n, 4)),
    )
    return values, labels


def _reference(values: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    summary = sketch(values, 50, 10)
    summary["strata"] = strata_sketch(values, labels, summary["psi_edges"], 50, 30)
    return summary


def test_a_batch_of_one_stratum_matches_the_reference_remixed_to_it():
    rng = np.random.default_rng(0)
    reference = _reference(*_two_strata(rng))
    assert reference["strata"]["labels"] == ["unlabelled", "SITTING"]
    calm = rng.normal(0.0, 1.0, size=(400, 4))  # only the calm stratum: a quiet day
    spread = np.asarray(reference["std"])
    remixed = drift_statistics(calm, reference, spread)
    pooled = drift_statistics(calm, {**reference, "strata": None}, spread)
    assert remixed["weights"][1] == pytest.approx(1.0, abs=0.05)
    assert np.all(remixed["ks"] < 0.12)
    assert np.all(pooled["ks"] > 0.25)  # against the pooled reference it looks drifted
    # A shift no mixture of the strata explains stays large.
    shifted = drift_statistics(calm + np.array([0, 0, 0, 1.5]), reference, spread)
    assert shifted["ks"][3] > 0.4
    assert shifted["ks"][3] > 2 * shifted["ks"][:3].max()


def test_batched_statistics_equal_one_batch_at_a_time():
    rng = np.random.default_rng(1)
    reference = _reference(*_two_strata(rng))
    batches = rng.normal(0.5, 1.2, size=(5, 200, 4))
    spread = np.asarray(reference["std"])
    together = batch_statistics(batches, reference, spread)
    for i, batch in enumerate(batches):
        alone = drift_statistics(batch, reference, spread)
        for metric in ("wasserstein", "ks", "psi", "weights"):
            np.testing.assert_allclose(together[metric][i], alone[metric], rtol=1e-9)


def test_confidence_is_compared_at_the_batch_class_mix():
    reference = {
        "class_mix": np.array([0.5, 0.5]),
        "mean_confidence": 0.85,
        "low_confidence_share": 0.1,
        "estimated_accuracy": 0.85,
        "per_class": {
            "mean_confidence": [0.95, 0.75],
            "low_confidence_share": [0.0, 0.2],
            "estimated_accuracy": [0.95, 0.75],
        },
    }
    # All windows in the hard class, each as confident as in the reference: no drop.
    current = {
        "class_mix": np.array([0.0, 1.0]),
        "mean_confidence": 0.75,
        "low_confidence_share": 0.2,
        "estimated_accuracy": 0.75,
    }
    assert expected_at_mix(current["class_mix"], reference)["mean_confidence"] == 0.75
    deltas = prediction_deltas(current, reference)
    assert deltas["mean_confidence_drop"] == pytest.approx(0.0)
    assert deltas["estimated_accuracy_drop"] == pytest.approx(0.0)
    assert deltas["js_distance"] > 0.5
    # The same figures at the reference's mix are a real drop.
    worse = prediction_deltas({**current, "class_mix": np.array([0.5, 0.5])}, reference)
    assert worse["estimated_accuracy_drop"] == pytest.approx(0.10)
