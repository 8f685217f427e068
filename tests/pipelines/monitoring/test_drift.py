"""Drift statistics and sensor gates on tiny hand-made inputs (exact or known values)."""

from __future__ import annotations

import numpy as np
import pytest

from har_mlops.pipelines.monitoring.drift import (
    bin_shares,
    clustered_batches,
    drift_statistics,
    fit_atc_threshold,
    js_distance,
    sketch,
)
from har_mlops.pipelines.monitoring.nodes import sample_per_activity
from har_mlops.pipelines.monitoring.quality import (
    clipped_samples,
    gravity_check,
    has_flat_run,
    recording_gates,
)
from har_mlops.units import likely_unit_mistake


@pytest.fixture
def reference():
    values = np.random.default_rng(0).normal(size=(20_000, 2))
    summary = sketch(values, n_levels=50, n_psi_bins=10)
    return values, summary


def test_same_distribution_has_small_effect_sizes(reference):
    values, summary = reference
    current = np.random.default_rng(1).normal(size=(20_000, 2))
    stats = drift_statistics(current, summary, summary["std"])
    assert (stats["wasserstein"] < 0.03).all()
    assert (stats["ks"] <= 0.03).all()
    assert (stats["psi"] < 0.01).all()


def test_a_shift_of_half_a_sd_reads_as_half_a_sd(reference):
    values, summary = reference
    current = np.random.default_rng(1).normal(size=(20_000, 2)) + np.array([0.5, 0.0])
    stats = drift_statistics(current, summary, summary["std"])
    assert stats["wasserstein"][0] == pytest.approx(0.5, abs=0.03)
    # KS of N(0.5, 1) vs N(0, 1) is 2 * Phi(0.25) - 1 = 0.197.
    assert stats["ks"][0] == pytest.approx(0.197, abs=0.03)
    assert stats["wasserstein"][1] < 0.03


def test_disjoint_distributions_have_ks_one():
    summary = sketch(np.arange(100.0)[:, None], 10, 4)
    stats = drift_statistics(np.arange(1000.0, 1100.0)[:, None], summary, np.ones(1))
    assert stats["ks"][0] == 1.0
    assert stats["psi"][0] > 5


def test_bin_shares_counts_each_column():
    values = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    edges = np.array([[1.5, 4.0]]).reshape(1, 2)
    np.testing.assert_array_equal(bin_shares(values, edges), [[0.5, 0.0], [0.5, 1.0]])


def test_js_distance_bounds():
    assert js_distance(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    assert js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)


def test_atc_threshold_leaves_the_accuracy_share_above_it():
    confidence = np.linspace(0.0, 1.0, 101)
    correct = confidence > 0.3
    threshold = fit_atc_threshold(confidence, correct)
    assert (confidence > threshold).mean() == pytest.approx(correct.mean(), abs=0.01)


def test_clustered_batches_are_runs_of_consecutive_windows():
    codes = np.repeat(["a", "b", "c"], [5, 3, 4])
    batches = clustered_batches(codes, 6, 50, np.random.default_rng(0))
    assert batches.shape == (50, 6)
    assert batches.min() >= 0 and batches.max() < codes.size
    # Within one recording the windows follow each other.
    for batch in batches:
        same = codes[batch[1:]] == codes[batch[:-1]]
        assert (np.diff(batch)[same] == 1).all()
    assert len({tuple(b) for b in batches}) > 10


def test_flat_run_needs_enough_unchanged_samples_in_a_row():
    channels = np.tile(np.arange(10.0), (1, 6, 1))  # [1 window, 6 channels, 10 samples]
    channels[0, 0] = [1, 2, 3, 3, 3, 3, 4, 5, 6, 7]  # four equal samples
    channels[0, 1] = [1, 1, 1, 2, 2, 2, 3, 3, 3, 3]  # never more than four
    tolerance = np.full(6, 1e-9)
    assert has_flat_run(channels, tolerance, 4)[0].tolist() == [True, True] + [False] * 4
    assert has_flat_run(channels, tolerance, 5)[0].tolist() == [False] * 6


def test_clipping_needs_a_plateau_at_a_large_extreme():
    channels = np.zeros((2, 6, 10))
    channels[0, 0, 3:9] = 19.6  # six samples on the +2 g rail
    channels[1, 0, 3:9] = 0.2  # a small plateau: not clipping
    clipped = clipped_samples(channels, np.full(6, 14.7), 0.001)
    assert clipped[:, 0].tolist() == [6, 0]


@pytest.mark.parametrize(
    ("ratio", "hint"),
    [
        (1000 / 9.80665, "data in milli_g declared as m/s^2"),
        (1 / 9.80665, "data in g declared as m/s^2"),
        (9.80665, "data in m/s^2 declared as g"),
        (1.4, "no unit mix-up fits"),
    ],
)
def test_unit_hint(ratio, hint):
    assert likely_unit_mistake(ratio) == hint


def test_gravity_check_uses_still_windows_when_there_are_enough():
    ids = np.array(["r"] * 10)
    still = np.array([True] * 6 + [False] * 4)
    magnitude = np.array([9.8] * 6 + [30.0] * 4)
    rules = {"min_still_windows": 5, "tolerance": 0.15, "tolerance_moving": 0.25}
    result = gravity_check(ids, still, magnitude, rules)["r"]
    assert result["ok"] and result["from"] == "still windows"


def test_recording_gates_read_the_validation_report():
    report = {
        "recordings": [
            {
                "recording_id": "slow",
                "status": "accepted",
                "streams": {
                    "accelerometer": {"file": "slow/a.csv", "rows": 100, "observed_rate_hz": 25.0},
                    "gyroscope": {"file": "slow/g.csv", "rows": 100, "observed_rate_hz": 50.0},
                },
                "problems": [
                    {
                        "file": "slow/g.csv",
                        "problem": "x",
                        "rows_affected": 20,
                        "action": "repaired",
                    }
                ],
            },
            {
                "recording_id": "broken",
                "status": "rejected",
                "streams": {},
                "problems": [
                    {
                        "file": "broken/g.csv",
                        "problem": "empty",
                        "rows_affected": 0,
                        "action": "rejected",
                    }
                ],
            },
        ]
    }
    quality = {
        "declared_rates_hz": {"accelerometer": 50, "gyroscope": 50},
        "rate_tolerance": 0.05,
        "max_repaired_share": 0.05,
        "max_gap_s": 60,
    }
    gates = recording_gates(report, quality)
    assert [i["reason"] for i in gates["slow"]["issues"]] == ["sampling_rate", "repaired_share"]
    assert gates["broken"]["issues"][0]["reason"] == "recording_rejected"


def test_feature_sample_caps_each_activity_and_skips_quarantined_windows():
    predicted = np.array(["a"] * 50 + ["b"] * 3)
    eligible = np.ones(53, dtype=bool)
    eligible[:10] = False
    sample = sample_per_activity(predicted, eligible, cap=20, seed=0)
    assert (np.diff(sample) > 0).all() and sample.min() >= 10
    assert (predicted[sample] == "a").sum() == 20 and (predicted[sample] == "b").sum() == 3
    np.testing.assert_array_equal(sample, sample_per_activity(predicted, eligible, 20, 0))
