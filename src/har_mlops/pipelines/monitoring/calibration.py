"""The steps of the reference calibration: sketches, prediction profile, no-drift limits.

A *group* pairs reference sketches with no-drift windows of subjects those sketches never
saw; a *batch* is ``(group index, window indices [size])``. Tables are dicts of arrays with
one row per window (``features [n, F]``, ``predicted [n]``, ``confidence [n]``, ...).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .drift import (
    METRICS,
    batch_statistics,
    clustered_batches,
    fit_atc_threshold,
    per_class_summary,
    prediction_deltas,
    prediction_summary,
    reference_spread,
    sketch,
    strata_sketch,
)

logger = logging.getLogger(__name__)

Table = dict[str, np.ndarray]
Group = tuple[dict[str, Any], Table]
Batch = tuple[int, np.ndarray]


def concat_tables(tables: list[Table]) -> Table:
    """The rows of every table, in order."""
    return {name: np.concatenate([t[name] for t in tables]) for name in tables[0]}


def take_rows(table: Table, mask: np.ndarray) -> Table:
    """The rows of ``table`` selected by ``mask [n]`` (boolean or indices)."""
    return {name: values[mask] for name, values in table.items()}


def class_sketches(
    train: Table, classes: list[str], monitoring: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Per predicted activity with enough training windows, the sketch of its features."""
    pooled_std = train["features"].std(axis=0)
    sketches = {}
    for name in classes:
        mine = train["features"][train["predicted"] == name]
        if len(mine) < monitoring["min_reference_windows"]:
            logger.warning("Activity %s: %d training windows, not monitored", name, len(mine))
            continue
        levels = monitoring["sketch"]["quantile_levels"]
        summary = sketch(mine, levels, monitoring["sketch"]["psi_bins"])
        summary["spread"] = reference_spread(summary["std"], pooled_std)
        summary["strata"] = strata_sketch(
            mine,
            train["label"][train["predicted"] == name],
            summary["psi_edges"],
            levels,
            monitoring["sketch"]["min_stratum_windows"],
        )
        sketches[name] = summary
    return sketches


def prediction_profile(
    validation: Table,
    test: Table,
    classes: list[str],
    low_confidence_threshold: float,
    confidence_bins: int,
) -> dict[str, Any]:
    """Class mix and confidence on the test subjects; ATC threshold fitted on validation."""
    known = validation["labelled"]
    threshold = fit_atc_threshold(validation["confidence"][known], validation["correct"][known])
    summary = prediction_summary(
        test["predicted"], test["confidence"], classes, low_confidence_threshold, threshold
    )
    edges = np.linspace(0.0, 1.0, confidence_bins + 1)
    histogram = np.histogram(test["confidence"], bins=edges)[0] / max(len(test["confidence"]), 1)
    test_accuracy = float(test["correct"][test["labelled"]].mean())
    labelled_estimate = float((test["confidence"][test["labelled"]] > threshold).mean())
    logger.info(
        "Label-free accuracy estimate on the test subjects %.4f (true %.4f)",
        labelled_estimate,
        test_accuracy,
    )
    return {
        **summary,
        "class_mix": summary["class_mix"],
        # Per predicted class, so drift is judged at a batch's own class mix.
        "per_class": per_class_summary(
            test["predicted"], test["confidence"], classes, low_confidence_threshold, threshold
        ),
        "low_confidence_threshold": float(low_confidence_threshold),
        "confidence_histogram": {"edges": edges, "shares": histogram},
        "atc": {
            "threshold": threshold,
            "fitted_on": "validation subjects",
            "validation_accuracy": float(validation["correct"][known].mean()),
            # Checked on the labelled test windows, where the true accuracy is known.
            "test_estimated_accuracy": labelled_estimate,
            "test_accuracy": test_accuracy,
            "test_abs_error": abs(labelled_estimate - test_accuracy),
        },
    }


def gravity_reference(train: Table) -> dict[str, Any]:
    """How many training windows are still, and their median acceleration magnitude."""
    still = train["still"]
    return {
        "still_windows": int(still.sum()),
        "median_still_magnitude_ms2": float(np.median(train["acc_magnitude"][still]))
        if still.any()
        else None,
    }


def calibration_groups(
    reference_features: dict[str, Table],
    sketches: dict[str, dict[str, Any]],
    classes: list[str],
    monitoring: dict[str, Any],
) -> list[Group]:
    """(reference sketches, no-drift windows of subjects the sketches never saw) pairs.

    The validation and test subjects against the full reference, and each of
    ``train_folds`` folds of training subjects against the sketches of the other folds:
    every subject serves as a new subject once, so the noise floor includes how much
    subjects differ, not only how much batches of the same few subjects do.
    """
    train = reference_features["train"]
    held_out = concat_tables([reference_features["validation"], reference_features["test"]])
    groups = [(sketches, held_out)]
    folds = monitoring["calibration"]["train_folds"]
    if folds < 2:
        return groups
    rng = np.random.default_rng(monitoring["seed"])
    for fold in np.array_split(rng.permutation(np.unique(train["subject_id"])), folds):
        inside = np.isin(train["subject_id"], fold)
        if inside.any() and not inside.all():
            rest = class_sketches(take_rows(train, ~inside), classes, monitoring)
            groups.append((rest, take_rows(train, inside)))
    return groups


def calibration_settings(groups: list[Group], monitoring: dict[str, Any]) -> dict[str, Any]:
    """How the thresholds were calibrated: the pools, repetitions, seed and quantiles."""
    calibration = monitoring["calibration"]
    return {
        "pool": "validation and test subjects against the reference, and each fold "
        "of training subjects against the other folds",
        "feature_drift": "per activity, batches of that activity's windows at each count "
        "in activity_windows",
        "train_folds": calibration["train_folds"],
        "pool_windows": [int(len(held_out["predicted"])) for _, held_out in groups],
        "repetitions": calibration["repetitions"],
        "seed": monitoring["seed"],
        "feature_quantile": calibration["feature_quantile"],
        "share_quantile": calibration["share_quantile"],
        "prediction_quantile": calibration["prediction_quantile"],
    }


def _repetitions_per_group(
    windows: np.ndarray, size: int, calibration: dict[str, Any]
) -> np.ndarray | None:
    """``repetitions`` shared among the groups whose ``windows`` can supply ``size``-batches."""
    weights = np.where(windows * calibration["max_pool_share"] >= size, windows, 0.0)
    if weights.sum() == 0:
        return None
    return np.ceil(calibration["repetitions"] * weights / weights.sum()).astype(int)


def draw_batches(
    groups: list[Group], size: int, calibration: dict[str, Any], rng: np.random.Generator
) -> list[Batch]:
    """``repetitions`` batches of ``size`` windows from the groups large enough for them."""
    # Shared among those groups in proportion to their windows.
    windows = np.array([len(held_out["predicted"]) for _, held_out in groups], dtype=float)
    counts = _repetitions_per_group(windows, size, calibration)
    if counts is None:
        return []
    batches = []
    for group in np.flatnonzero(counts):
        recordings = groups[group][1]["recording_id"]
        batches += [(group, b) for b in clustered_batches(recordings, size, counts[group], rng)]
    return batches


def calibration_batches(
    groups: list[Group], calibration: dict[str, Any], seed: int
) -> dict[int, list[Batch]]:
    """Seeded no-drift batches at each batch size some group can supply, smallest first."""
    rng = np.random.default_rng(seed)
    drawn = {
        size: draw_batches(groups, size, calibration, rng)
        for size in sorted(calibration["batch_sizes"])
    }
    usable = {size: batches for size, batches in drawn.items() if batches}
    if not usable:
        raise ValueError(
            f"No calibration batch size in {calibration['batch_sizes']} fits "
            f"{calibration['max_pool_share']} of any group of held-out windows"
        )
    return usable


def activity_batches(
    groups: list[Group],
    activity: str,
    size: int,
    calibration: dict[str, Any],
    rng: np.random.Generator,
) -> list[Batch]:
    """``repetitions`` batches of ``size`` windows predicted as ``activity``, clustered in time.

    Only groups whose sketches monitor the activity and that hold enough of its windows
    (``max_pool_share``) supply batches, in proportion to those windows.
    """
    rows = [
        np.flatnonzero(held_out["predicted"] == activity) if activity in sketches else np.empty(0)
        for sketches, held_out in groups
    ]
    counts = _repetitions_per_group(
        np.array([r.size for r in rows], dtype=float), size, calibration
    )
    if counts is None:
        return []
    batches = []
    for group in np.flatnonzero(counts):
        # Rows of one activity keep the recordings grouped and in time order, so a batch is
        # a few bouts of that activity, as a monitoring run sees it.
        codes = groups[group][1]["recording_id"][rows[group]]
        drawn = clustered_batches(codes, size, counts[group], rng)
        batches += [(group, rows[group][b]) for b in drawn]
    return batches


def _statistics(
    groups: list[Group], activity: str, batches: list[Batch], chunk: int = 64
) -> np.ndarray:
    """Effect sizes ``[batches, metrics, F]`` of each batch against its group's sketch."""
    out = np.empty((len(batches), len(METRICS), groups[0][1]["features"].shape[1]))
    group_of = np.array([g for g, _ in batches])
    for g in np.unique(group_of):
        sketch_ = groups[g][0][activity]
        spread = np.asarray(sketch_["spread"], dtype=float)
        mine = np.flatnonzero(group_of == g)
        # In chunks of batches: the vectorised statistics hold [chunk, n, bins, F] at once.
        for start in range(0, mine.size, chunk):
            rows = mine[start : start + chunk]
            values = groups[g][1]["features"][np.stack([batches[i][1] for i in rows])]
            result = batch_statistics(values, sketch_, spread)
            out[rows] = np.stack([result[m] for m in METRICS], axis=1)
    return out


def activity_thresholds(
    groups: list[Group], activity: str, monitoring: dict[str, Any], rng: np.random.Generator
) -> dict[str, dict[str, Any]]:
    """Per calibrated count of ``activity`` windows: feature thresholds and no-drift limits.

    Half the no-drift batches set each feature's threshold (``feature_quantile`` of each
    effect size, floored); the other half, judged by those thresholds, give the limits of the
    activity's drifted share and largest score (``share_quantile``). The limits hold whatever
    else the batch contains, so a change of activity mix cannot move them.
    """
    calibration = monitoring["calibration"]
    floor = np.array([[calibration["threshold_floor"][m]] for m in METRICS])
    levels = {}
    for size in sorted(calibration["activity_windows"]):
        batches = activity_batches(groups, activity, size, calibration, rng)
        if len(batches) < 2 * calibration["min_repetitions"]:
            continue
        fit = _statistics(groups, activity, batches[0::2])
        # A feature that never moved in the no-drift batches (a discrete one, a small pool)
        # would otherwise get a zero threshold and call any change infinite drift.
        thresholds = np.maximum(np.quantile(fit, calibration["feature_quantile"], axis=0), floor)
        ratio = (_statistics(groups, activity, batches[1::2]) / thresholds[None]).max(axis=1)
        shares, max_scores = (ratio > 1.0).mean(axis=1), ratio.max(axis=1)
        q = calibration["share_quantile"]
        levels[str(size)] = {
            "repetitions": len(batches),
            **dict(zip(METRICS, thresholds)),
            "drift_share": float(np.quantile(shares, q)),
            "null_drift_share_median": float(np.median(shares)),
            "max_score": float(np.quantile(max_scores, q)),
            "null_max_score_median": float(np.median(max_scores)),
        }
    return levels


def class_thresholds(
    groups: list[Group], classes: list[str], monitoring: dict[str, Any]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per monitored activity and calibrated window count, thresholds and no-drift limits."""
    rng = np.random.default_rng(monitoring["seed"])
    monitored = [c for c in classes if any(c in sketches for sketches, _ in groups)]
    per_class = {name: activity_thresholds(groups, name, monitoring, rng) for name in monitored}
    for name, levels in per_class.items():
        if not levels:
            logger.warning("Activity %s: too few held-out windows to calibrate, not judged", name)
    return {name: levels for name, levels in per_class.items() if levels}


def nanquantile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile of the finite ``values``; None when there is none."""
    values = np.asarray(values, dtype=float)
    return float(np.nanquantile(values, q)) if np.isfinite(values).any() else None


def _prediction_limits(
    held_out: Table,
    batches: list[np.ndarray],
    predictions: dict[str, Any],
    classes: list[str],
    q: float,
) -> dict[str, float | None]:
    """The ``q`` quantile of each prediction-drift effect size over no-drift batches."""
    deltas = [
        prediction_deltas(
            prediction_summary(
                held_out["predicted"][batch],
                held_out["confidence"][batch],
                classes,
                predictions["low_confidence_threshold"],
                predictions["atc"]["threshold"],
            ),
            predictions,
        )
        for batch in batches
    ]
    keys = ("js_distance", "mean_confidence_drop", "low_confidence_increase")
    return {k: nanquantile([d[k] for d in deltas], q) for k in (*keys, "estimated_accuracy_drop")}


def typical_level(levels: dict[str, Any], windows: float) -> str | None:
    """The largest calibrated window count not above ``windows``; None below the smallest."""
    fitting = [int(level) for level in levels if int(level) <= windows]
    return str(max(fitting)) if fitting else None


def _median_wasserstein(
    per_class: dict[str, dict[str, Any]], groups: list[Group], batches: list[Batch]
) -> float | None:
    """Median Wasserstein threshold of the activities at their typical count in ``batches``."""
    medians = []
    for activity, levels in per_class.items():
        counts = [int((groups[g][1]["predicted"][b] == activity).sum()) for g, b in batches]
        level = typical_level(levels, float(np.median(counts)))
        if level is not None:
            medians.append(float(np.median(levels[level]["wasserstein"])))
    return float(np.median(medians)) if medians else None


def dataset_limits(
    groups: list[Group],
    batches: dict[int, list[Batch]],
    per_class: dict[str, dict[str, Any]],
    predictions: dict[str, Any],
    classes: list[str],
    monitoring: dict[str, Any],
) -> dict[str, dict[str, float | None]]:
    """Per batch size, the no-drift limits of prediction drift and the typical sensitivity.

    Prediction drift only on the validation and test subjects (group 0): the model fits its
    own training subjects better than any new subject.
    """
    q = monitoring["calibration"]["prediction_quantile"]
    return {
        str(size): {
            **_prediction_limits(
                groups[0][1], [batch for g, batch in drawn if g == 0], predictions, classes, q
            ),
            "median_wasserstein_threshold": _median_wasserstein(per_class, groups, drawn),
        }
        for size, drawn in batches.items()
    }


def confirmed_windows(
    per_class: dict[str, dict[str, Any]], max_detectable_shift: float
) -> dict[str, int]:
    """Per activity, the smallest calibrated count whose median Wasserstein threshold is at
    most the shift (else its largest count): from there a drift finding can say retrain."""
    confirmed = {}
    for activity, levels in per_class.items():
        sensitive = [
            int(level)
            for level, entry in levels.items()
            if float(np.median(entry["wasserstein"])) <= max_detectable_shift
        ]
        confirmed[activity] = min(sensitive) if sensitive else max(int(n) for n in levels)
    return confirmed


def min_batch_windows(dataset: dict[str, dict[str, Any]], max_detectable_shift: float) -> int:
    """The smallest batch size whose median Wasserstein threshold is at most the shift.

    When none is that sensitive, the largest calibrated size: the most sensitive one.
    """
    valid = [
        int(size)
        for size, limits in dataset.items()
        if limits["median_wasserstein_threshold"] is not None
        and limits["median_wasserstein_threshold"] <= max_detectable_shift
    ]
    return min(valid) if valid else max(int(size) for size in dataset)
