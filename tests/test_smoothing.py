"""The HMM smoothing of the activity timeline: runs, transition estimate, Viterbi path."""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest

from har_mlops.pipelines.training.nodes import (
    compare_models,
    estimate_activity_transitions,
    smoothing_scores,
)
from har_mlops.smoothing import (
    contiguous_runs,
    estimate_transitions,
    smooth_predictions,
    viterbi,
    window_hop_ms,
)

CLASSES = ["A", "B", "C"]
# Sticky: staying costs ~0.02 nats, switching ~4.6.
STICKY = {
    "classes": CLASSES,
    "transition": [[0.98, 0.01, 0.01], [0.01, 0.98, 0.01], [0.01, 0.01, 0.98]],
    "prior": [1 / 3, 1 / 3, 1 / 3],
}
LIKELY_A = [0.8, 0.1, 0.1]
LIKELY_B = [0.1, 0.8, 0.1]
FLIP_TO_B = [0.3, 0.6, 0.1]  # the window alone says B


def _probabilities(rows: list[list[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64)


def _brute_force(probabilities, runs, transitions, floor=1e-6):
    """The best path by scoring every path: the definition the Viterbi pass must meet."""
    log_t = np.log(np.asarray(transitions["transition"]))
    log_prior = np.log(np.asarray(transitions["prior"]))
    emission = np.log(np.maximum(probabilities, floor)) - log_prior
    n, k = probabilities.shape
    best, best_path = -np.inf, None
    for path in itertools.product(range(k), repeat=n):
        score = sum(
            (log_prior[j] if t == 0 or runs[t] != runs[t - 1] else log_t[path[t - 1], j])
            + emission[t, j]
            for t, j in enumerate(path)
        )
        if score > best:
            best, best_path = score, path
    return list(best_path)


def test_window_hop_is_the_windowing_step():
    assert window_hop_ms(128, 0.5, 50) == 1280.0
    assert window_hop_ms(100, 0.0, 100) == 1000.0


def test_runs_break_at_gaps_and_recordings():
    start = np.array([0, 1280, 2560, 5000, 6280, 0, 1280, 2565, 3860], dtype=float)
    recording = np.array(["r1"] * 5 + ["r2"] * 4)
    runs = contiguous_runs(start, recording, hop_ms=1280, tolerance_ms=10)
    assert runs.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3]
    # Without recording ids only the times decide (0 after 6280 is a gap too).
    assert contiguous_runs(start[:5], None, 1280, 10).tolist() == [0, 0, 0, 1, 1]
    assert contiguous_runs(np.array([]), None, 1280, 10).tolist() == []


def test_transition_estimate_equals_hand_counts():
    labels = np.array(["A", "A", "B", "B", "STAND_TO_SIT", "A", "A", ""])
    runs = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    estimate = estimate_transitions(labels, runs, CLASSES, pseudocount=0.5)
    # Counted: A->A (0-1), A->B (1-2), B->B (2-3); the transition label breaks the chain
    # (3-4, 4-5), 5-6 crosses runs, 6-7 has no class label.
    assert estimate["classes"] == CLASSES
    np.testing.assert_allclose(
        estimate["transition"],
        [[1.5 / 3.5, 1.5 / 3.5, 0.5 / 3.5], [0.5 / 2.5, 1.5 / 2.5, 0.5 / 2.5], [1 / 3] * 3],
    )
    np.testing.assert_allclose(estimate["prior"], [4.5 / 7.5, 2.5 / 7.5, 0.5 / 7.5])
    assert (estimate["windows"], estimate["transitions_counted"]) == (6, 3)
    with pytest.raises(ValueError, match="pseudocount"):
        estimate_transitions(labels, runs, CLASSES, pseudocount=0.0)


def test_an_isolated_flip_is_removed_and_a_sustained_change_kept():
    rows = [LIKELY_A] * 5 + [FLIP_TO_B] + [LIKELY_A] * 5 + [LIKELY_B] * 6
    probabilities = _probabilities(rows)
    assert probabilities.argmax(axis=1)[5] == 1
    path = viterbi(probabilities, np.zeros(len(rows), dtype=int), STICKY)
    assert path.tolist() == [0] * 11 + [1] * 6


def test_a_run_boundary_stops_smoothing_across_it():
    rows = [LIKELY_A] * 4 + [FLIP_TO_B] + [LIKELY_A] * 4
    probabilities = _probabilities(rows)
    one_run = viterbi(probabilities, np.zeros(9, dtype=int), STICKY)
    assert one_run.tolist() == [0] * 9
    # The flipped window is a run of its own (gaps on both sides): nothing to smooth it with.
    runs = np.array([0] * 4 + [1] + [2] * 4)
    assert viterbi(probabilities, runs, STICKY).tolist() == [0] * 4 + [1] + [0] * 4


def test_smooth_predictions_finds_the_runs_from_the_times():
    rows = [LIKELY_A] * 4 + [FLIP_TO_B] + [LIKELY_A] * 4
    start = np.arange(9) * 1280.0
    start[4:] += 60_000  # a minute's gap before the flipped window...
    start[5:] += 60_000  # ...and after it
    path, runs = smooth_predictions(_probabilities(rows), start, None, STICKY, 1280.0, 10.0, 1e-6)
    assert runs.tolist() == [0] * 4 + [1] + [2] * 4
    assert path.tolist() == [0] * 4 + [1] + [0] * 4


def test_viterbi_meets_the_brute_force_best_path():
    rng = np.random.default_rng(0)
    for _ in range(40):
        k, n = int(rng.integers(2, 4)), int(rng.integers(1, 8))
        probabilities = rng.dirichlet(np.full(k, 0.5), size=n)
        runs = np.cumsum(rng.random(n) < 0.25)
        transitions = {
            "classes": CLASSES[:k],
            "transition": rng.dirichlet(np.ones(k), size=k).tolist(),
            "prior": rng.dirichlet(np.ones(k)).tolist(),
        }
        expected = _brute_force(probabilities, runs, transitions)
        assert viterbi(probabilities, runs, transitions).tolist() == expected


def test_class_mismatch_and_shape_errors_are_named():
    probabilities = _probabilities([[0.5, 0.5]] * 3)
    with pytest.raises(ValueError, match="3 classes .* 2 columns"):
        viterbi(probabilities, np.zeros(3, dtype=int), STICKY)
    with pytest.raises(ValueError, match="run_ids"):
        viterbi(_probabilities([LIKELY_A] * 3), np.zeros(2, dtype=int), STICKY)
    assert viterbi(np.empty((0, 3)), np.empty(0, dtype=int), STICKY).tolist() == []


def test_smoothing_never_reads_labels():
    for function in (viterbi, smooth_predictions):
        assert not [p for p in inspect.signature(function).parameters if "label" in p]


def test_transition_node_sorts_windows_and_breaks_runs_at_removed_windows():
    # Two recordings, out of order; window 2560 of r1 was filtered out (a transition).
    windows = {
        "label": np.array(["B", "A", "A", "A", "B", "B"]),
        "recording_id": np.array(["r2", "r1", "r1", "r1", "r2", "r1"]),
        "start_ms": np.array([0.0, 0.0, 1280.0, 3840.0, 1280.0, 5120.0]),
    }
    estimate = estimate_activity_transitions(
        windows,
        {"class_set": "x", "class_sets": {"x": CLASSES}},
        {"window_size": 128, "overlap": 0.5},
        {"target_rate_hz": 50},
        {"pseudocount": 1.0, "gap_tolerance_ms": 10},
    )
    # r1: A A | A B -> A->A, A->B; r2: B B -> B->B.
    assert estimate["transitions_counted"] == 3
    np.testing.assert_allclose(estimate["transition"][0], [2 / 5, 2 / 5, 1 / 5])
    np.testing.assert_allclose(estimate["transition"][1], [1 / 4, 2 / 4, 1 / 4])


def test_smoothing_scores_count_class_windows_only():
    labels = np.array(["A", "A", "", "B", "STAND_TO_SIT", "B"])
    window = np.array([0, 1, 2, 1, 0, 1])
    smoothed = np.array([0, 0, 0, 1, 1, 1])
    report = smoothing_scores(labels, window, smoothed, np.array([0, 0, 0, 0, 1, 1]), CLASSES)
    assert report["window_accuracy"] == pytest.approx(3 / 4)
    assert report["smoothed_accuracy"] == 1.0
    assert report["smoothed_macro_f1"] == pytest.approx(2 / 3)  # C is never true nor predicted
    assert (report["windows_scored"], report["windows"], report["runs"]) == (4, 6, 2)
    assert report["changed_windows"] == 3
    network = {
        "accuracy": 0.5,
        "macro_f1": 0.5,
        "weighted_f1": 0.5,
        "throughput_windows_per_s": 1.0,
        "per_class": {},
        "smoothing": report,
    }
    metrics = compare_models(network, {**network, "smoothing": {}})
    assert metrics["network_smoothed_macro_f1"]["value"] == pytest.approx(2 / 3)
    assert "baseline_smoothed_macro_f1" not in metrics
