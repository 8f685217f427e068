"""Challenger vs champion on the same test windows, not decided by seed noise.

Two models scored once each on the test subjects differ by a few thousandths of macro-F1 from
the seed alone (docs/benchmarks.md). A paired bootstrap over subjects asks whether the
difference survives resampling who was tested: subjects are drawn with replacement, both
models are scored on the drawn subjects' windows, and the interval of the difference says
win, loss or tie.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def subject_confusions(
    y_true: np.ndarray, y_pred: np.ndarray, subjects: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-subject confusion counts ``[S, C, C]`` (true x predicted) and the subject ids."""
    ids, subject_index = np.unique(np.asarray(subjects).astype(str), return_inverse=True)
    flat = (subject_index * n_classes + y_true) * n_classes + y_pred
    counts = np.bincount(flat, minlength=len(ids) * n_classes * n_classes)
    return counts.reshape(len(ids), n_classes, n_classes).astype(np.float64), ids


def macro_f1_of(confusions: np.ndarray) -> np.ndarray:
    """Macro-F1 of each confusion matrix ``[..., C, C]`` over the classes present in truth
    or predictions (as scikit-learn does with the labels seen)."""
    true_positive = np.diagonal(confusions, axis1=-2, axis2=-1)
    actual = confusions.sum(axis=-1)
    predicted = confusions.sum(axis=-2)
    denominator = actual + predicted
    f1 = np.divide(
        2 * true_positive, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    present = denominator > 0
    return (f1 * present).sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)


def paired_bootstrap(
    y_true: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    subjects: np.ndarray,
    n_classes: int,
    replicates: int,
    confidence: float,
    seed: int,
) -> dict[str, Any]:
    """Macro-F1 difference challenger - champion with its bootstrap interval over subjects.

    ``decision``: ``win`` when the interval lies above 0, ``loss`` when below, else ``tie``.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    mine, ids = subject_confusions(y_true, np.asarray(challenger, np.int64), subjects, n_classes)
    theirs, _ = subject_confusions(y_true, np.asarray(champion, np.int64), subjects, n_classes)
    rng = np.random.default_rng(seed)
    # Draw counts per subject: a replicate's confusion is the weighted sum of the subjects'.
    weights = rng.multinomial(len(ids), np.full(len(ids), 1.0 / len(ids)), size=replicates)
    delta = macro_f1_of(np.einsum("bs,sij->bij", weights, mine)) - macro_f1_of(
        np.einsum("bs,sij->bij", weights, theirs)
    )
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(delta, [tail, 1.0 - tail])
    observed = float(macro_f1_of(mine.sum(axis=0)) - macro_f1_of(theirs.sum(axis=0)))
    decision = "win" if low > 0 else "loss" if high < 0 else "tie"
    return {
        "delta_macro_f1": round(observed, 4),
        "interval": [round(float(low), 4), round(float(high), 4)],
        "confidence": confidence,
        "replicates": replicates,
        "subjects": [str(s) for s in ids],
        "decision": decision,
    }


def scored_windows(
    windows_test: dict[str, np.ndarray], predicted: np.ndarray, classes: list[str]
) -> dict[str, np.ndarray]:
    """What a later comparison needs of one model's test run: which window, truth, prediction."""
    return {
        "recording_id": np.asarray(windows_test["recording_id"]).astype(str),
        "start_ms": np.asarray(windows_test["start_ms"], dtype=np.int64),
        "subject_id": np.asarray(windows_test["subject_id"]).astype(str),
        "label_index": np.asarray(windows_test["label_index"], dtype=np.int64),
        "predicted": np.asarray(predicted, dtype=np.int64),
        "classes": np.asarray(classes, dtype=str),
    }


def _keyed(predictions: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Window keys ``recording_id@start_ms`` and the order that sorts them."""
    keys = np.char.add(
        np.char.add(predictions["recording_id"].astype(str), "@"),
        predictions["start_ms"].astype(str),
    )
    return keys, np.argsort(keys, kind="stable")


def compare_predictions(
    candidate: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    replicates: int,
    confidence: float,
    seed: int,
) -> dict[str, Any]:
    """Paired bootstrap of candidate vs reference, or ``not comparable`` with the reason.

    Comparable means the same classes and the same test windows with the same truth; the
    windows are matched by recording and start, whatever order they were saved in.
    """
    if list(candidate["classes"]) != list(reference["classes"]):
        return {
            "decision": "not comparable",
            "reason": f"classes {list(reference['classes'])}, not {list(candidate['classes'])}",
        }
    mine, my_order = _keyed(candidate)
    theirs, their_order = _keyed(reference)
    if len(mine) != len(theirs) or not np.array_equal(mine[my_order], theirs[their_order]):
        shared = len(np.intersect1d(mine, theirs))
        return {
            "decision": "not comparable",
            "reason": f"scored on other test windows ({shared} of {len(mine)} shared)",
        }
    truth = candidate["label_index"][my_order]
    if not np.array_equal(truth, reference["label_index"][their_order]):
        return {"decision": "not comparable", "reason": "the same windows carry other labels"}
    return paired_bootstrap(
        truth,
        candidate["predicted"][my_order],
        reference["predicted"][their_order],
        candidate["subject_id"][my_order],
        len(candidate["classes"]),
        replicates,
        confidence,
        seed,
    )
