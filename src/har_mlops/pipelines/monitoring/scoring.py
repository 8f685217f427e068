"""The drift rule, shared by calibration and monitoring so both judge batches identically.

Within each predicted activity with enough windows, every feature gets three effect sizes
against the reference sketch of that activity. With a threshold table, each effect size is
divided by its calibrated threshold (taken at the calibrated batch whose typical count of
windows of that activity does not exceed the current count, i.e. never a tighter one), and a
feature's drift score is the largest ratio over metrics and activities: above 1 it drifted.
A batch is judged on two figures whose no-drift limits are calibrated the same way: the share
of drifted features (broad drift) and the largest score (one feature far off, e.g. one axis).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .drift import METRICS, drift_statistics


def lookup_thresholds(
    table: dict[str, Any], activity: str, windows: int
) -> tuple[str, dict[str, Any]] | None:
    """The calibrated (batch size, thresholds) for ``windows`` windows of ``activity``, or None."""
    candidates = [
        (entry["windows_median"], size, entry)
        for size, classes in table["per_class"].items()
        if (entry := classes.get(activity)) is not None and entry["windows_median"] <= windows
    ]
    if not candidates:
        return None
    _, size, entry = max(candidates, key=lambda c: c[0])
    return size, entry


def feature_scores(
    features: np.ndarray,
    predicted: np.ndarray,
    sketches: dict[str, dict[str, Any]],
    table: dict[str, Any] | None,
    monitoring: dict[str, Any],
) -> dict[str, Any]:
    """Per-activity effect sizes and, given thresholds, per-feature scores and drifted share."""
    n_features = features.shape[1]
    classes: dict[str, dict[str, Any]] = {}
    ratios = []
    for activity, reference in sketches.items():
        mine = predicted == activity
        count = int(mine.sum())
        if count < monitoring["min_class_windows"]:
            continue
        statistics = drift_statistics(
            features[mine], reference, np.asarray(reference["spread"], dtype=float)
        )
        result: dict[str, Any] = {"windows": count, "statistics": statistics}
        if table is not None:
            found = lookup_thresholds(table, activity, count)
            if found is None:
                result["judged"] = False
            else:
                size, entry = found
                ratio = np.max(
                    [statistics[m] / np.maximum(entry[m], 1e-12) for m in METRICS], axis=0
                )
                result.update({"judged": True, "calibrated_batch": size, "ratio": ratio})
                ratios.append(ratio)
        classes[activity] = result
    if table is None:
        return {"classes": classes}
    if not ratios:
        return {
            "classes": classes,
            "score": np.full(n_features, np.nan),
            "drift_share": float("nan"),
            "max_score": float("nan"),
        }
    score = np.max(ratios, axis=0)
    return {
        "classes": classes,
        "score": score,
        "drift_share": float((score > 1.0).mean()),
        "max_score": float(score.max()),
    }
