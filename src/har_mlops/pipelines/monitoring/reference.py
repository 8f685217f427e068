"""Nodes of the reference part: profile the training data and calibrate drift thresholds.

The reference profile holds, per predicted activity, a quantile sketch of every window
feature of the training windows, the model's prediction profile on the test subjects, and
thresholds calibrated by drawing batches of held-out subjects' windows (validation and test
subjects, never seen in training) at each monitored batch size and comparing them with the
reference exactly as a monitoring run would.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from har_mlops.contract import contract_scaler
from har_mlops.features import feature_names, window_features
from har_mlops.forward import predict_probabilities

from .drift import (
    METRICS,
    clustered_batches,
    fit_atc_threshold,
    prediction_deltas,
    prediction_summary,
    reference_spread,
    sketch,
)
from .quality import window_gates
from .scoring import feature_scores

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def predict_reference_windows(
    model_bundle: dict[str, Any],
    windows_train: dict[str, np.ndarray],
    windows_validation: dict[str, np.ndarray],
    windows_test: dict[str, np.ndarray],
    prediction: dict[str, Any],
) -> dict[str, Any]:
    """The model's class probabilities on every split, with the contract facts monitoring needs."""
    contract = model_bundle["contract"]
    scaler = contract_scaler(contract)
    splits = dict(zip(SPLITS, (windows_train, windows_validation, windows_test)))
    return {
        "class_names": list(contract["class_names"]),
        "target_rate_hz": float(contract["target_rate_hz"]),
        "source": str(model_bundle.get("source", "unknown")),
        "probabilities": {
            name: predict_probabilities(
                model_bundle["model"],
                part["signals"],
                scaler,
                prediction["batch_size"],
                jit_compile=prediction["jit_compile"],
            )
            for name, part in splits.items()
        },
    }


def _feature_table(
    windows: dict[str, np.ndarray],
    probabilities: np.ndarray,
    classes: list[str],
    rate_hz: float,
    monitoring: dict[str, Any],
) -> dict[str, np.ndarray]:
    gates = window_gates(windows["signals"], monitoring["quality"])
    passed = ~(gates["non_finite"] | gates["flat_line"] | gates["clipping"])
    predicted = np.asarray(classes)[probabilities.argmax(axis=1)]
    table = {
        "features": window_features(windows["signals"], rate_hz),
        "predicted": predicted,
        "confidence": probabilities.max(axis=1),
        "correct": predicted == windows["label"],
        # Transitions and unlabelled windows count for the profile, not for accuracy.
        "labelled": np.isin(windows["label"], classes),
        "recording_id": windows["recording_id"],
        "subject_id": windows["subject_id"],
        "still": gates["still"],
        "acc_magnitude": gates["acc_magnitude"],
    }
    logger.info("Reference windows: %d of %d pass the sensor gates", passed.sum(), passed.size)
    return {name: values[passed] for name, values in table.items()}


def compute_reference_features(
    windows_train: dict[str, np.ndarray],
    windows_validation: dict[str, np.ndarray],
    windows_test: dict[str, np.ndarray],
    reference_predictions: dict[str, Any],
    monitoring: dict[str, Any],
) -> dict[str, dict[str, np.ndarray]]:
    """Window features, predicted activity and confidence of each split's gate-passing windows."""
    classes = reference_predictions["class_names"]
    rate = reference_predictions["target_rate_hz"]
    splits = dict(zip(SPLITS, (windows_train, windows_validation, windows_test)))
    return {
        name: _feature_table(
            part, reference_predictions["probabilities"][name], classes, rate, monitoring
        )
        for name, part in splits.items()
    }


def _concat(tables: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([t[name] for t in tables]) for name in tables[0]}


def _class_sketches(
    train: dict[str, np.ndarray], classes: list[str], monitoring: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    pooled_std = train["features"].std(axis=0)
    sketches = {}
    for name in classes:
        mine = train["features"][train["predicted"] == name]
        if len(mine) < monitoring["min_reference_windows"]:
            logger.warning("Activity %s: %d training windows, not monitored", name, len(mine))
            continue
        summary = sketch(
            mine, monitoring["sketch"]["quantile_levels"], monitoring["sketch"]["psi_bins"]
        )
        summary["spread"] = reference_spread(summary["std"], pooled_std)
        sketches[name] = summary
    return sketches


def _prediction_profile(
    validation: dict[str, np.ndarray],
    test: dict[str, np.ndarray],
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


def _take(table: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[mask] for name, values in table.items()}


def _calibration_groups(
    reference_features: dict[str, dict[str, np.ndarray]],
    sketches: dict[str, dict[str, Any]],
    classes: list[str],
    monitoring: dict[str, Any],
) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """(reference sketches, no-drift windows of subjects the sketches never saw) pairs.

    The validation and test subjects against the full reference, and each of
    ``train_folds`` folds of training subjects against the sketches of the other folds:
    every subject serves as a new subject once, so the noise floor includes how much
    subjects differ, not only how much batches of the same few subjects do.
    """
    train = reference_features["train"]
    groups = [(sketches, _concat([reference_features["validation"], reference_features["test"]]))]
    folds = monitoring["calibration"]["train_folds"]
    if folds < 2:
        return groups
    rng = np.random.default_rng(monitoring["seed"])
    for fold in np.array_split(rng.permutation(np.unique(train["subject_id"])), folds):
        inside = np.isin(train["subject_id"], fold)
        if inside.any() and not inside.all():
            rest = _class_sketches(_take(train, ~inside), classes, monitoring)
            groups.append((rest, _take(train, inside)))
    return groups


def _draw_batches(
    groups: list[tuple[dict[str, Any], dict[str, np.ndarray]]],
    size: int,
    calibration: dict[str, Any],
    rng: np.random.Generator,
) -> list[tuple[int, np.ndarray]]:
    """``repetitions`` (group, indices) batches of ``size`` from the groups large enough."""
    # Shared among those groups in proportion to their windows.
    windows = np.array([len(held_out["predicted"]) for _, held_out in groups], dtype=float)
    weights = np.where(windows * calibration["max_pool_share"] >= size, windows, 0.0)
    if weights.sum() == 0:
        return []
    counts = np.ceil(calibration["repetitions"] * weights / weights.sum()).astype(int)
    batches = []
    for group in np.flatnonzero(counts):
        recordings = groups[group][1]["recording_id"]
        batches += [(group, b) for b in clustered_batches(recordings, size, counts[group], rng)]
    return batches


def _class_thresholds(
    groups: list[tuple[dict[str, Any], dict[str, np.ndarray]]],
    batches: list[tuple[int, np.ndarray]],
    monitoring: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Per activity, the ``feature_quantile`` of each effect size over no-drift batches."""
    calibration = monitoring["calibration"]
    stats: dict[str, list[np.ndarray]] = {}
    sizes: dict[str, list[int]] = {}
    for group, batch in batches:
        sketches, held_out = groups[group]
        scores = feature_scores(
            held_out["features"][batch], held_out["predicted"][batch], sketches, None, monitoring
        )
        for name, result in scores["classes"].items():
            stats.setdefault(name, []).append(np.stack([result["statistics"][m] for m in METRICS]))
            sizes.setdefault(name, []).append(result["windows"])
    thresholds = {}
    for name, values in stats.items():
        if len(values) < calibration["min_repetitions"]:
            continue
        quantiles = np.quantile(np.stack(values), calibration["feature_quantile"], axis=0)
        # A feature that never moved in the no-drift batches (a discrete one, a small pool)
        # would otherwise get a zero threshold and call any change infinite drift.
        quantiles = np.maximum(quantiles, [[calibration["threshold_floor"][m]] for m in METRICS])
        thresholds[name] = {
            "windows_median": int(np.median(sizes[name])),
            "repetitions": len(values),
            **dict(zip(METRICS, quantiles)),
        }
    return thresholds


def _nanquantile(values: list[float], q: float) -> float | None:
    values = np.asarray(values, dtype=float)
    return float(np.nanquantile(values, q)) if np.isfinite(values).any() else None


def _prediction_limits(
    held_out: dict[str, np.ndarray],
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
    return {k: _nanquantile([d[k] for d in deltas], q) for k in (*keys, "estimated_accuracy_drop")}


def calibrate_reference(
    reference_features: dict[str, dict[str, np.ndarray]],
    reference_predictions: dict[str, Any],
    monitoring: dict[str, Any],
    prediction: dict[str, Any],
) -> dict[str, Any]:
    """The reference profile: sketches, prediction profile and thresholds per batch size."""
    classes = reference_predictions["class_names"]
    calibration = monitoring["calibration"]
    train = reference_features["train"]
    sketches = _class_sketches(train, classes, monitoring)
    predictions = _prediction_profile(
        reference_features["validation"],
        reference_features["test"],
        classes,
        prediction["low_confidence_threshold"],
        monitoring["report"]["confidence_bins"],
    )
    groups = _calibration_groups(reference_features, sketches, classes, monitoring)
    rng = np.random.default_rng(monitoring["seed"])
    batches = {
        size: _draw_batches(groups, size, calibration, rng)
        for size in sorted(calibration["batch_sizes"])
    }
    usable = [size for size, b in batches.items() if b]
    if not usable:
        raise ValueError(
            f"No calibration batch size in {calibration['batch_sizes']} fits "
            f"{calibration['max_pool_share']} of any group of held-out windows"
        )
    # Every other batch fits the thresholds per activity and feature; the rest give the
    # dataset-level null (share of drifted features, largest score) under the monitoring rule.
    per_class = {
        str(size): _class_thresholds(groups, batches[size][0::2], monitoring) for size in usable
    }
    table = {"per_class": per_class}
    sizes_out = {}
    for size in usable:
        null = [
            feature_scores(
                groups[g][1]["features"][batch],
                groups[g][1]["predicted"][batch],
                groups[g][0],
                table,
                monitoring,
            )
            for g, batch in batches[size][1::2]
        ]
        shares = [scores["drift_share"] for scores in null]
        max_scores = [scores["max_score"] for scores in null]
        # Prediction drift only on validation and test subjects: the model fits its own
        # training subjects better than any new subject.
        own = [batch for g, batch in batches[size] if g == 0]
        sizes_out[str(size)] = {
            "drift_share": _nanquantile(shares, calibration["share_quantile"]),
            "null_drift_share_median": _nanquantile(shares, 0.5),
            "max_score": _nanquantile(max_scores, calibration["share_quantile"]),
            "null_max_score_median": _nanquantile(max_scores, 0.5),
            **_prediction_limits(
                groups[0][1], own, predictions, classes, calibration["prediction_quantile"]
            ),
            "median_wasserstein_threshold": float(
                np.median([t["wasserstein"] for t in per_class[str(size)].values()])
            )
            if per_class[str(size)]
            else None,
        }
    valid = [
        int(size)
        for size, t in sizes_out.items()
        if t["median_wasserstein_threshold"] is not None
        and t["median_wasserstein_threshold"] <= calibration["max_detectable_shift"]
    ]
    min_batch = min(valid) if valid else max(usable)
    logger.info(
        "Calibrated drift thresholds at batch sizes %s on %d groups of held-out subjects; "
        "verdict valid from %d windows",
        usable,
        len(groups),
        min_batch,
    )
    return to_builtin(
        {
            "version": 1,
            "model_source": reference_predictions["source"],
            "class_names": classes,
            "features": feature_names(),
            "target_rate_hz": reference_predictions["target_rate_hz"],
            "windows": {name: int(len(t["predicted"])) for name, t in reference_features.items()},
            "sketch": {
                "quantile_levels": monitoring["sketch"]["quantile_levels"],
                "psi_bins": monitoring["sketch"]["psi_bins"],
                "classes": sketches,
            },
            "predictions": predictions,
            "gravity": {
                "still_windows": int(train["still"].sum()),
                "median_still_magnitude_ms2": float(
                    np.median(train["acc_magnitude"][train["still"]])
                )
                if train["still"].any()
                else None,
            },
            "calibration": {
                "pool": "validation and test subjects against the reference, and each fold "
                "of training subjects against the other folds",
                "train_folds": calibration["train_folds"],
                "pool_windows": [int(len(held_out["predicted"])) for _, held_out in groups],
                "repetitions": calibration["repetitions"],
                "seed": monitoring["seed"],
                "feature_quantile": calibration["feature_quantile"],
                "share_quantile": calibration["share_quantile"],
                "prediction_quantile": calibration["prediction_quantile"],
                "batch_sizes": usable,
                "min_batch_windows": int(min_batch),
                "per_class": per_class,
                "dataset": sizes_out,
            },
        }
    )


def to_builtin(value: Any) -> Any:
    """Arrays and numpy scalars to lists and floats, so the profile is the same saved or not."""
    if isinstance(value, dict):
        return {str(k): to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_builtin(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
