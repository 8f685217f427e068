"""Nodes of the monitoring run: sensor gates, current features, data and prediction drift."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from har_mlops.contract import CHANNELS
from har_mlops.features import window_features

from .drift import METRICS, expected_at_mix, prediction_deltas, prediction_summary
from .parameters import Monitoring
from .quality import GATE_KEYS, gravity_check, quarantine_reasons, recording_gates, window_gates
from .reference import PROFILE_VERSION, to_builtin
from .scoring import feature_scores

logger = logging.getLogger(__name__)


def _gravity_issue(gravity: dict[str, Any]) -> dict[str, Any]:
    """The quarantine issue of a recording whose still windows are not at 1 g."""
    return {
        "reason": "gravity",
        "quarantine": True,
        "detail": f"median |a| {gravity['median_magnitude_ms2']} m/s^2 over {gravity['from']} is "
        f"{gravity['ratio_to_g']} g (expected ~1): {gravity['hint']}",
    }


def _window_gate_issues(gates: dict[str, np.ndarray], mine: np.ndarray) -> list[dict[str, Any]]:
    """Quarantine issues of the window gates that fail in the windows ``mine [n]``."""
    issues = []
    if gates["flat_line"][mine].any():
        stuck = np.asarray(CHANNELS)[gates["flat_channels"][mine].any(axis=0)].tolist()
        issues.append(
            {
                "reason": "flat_line",
                "quarantine": True,
                "detail": f"{int(gates['flat_line'][mine].sum())} window(s) with a stuck "
                f"channel ({', '.join(stuck)})",
            }
        )
    for code in ("clipping", "non_finite"):
        if gates[code][mine].any():
            issues.append(
                {
                    "reason": code,
                    "quarantine": True,
                    "detail": f"{int(gates[code][mine].sum())} window(s)",
                }
            )
    return issues


def _recording_summaries(
    recording_ids: np.ndarray,
    reasons: np.ndarray,
    gates: dict[str, np.ndarray],
    gravity: dict[str, dict[str, Any]],
    recordings: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Per recording (validated or windowed): status, windows, quarantined and its issues."""
    summaries = {}
    for rec in sorted(set(recordings) | set(recording_ids.tolist())):
        mine = recording_ids == rec
        issues = list(recordings.get(rec, {}).get("issues", []))
        if rec in gravity and not gravity[rec]["ok"]:
            issues.append(_gravity_issue(gravity[rec]))
        summaries[rec] = {
            "status": recordings.get(rec, {}).get("status", "accepted"),
            "windows": int(mine.sum()),
            "quarantined": int((reasons[mine] != "").sum()),
            "gravity": gravity.get(rec),
            "issues": issues + _window_gate_issues(gates, mine),
        }
    return summaries


def compute_window_gates(
    windows: dict[str, np.ndarray], validation_report: dict[str, Any], monitoring: Monitoring
) -> dict[str, np.ndarray]:
    """Per-window sensor-gate values: from the signals, or as logged with served windows.

    ``validation_report`` is not read: it is what makes Kedro run this node after the
    inference run that writes ``windows`` (in a whole ``kedro run`` the windows are read from
    disk, so nothing else orders the two).
    """
    del validation_report
    # Served traffic is logged with its gate values instead of its signals (privacy, size):
    # windows that carry them skip the computation and meet the same decision.
    gates = windows.get("gates")
    if gates is None:
        gates = window_gates(windows["signals"], monitoring["quality"])
    return {
        "recording_id": np.asarray(windows["recording_id"]).astype(str),
        **{key: np.asarray(gates[key]) for key in GATE_KEYS},
    }


def check_quality(
    gates: dict[str, np.ndarray],
    validation_report: dict[str, Any],
    monitoring: Monitoring,
) -> dict[str, Any]:
    """Decides the sensor-fault gates: one quarantine reason per window (``""`` = passed)."""
    quality = monitoring["quality"]
    recording_ids = gates["recording_id"]
    gravity = gravity_check(
        recording_ids, gates["still"], gates["acc_magnitude"], quality["gravity"]
    )
    recordings = recording_gates(validation_report, quality)
    reasons = quarantine_reasons(recording_ids, gates, gravity, recordings)
    per_recording = _recording_summaries(recording_ids, reasons, gates, gravity, recordings)
    counts = Counter(reasons[reasons != ""].tolist())
    logger.info(
        "Sensor gates: %d of %d windows quarantined %s",
        sum(counts.values()),
        reasons.size,
        dict(counts),
    )
    return {
        "reasons": reasons,
        "summary": {
            "windows": int(reasons.size),
            "quarantined": int(sum(counts.values())),
            "quarantined_share": float((reasons != "").mean()) if reasons.size else 0.0,
            "by_reason": dict(counts),
            "rejected_recordings": sorted(
                rec for rec, r in recordings.items() if r["status"] == "rejected"
            ),
            "recordings": per_recording,
        },
    }


def sample_per_activity(
    predicted: np.ndarray, eligible: np.ndarray, cap: int, seed: int
) -> np.ndarray:
    """Indices of at most ``cap`` random eligible windows per predicted activity (sorted)."""
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(eligible)
    order = candidates[np.lexsort((rng.random(candidates.size), predicted[candidates]))]
    groups = predicted[order]
    first = np.r_[True, groups[1:] != groups[:-1]]
    starts = np.flatnonzero(first)
    rank = np.arange(order.size) - starts[np.cumsum(first) - 1]
    return np.sort(order[rank < cap])


def _sample_features(
    windows: dict[str, np.ndarray], sample: np.ndarray, reference_profile: dict[str, Any]
) -> np.ndarray:
    """``[len(sample), F]`` monitoring features: logged ones (served traffic), else computed."""
    width = len(reference_profile["features"])
    if "features" in windows:
        features = np.asarray(windows["features"], dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != width:
            raise ValueError(
                f"The logged windows carry {features.shape[-1]} features, the reference profile "
                f"of {reference_profile['model_source']} {width}: they were logged by another "
                "version of har_mlops.features"
            )
        return features[sample]
    if not sample.size:
        return np.empty((0, width))
    return window_features(windows["signals"][sample], reference_profile["target_rate_hz"])


def compute_window_features(
    windows: dict[str, np.ndarray],
    window_predictions: pd.DataFrame,
    quality: dict[str, Any],
    reference_profile: dict[str, Any],
    monitoring: Monitoring,
) -> dict[str, np.ndarray]:
    """Predictions of every window, and features of a seeded sample of the gate-passing ones."""
    # At most max_windows_per_activity windows per predicted activity: the thresholds are
    # calibrated on far smaller batches, and a day of windows would otherwise spend most of
    # the run in feature extraction.
    if len(window_predictions) != len(windows["recording_id"]) or not np.array_equal(
        window_predictions["recording_id"].to_numpy(dtype=str),
        np.asarray(windows["recording_id"]).astype(str),
    ):
        raise ValueError(
            f"window_predictions ({len(window_predictions)} rows) do not line up with the "
            f"inference windows ({len(windows['recording_id'])}): run the inference pipeline "
            "again so both come from the same run"
        )
    if reference_profile.get("version") != PROFILE_VERSION:
        raise ValueError(
            f"The reference profile of {reference_profile.get('model_source')} has version "
            f"{reference_profile.get('version')}, this code reads version {PROFILE_VERSION}: "
            "rebuild it with `kedro run --pipelines monitoring_reference`"
        )
    predicted = window_predictions["activity"].to_numpy(dtype=str)
    unknown = sorted(set(predicted.tolist()) - set(reference_profile["class_names"]))
    if unknown:
        raise ValueError(
            f"Predicted activities {unknown} are not in the reference profile's classes "
            f"{reference_profile['class_names']} (profile of {reference_profile['model_source']}):"
            " rebuild it for this model with `kedro run --pipelines monitoring_reference`"
        )
    sample = sample_per_activity(
        predicted,
        quality["reasons"] == "",
        monitoring["max_windows_per_activity"],
        monitoring["seed"],
    )
    features = _sample_features(windows, sample, reference_profile)
    return {
        "sample": sample,
        "features": features,
        "predicted": predicted,
        "confidence": window_predictions["confidence"].to_numpy(dtype=float),
        "label": np.asarray(windows["label"]).astype(str),
        "recording_id": np.asarray(windows["recording_id"]).astype(str),
    }


def _calibrated_size(reference_profile: dict[str, Any], windows: int) -> str:
    """The largest calibrated batch size not above ``windows`` (else the smallest)."""
    sizes = sorted(int(s) for s in reference_profile["calibration"]["dataset"])
    fitting = [s for s in sizes if s <= windows]
    return str(fitting[-1] if fitting else sizes[0])


def _feature_drift(
    scores: dict[str, Any], names: list[str], per_class: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per feature, its score in the judged activity where it moved most, with its statistics.

    ``scores`` is ``feature_scores``' result: per judged activity ``ratio [F]`` and
    ``statistics`` ``{metric: [F]}``. Empty when no activity was judged.
    """
    judged = [activity for activity, result in scores["classes"].items() if result.get("judged")]
    if not judged:
        return {}
    results = [scores["classes"][activity] for activity in judged]
    ratio = np.stack([result["ratio"] for result in results])  # [A, F]
    # The first activity with the largest ratio; a NaN ratio never wins, unless it is the
    # first activity's (nothing compares greater than it).
    worst = np.where(
        np.isnan(ratio[0]), 0, np.where(np.isnan(ratio), -np.inf, ratio).argmax(axis=0)
    )
    columns = np.arange(len(names))
    statistics = {
        m: np.stack([result["statistics"][m] for result in results])[worst, columns]
        for m in METRICS
    }
    thresholds = {
        m: np.stack(
            [
                np.asarray(per_class[a][str(r["calibrated_windows"])][m])
                for a, r in zip(judged, results)
            ]
        )[worst, columns]
        for m in METRICS
    }
    score = ratio[worst, columns]
    return {
        name: {
            "score": float(score[i]),
            "drifted": float(score[i]) > 1.0,
            "activity": judged[worst[i]],
            **{
                m: {"value": float(statistics[m][i]), "threshold": float(thresholds[m][i])}
                for m in METRICS
            },
        }
        for i, name in enumerate(names)
    }


def _distribution(
    name: str,
    activity: str,
    values: np.ndarray,
    predicted: np.ndarray,
    reference_profile: dict[str, Any],
) -> dict[str, Any]:
    """One feature's reference and current quantiles in one activity; ``values [n, F]``."""
    i = reference_profile["features"].index(name)
    reference = reference_profile["sketch"]["classes"][activity]
    levels = len(reference["quantiles"])
    return {
        "feature": name,
        "activity": activity,
        "levels": ((np.arange(levels) + 0.5) / levels).tolist(),
        "reference_quantiles": [row[i] for row in reference["quantiles"]],
        "current_quantiles": np.quantile(
            values[predicted == activity][:, i], (np.arange(levels) + 0.5) / levels
        ).tolist(),
    }


def _activity_summaries(scores: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per activity scored: windows, calibrated count, drifted share and largest score, limits."""
    keys = (
        "calibrated_windows",
        "drift_share",
        "drift_share_threshold",
        "max_score",
        "max_score_threshold",
    )
    return {
        activity: {
            "windows": result["windows"],
            "judged": result["judged"],
            "drifted_features": int((np.asarray(result.get("ratio", [])) > 1).sum()),
            **{key: result.get(key) for key in keys},
            "composition": result.get("composition"),
        }
        for activity, result in scores["classes"].items()
    }


def measure_data_drift(
    current_features: dict[str, np.ndarray],
    quality: dict[str, Any],
    reference_profile: dict[str, Any],
    monitoring: Monitoring,
) -> dict[str, Any]:
    """Per-feature drift within each predicted activity, on windows that passed the gates."""
    passed = int((quality["reasons"] == "").sum())
    calibration = reference_profile["calibration"]
    values = current_features["features"]
    predicted = current_features["predicted"][current_features["sample"]]
    scores = feature_scores(
        values,
        predicted,
        reference_profile["sketch"]["classes"],
        calibration["per_class"],
        monitoring,
    )
    features = _feature_drift(scores, reference_profile["features"], calibration["per_class"])
    ranked = sorted(features, key=lambda f: -features[f]["score"])
    distributions = [
        _distribution(name, features[name]["activity"], values, predicted, reference_profile)
        for name in ranked[: monitoring["report"]["top_features"]]
    ]
    share = scores["drift_share"]
    activities = _activity_summaries(scores)
    for activity, summary in activities.items():
        summary["confirmed_windows"] = calibration["confirmed_windows"].get(activity)
    logger.info(
        "Data drift: %.1f %% of %d features drifted in some activity; per activity %s",
        100 * share if np.isfinite(share) else float("nan"),
        len(features),
        {a: f"{r['drifted_features']} at {r['windows']} windows" for a, r in activities.items()},
    )
    return to_builtin(
        {
            "windows": passed,
            "windows_with_features": int(len(predicted)),
            "drift_share": share,
            "max_score": scores["max_score"],
            "drifted_features": [f for f in ranked if features[f]["drifted"]],
            "features": {f: features[f] for f in ranked},
            "activities": activities,
            "distributions": distributions,
        }
    )


def measure_prediction_drift(
    current_features: dict[str, np.ndarray],
    quality: dict[str, Any],
    reference_profile: dict[str, Any],
) -> dict[str, Any]:
    """Class mix, confidence and label-free accuracy of the current predictions vs reference."""
    passed = quality["reasons"] == ""
    reference = reference_profile["predictions"]
    classes = reference_profile["class_names"]
    size = _calibrated_size(reference_profile, int(passed.sum()))
    confidence = current_features["confidence"][passed]
    current = prediction_summary(
        current_features["predicted"][passed],
        confidence,
        classes,
        reference["low_confidence_threshold"],
        reference["atc"]["threshold"],
    )
    deltas = prediction_deltas(current, reference)
    thresholds = reference_profile["calibration"]["dataset"][size]
    labelled = np.isin(current_features["label"][passed], classes)
    true_accuracy = (
        float(
            (
                current_features["predicted"][passed][labelled]
                == current_features["label"][passed][labelled]
            ).mean()
        )
        if labelled.any()
        else None
    )
    edges = np.asarray(reference["confidence_histogram"]["edges"])
    return to_builtin(
        {
            "windows": int(passed.sum()),
            "calibrated_batch": int(size),
            "current": {**current, "class_mix": dict(zip(classes, current["class_mix"]))},
            "reference": {
                "class_mix": dict(zip(classes, reference["class_mix"])),
                "mean_confidence": reference["mean_confidence"],
                "low_confidence_share": reference["low_confidence_share"],
                "estimated_accuracy": reference["estimated_accuracy"],
            },
            # The reference's figures at this batch's class mix: what the deltas compare with.
            "expected": expected_at_mix(current["class_mix"], reference),
            "deltas": deltas,
            "thresholds": {k: thresholds[k] for k in deltas},
            "accuracy_check": {
                "labelled_windows": int(labelled.sum()),
                "true_accuracy": true_accuracy,
                "estimated_accuracy": current["estimated_accuracy"],
                "abs_error": None
                if true_accuracy is None
                else abs(true_accuracy - current["estimated_accuracy"]),
            },
            "confidence_histogram": {
                "edges": edges,
                "reference": reference["confidence_histogram"]["shares"],
                "current": np.histogram(confidence, bins=edges)[0] / max(confidence.size, 1),
            },
        }
    )
