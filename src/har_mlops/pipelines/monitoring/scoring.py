"""The drift rule of a monitoring run, per predicted activity at that activity's window count.

Within each predicted activity with enough windows, every feature gets three effect sizes
against the reference sketch of that activity. Each effect size is divided by its threshold,
calibrated on no-drift batches of that activity alone at the largest calibrated count not above
the current count (never a tighter one), and a feature's score in the activity is the largest
ratio over metrics: above 1 it drifted. The activity is then judged on two figures whose
no-drift limits were calibrated the same way: its share of drifted features (broad drift) and
its largest score (one feature far off, e.g. one axis). Nothing here depends on how many
windows the *other* activities have, so a change of activity mix cannot move a limit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .calibration import typical_level
from .drift import METRICS, drift_statistics


def lookup_thresholds(
    per_class: dict[str, dict[str, Any]], activity: str, windows: int
) -> tuple[str, dict[str, Any]] | None:
    """The calibrated (window count, thresholds) for ``windows`` windows of ``activity``."""
    levels = per_class.get(activity)
    if not levels:
        return None
    level = typical_level(levels, windows)
    return None if level is None else (level, levels[level])


def feature_scores(
    features: np.ndarray,
    predicted: np.ndarray,
    sketches: dict[str, dict[str, Any]],
    per_class: dict[str, dict[str, Any]],
    monitoring: dict[str, Any],
) -> dict[str, Any]:
    """Per judged activity: feature scores, drifted share, largest score and their limits."""
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
        result: dict[str, Any] = {"windows": count, "statistics": statistics, "judged": False}
        if "weights" in statistics:
            # Which reference strata the windows resemble: behaviour, not drift.
            labels = reference["strata"]["labels"]
            result["composition"] = dict(zip(labels, np.round(statistics["weights"], 3)))
        found = lookup_thresholds(per_class, activity, count)
        if found is not None:
            level, entry = found
            ratio = np.max(
                [statistics[m] / np.maximum(np.asarray(entry[m]), 1e-12) for m in METRICS],
                axis=0,
            )
            result.update(
                {
                    "judged": True,
                    "calibrated_windows": int(level),
                    "ratio": ratio,
                    "drift_share": float((ratio > 1.0).mean()),
                    "max_score": float(ratio.max()),
                    "drift_share_threshold": entry["drift_share"],
                    "max_score_threshold": entry["max_score"],
                }
            )
            ratios.append(ratio)
        classes[activity] = result
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
