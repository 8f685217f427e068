"""The paired bootstrap over test subjects: hand-made prediction sets with known outcomes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from har_mlops.pipelines.training.comparison import (
    macro_f1_of,
    paired_bootstrap,
    subject_confusions,
)

N_CLASSES = 6
SUBJECTS = 9
PER_SUBJECT = 300


def _truth(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, SUBJECTS * PER_SUBJECT)
    subjects = np.repeat([f"s{k}" for k in range(SUBJECTS)], PER_SUBJECT)
    return y, subjects


def _with_errors(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """``y`` with a share ``rate`` of windows moved to another class."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(y.size) < rate
    shifted = (y + rng.integers(1, N_CLASSES, y.size)) % N_CLASSES
    return np.where(wrong, shifted, y)


def _compare(y, subjects, challenger, champion, seed=0):
    return paired_bootstrap(y, challenger, champion, subjects, N_CLASSES, 2000, 0.95, seed)


def test_macro_f1_matches_scikit_learn():
    y, subjects = _truth()
    pred = _with_errors(y, 0.2, seed=1)
    confusions, ids = subject_confusions(y, pred, subjects, N_CLASSES)
    assert list(ids) == [f"s{k}" for k in range(SUBJECTS)]
    assert confusions.sum() == y.size
    assert macro_f1_of(confusions.sum(axis=0)) == pytest.approx(
        f1_score(y, pred, average="macro"), abs=1e-12
    )
    one = subjects == "s3"
    assert macro_f1_of(confusions[3]) == pytest.approx(
        f1_score(y[one], pred[one], average="macro"), abs=1e-12
    )


def test_a_clear_win_and_its_mirror_a_loss():
    y, subjects = _truth()
    better, worse = _with_errors(y, 0.03, seed=1), _with_errors(y, 0.10, seed=2)

    win = _compare(y, subjects, better, worse)
    loss = _compare(y, subjects, worse, better)

    assert win["decision"] == "win" and win["interval"][0] > 0
    assert loss["decision"] == "loss" and loss["interval"][1] < 0
    assert win["delta_macro_f1"] == pytest.approx(-loss["delta_macro_f1"], abs=1e-4)
    assert win["delta_macro_f1"] == pytest.approx(
        f1_score(y, better, average="macro") - f1_score(y, worse, average="macro"), abs=1e-4
    )


def test_two_models_as_good_tie_even_when_one_scores_higher():
    y, subjects = _truth()
    first, second = _with_errors(y, 0.05, seed=3), _with_errors(y, 0.05, seed=4)

    result = _compare(y, subjects, first, second)

    assert result["delta_macro_f1"] != 0  # one of them is ahead by chance...
    assert result["decision"] == "tie"  # ...which the interval does not take for a win
    assert result["interval"][0] < 0 < result["interval"][1]


def test_a_win_on_one_subject_only_is_not_a_win():
    """Better everywhere by noise, much better on one subject: resampling subjects sees it."""
    y, subjects = _truth()
    champion = _with_errors(y, 0.05, seed=5)
    challenger = champion.copy()
    one = subjects == "s0"
    challenger[one] = y[one]  # perfect on s0, identical elsewhere

    result = _compare(y, subjects, challenger, champion)

    assert result["delta_macro_f1"] > 0
    # Resamples that leave s0 out see identical models: the interval starts at exactly 0.
    assert result["interval"][0] == 0.0 < result["interval"][1]
    assert result["decision"] == "tie"


def test_seeded():
    y, subjects = _truth()
    a, b = _with_errors(y, 0.05, seed=6), _with_errors(y, 0.06, seed=7)
    assert _compare(y, subjects, a, b, seed=3) == _compare(y, subjects, a, b, seed=3)
