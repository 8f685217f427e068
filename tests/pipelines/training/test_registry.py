"""The registry gate on hand-made comparison results: win, tie within noise, loss."""

from __future__ import annotations

import numpy as np

from har_mlops.pipelines.training.comparison import compare_predictions, scored_windows
from har_mlops.pipelines.training.registry import decide_promotion

CHAMPION = {"version": "3", "macro_f1": 0.955}
CLASSES = ["A", "B", "C"]


def _result(decision: str, delta: float, low: float, high: float) -> dict:
    return {
        "decision": decision,
        "delta_macro_f1": delta,
        "interval": [low, high],
        "confidence": 0.95,
        "replicates": 2000,
        "subjects": [str(s) for s in range(9)],
    }


WIN = _result("win", 0.02, 0.008, 0.031)
TIE = _result("tie", 0.004, -0.006, 0.013)
LOSS = _result("loss", -0.02, -0.03, -0.009)


def _decide(macro_f1=0.95, baseline=TIE, champion=None, versus=None, on_tie=False):
    return decide_promotion(macro_f1, 0.90, baseline, champion, versus, on_tie)


def test_first_model_above_floor_not_worse_than_baseline_becomes_champion():
    decision = _decide(baseline=WIN)
    assert decision["alias"] == "champion"
    assert "no champion yet" in decision["reasons"]
    assert any(r.startswith("win against the baseline") for r in decision["reasons"])


def test_below_floor_is_challenger_even_without_champion():
    decision = _decide(macro_f1=0.4)
    assert decision["alias"] == "challenger"
    assert decision["reasons"][0] == "macro-F1 0.4000 is below the floor 0.9000"


def test_significantly_worse_than_the_runs_baseline_is_challenger():
    decision = _decide(baseline=LOSS)
    assert decision["alias"] == "challenger"
    assert decision["reasons"][0].startswith("loss against the baseline of this run")
    assert "[-0.0300, -0.0090]" in decision["reasons"][0]


def test_clear_win_over_champion_is_promoted():
    decision = _decide(champion=CHAMPION, versus=WIN)
    assert decision["alias"] == "champion"
    assert any("win against champion v3 (0.9550)" in r for r in decision["reasons"])


def test_tie_within_noise_keeps_the_champion_unless_configured():
    # Higher raw macro-F1 than the champion, but the interval spans 0.
    kept = _decide(macro_f1=0.959, champion=CHAMPION, versus=TIE)
    assert kept["alias"] == "challenger"
    assert kept["reasons"][0].endswith("a tie is not promoted")
    assert _decide(champion=CHAMPION, versus=TIE, on_tie=True)["alias"] == "champion"


def test_loss_to_champion_is_challenger_even_with_higher_point_estimate_elsewhere():
    decision = _decide(macro_f1=0.97, champion=CHAMPION, versus=LOSS)
    assert decision["alias"] == "challenger"
    assert decision["reasons"][0].startswith("loss against champion v3")


def test_champion_without_comparable_predictions_is_not_replaced():
    versus = {"decision": "not comparable", "reason": "scored on other test windows (0 of 9)"}
    decision = _decide(champion=CHAMPION, versus=versus)
    assert decision["alias"] == "challenger"
    assert decision["reasons"][0] == (
        "champion v3 (0.9550) is not comparable: scored on other test windows (0 of 9)"
    )


def _predictions(n: int = 90, shift: int = 0, error_rate: float = 0.0, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % 3
    predicted = np.where(rng.random(n) < error_rate, (truth + 1) % 3, truth)
    windows = {
        "recording_id": np.array([f"r{i % 9}" for i in range(n)]),
        "start_ms": np.arange(n) * 1280 + shift,
        "subject_id": np.array([str(i % 9) for i in range(n)]),
        "label_index": truth,
    }
    return scored_windows(windows, predicted, CLASSES)


def test_predictions_are_matched_by_window_not_by_order():
    candidate = _predictions(error_rate=0.0)
    reference = _predictions(error_rate=0.3, seed=1)
    order = np.random.default_rng(2).permutation(90)
    shuffled = {k: (v if k == "classes" else v[order]) for k, v in reference.items()}
    straight = compare_predictions(candidate, reference, 500, 0.95, 0)
    assert compare_predictions(candidate, shuffled, 500, 0.95, 0) == straight
    assert straight["decision"] == "win"


def test_other_windows_or_classes_are_not_comparable():
    candidate = _predictions()
    moved = compare_predictions(candidate, _predictions(shift=640), 500, 0.95, 0)
    assert moved == {
        "decision": "not comparable",
        "reason": "scored on other test windows (0 of 90 shared)",
    }
    other = {**_predictions(), "classes": np.array(["A", "B", "D"])}
    assert compare_predictions(candidate, other, 500, 0.95, 0)["decision"] == "not comparable"
