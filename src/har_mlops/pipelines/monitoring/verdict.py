"""The verdict node: ``ok`` / ``warn`` / ``retrain`` from the checks, with their reasons.

Sensor faults warn (fix the data, do not retrain on it); data drift warns when it exceeds its
calibrated no-drift limits and says retrain when it also reaches ``retrain_drift_share`` of
the features; prediction drift must be both unusual for a clean batch (calibrated) and large
enough to matter (``min_effect``), and a label-free accuracy drop of
``retrain_accuracy_drop`` says retrain. Fewer windows than the profile's minimum batch warn.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .parameters import Monitoring
from .reference import to_builtin

logger = logging.getLogger(__name__)

VERDICTS = ("ok", "warn", "retrain")


class RetrainRequiredError(RuntimeError):
    """The monitoring verdict is ``retrain`` and ``monitoring.fail_on_retrain`` is set."""


def _reason(check: str, severity: str, message: str, **figures: Any) -> dict[str, Any]:
    return {"check": check, "severity": severity, "message": message, **figures}


def _quality_reasons(quality: dict[str, Any], verdict: dict[str, Any]) -> list[dict[str, Any]]:
    summary = quality["summary"]
    reasons = []
    if summary["rejected_recordings"]:
        reasons.append(
            _reason(
                "data_quality",
                "warn",
                f"{len(summary['rejected_recordings'])} recording(s) rejected by validation: "
                + "; ".join(
                    i["detail"]
                    for rec in summary["rejected_recordings"]
                    for i in summary["recordings"][rec]["issues"]
                ),
                code="recording_rejected",
                recordings=summary["rejected_recordings"],
            )
        )
    if summary["quarantined_share"] > verdict["warn_quarantined_share"]:
        for code, count in sorted(summary["by_reason"].items(), key=lambda kv: -kv[1]):
            details = [
                f"{rec}: {i['detail']}"
                for rec, r in summary["recordings"].items()
                for i in r["issues"]
                if i["reason"] == code
            ]
            reasons.append(
                _reason(
                    "data_quality",
                    "warn",
                    f"{count} of {summary['windows']} windows quarantined for {code}: "
                    + "; ".join(details[:5]),
                    code=code,
                    windows=count,
                    share=count / max(summary["windows"], 1),
                    threshold=verdict["warn_quarantined_share"],
                )
            )
    for rec, result in summary["recordings"].items():
        for issue in result["issues"]:
            if issue["reason"] == "gaps":
                reasons.append(
                    _reason("data_quality", "warn", f"{rec}: {issue['detail']}", code="gaps")
                )
    return reasons


def drifted_activities(data_drift: dict[str, Any], verdict: dict[str, Any]) -> dict[str, float]:
    """Activities whose features drifted beyond their no-drift limits, with drifted share.

    Broad (many features) and strong (one far off), or very strong on its own: a new
    subject's gait moves many features a little, a sensor fault moves some a lot.
    """
    drifted = {}
    for activity, result in data_drift["activities"].items():
        if not result["judged"] or result["max_score_threshold"] is None:
            continue
        share, top = result["drift_share"], result["max_score"]
        broad = share > result["drift_share_threshold"]
        strong = top > result["max_score_threshold"]
        if (broad and strong) or top > verdict["severe_score_factor"] * result[
            "max_score_threshold"
        ]:
            drifted[activity] = share
    return drifted


def _drift_reasons(data_drift: dict[str, Any], verdict: dict[str, Any]) -> list[dict[str, Any]]:
    drifted = drifted_activities(data_drift, verdict)
    if not drifted:
        return []
    share = max(drifted.values())
    activities = data_drift["activities"]
    # Retrain needs broad drift in an activity with enough windows for the calibrated
    # sensitivity; broad drift in fewer windows is worth a look, and says how many it needs.
    confirmed = {
        a: s
        for a, s in drifted.items()
        if activities[a]["windows"] >= (activities[a].get("confirmed_windows") or 0)
    }
    broad = share >= verdict["retrain_drift_share"]
    severity = (
        "retrain"
        if broad and confirmed and max(confirmed.values()) >= verdict["retrain_drift_share"]
        else "warn"
    )
    per_activity = [
        f"{a}: {r['drift_share']:.0%} of features (limit {r['drift_share_threshold']:.0%}), "
        f"largest score {r['max_score']:.1f} (limit {r['max_score_threshold']:.1f}) in "
        f"{r['windows']} windows"
        for a, r in ((a, activities[a]) for a in sorted(drifted, key=lambda a: -drifted[a]))
    ]
    listed = [
        f"{name} in {f['activity']} (score {f['score']:.1f}: W {f['wasserstein']['value']:.2f}"
        f" sd, KS {f['ks']['value']:.2f}, PSI {f['psi']['value']:.2f})"
        for name, f in list(data_drift["features"].items())[:5]
        if f["drifted"]
    ]
    worst = max(drifted, key=drifted.get)
    caveat = ""
    if broad and severity == "warn":
        caveat = (
            " (retrain once confirmed on "
            + ", ".join(
                f"{activities[a]['confirmed_windows']} {a} windows"
                for a in drifted
                if drifted[a] >= verdict["retrain_drift_share"]
            )
            + ")"
        )
    return [
        _reason(
            "data_drift",
            severity,
            "Features drifted within activities beyond their no-drift limits at each "
            "activity's window count: "
            + "; ".join(per_activity)
            + caveat
            + ". Top: "
            + "; ".join(listed),
            code="feature_drift",
            value=share,
            threshold=activities[worst]["drift_share_threshold"],
            max_score=activities[worst]["max_score"],
            max_score_threshold=activities[worst]["max_score_threshold"],
            activities=sorted(drifted),
            features=data_drift["drifted_features"],
        )
    ]


def _prediction_reasons(
    prediction_drift: dict[str, Any], verdict: dict[str, Any]
) -> list[dict[str, Any]]:
    # The class mix is not here: a change of behaviour is a finding of the behaviour section,
    # never a verdict on the model. The rest is compared at the batch's own class mix.
    deltas, thresholds = prediction_drift["deltas"], prediction_drift["thresholds"]
    labels = {
        "mean_confidence_drop": "mean confidence drop",
        "low_confidence_increase": "low-confidence share increase",
        "estimated_accuracy_drop": "label-free accuracy estimate drop",
    }
    reasons = []
    for key, label in labels.items():
        value, calibrated = deltas[key], thresholds[key]
        if value is None or calibrated is None:
            continue
        # Unusual for a clean batch (calibrated) and large enough to matter (min_effect).
        limit = max(calibrated, verdict["min_effect"][key])
        if value <= limit:
            continue
        severity = "warn"
        if key == "estimated_accuracy_drop" and value >= verdict["retrain_accuracy_drop"]:
            severity = "retrain"
        message = (
            f"{label} {value:.3f} > no-drift limit {limit:.3f} (against the reference at this "
            "batch's activity mix)"
        )
        reasons.append(
            _reason("prediction_drift", severity, message, code=key, value=value, threshold=limit)
        )
    return reasons


def _batch_size_reason(passed: int, min_batch_windows: int) -> dict[str, Any]:
    """The warning that ``passed`` windows are fewer than the verdict is valid for."""
    return _reason(
        "batch_size",
        "warn",
        f"{passed} windows passed the sensor gates, fewer than the "
        f"{min_batch_windows} the drift verdict is valid for"
        + ("" if passed else ": drift not measured"),
        code="batch_too_small",
        value=passed,
        threshold=min_batch_windows,
    )


def downgrade_unconfirmed(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drift findings of a batch below the calibrated minimum: ``retrain`` becomes ``warn``."""
    # Below the calibrated minimum a drift finding is indicative: worth a look, never by
    # itself a reason to retrain.
    return [
        {
            **reason,
            "severity": "warn",
            "message": reason["message"] + " (retrain once confirmed on a full-size batch)",
        }
        if reason["severity"] == "retrain"
        else reason
        for reason in findings
    ]


def overall_verdict(reasons: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The most severe reason's severity (``ok`` without reasons) and the reasons, ranked.

    Most severe first; the batch-size caveat after the findings of the same severity.
    """
    severities = [r["severity"] for r in reasons]
    verdict = max(severities, key=VERDICTS.index) if severities else "ok"
    ranked = sorted(
        reasons, key=lambda r: (-VERDICTS.index(r["severity"]), r["check"] == "batch_size")
    )
    return verdict, ranked


def _verdict_metrics(
    verdict: str,
    quality: dict[str, Any],
    data_drift: dict[str, Any],
    prediction_drift: dict[str, Any],
) -> dict[str, dict[str, float]]:
    """The run's headline figures as MLflow metrics; undefined (None, NaN) ones left out."""
    current = prediction_drift["current"]
    values = {
        "verdict_level": VERDICTS.index(verdict),
        "windows": quality["summary"]["windows"],
        "quarantined_share": quality["summary"]["quarantined_share"],
        "drift_share": data_drift["drift_share"],
        "drifted_features": len(data_drift["drifted_features"]),
        "js_distance": prediction_drift["deltas"]["js_distance"],
        "mean_confidence": current["mean_confidence"],
        "low_confidence_share": current["low_confidence_share"],
        "estimated_accuracy": current["estimated_accuracy"],
    }
    return {
        name: {"value": float(value), "step": 0}
        for name, value in values.items()
        if value is not None and np.isfinite(value)
    }


def decide_verdict(
    quality: dict[str, Any],
    data_drift: dict[str, Any],
    prediction_drift: dict[str, Any],
    behaviour_change: dict[str, Any],
    reference_profile: dict[str, Any],
    monitoring: Monitoring,
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """``ok`` / ``warn`` / ``retrain`` with the reasons behind it; the report and its metrics.

    ``behaviour_change`` is reported in its own section and never changes the verdict.
    """
    rules = monitoring["verdict"]
    calibration = reference_profile["calibration"]
    passed = data_drift["windows"]
    valid = passed >= calibration["min_batch_windows"]
    reasons = _quality_reasons(quality, rules)
    if not valid:
        reasons.append(_batch_size_reason(passed, calibration["min_batch_windows"]))
    if passed >= monitoring["min_class_windows"]:
        findings = _drift_reasons(data_drift, rules) + _prediction_reasons(prediction_drift, rules)
        reasons += findings if valid else downgrade_unconfirmed(findings)
    verdict, reasons = overall_verdict(reasons)
    report = to_builtin(
        {
            "verdict": verdict,
            "reasons": reasons,
            "batch": {
                "windows": quality["summary"]["windows"],
                "passed_quality": passed,
                "calibrated_batch": prediction_drift["calibrated_batch"],
                "min_batch_windows": calibration["min_batch_windows"],
                "valid": valid,
            },
            "quality": quality["summary"],
            "data_drift": data_drift,
            "prediction_drift": prediction_drift,
            "behaviour_change": behaviour_change,
            "reference": {
                "model_source": reference_profile["model_source"],
                "windows": reference_profile["windows"],
                "label_free_accuracy_check": reference_profile["predictions"]["atc"],
                "calibration": {k: v for k, v in calibration.items() if k not in ("per_class",)},
            },
            "rules": rules,
        }
    )
    log = {"ok": logger.info, "warn": logger.warning, "retrain": logger.warning}[verdict]
    log("Monitoring verdict %s: %s", verdict, "; ".join(r["message"] for r in reasons) or "-")
    metrics = _verdict_metrics(verdict, quality, data_drift, prediction_drift)
    metrics["behaviour_findings"] = {"value": float(len(behaviour_change["findings"])), "step": 0}
    return report, metrics


def enforce_verdict(report: dict[str, Any], monitoring: Monitoring, *figures: Any) -> None:
    """Fails the run on ``retrain`` when ``monitoring.fail_on_retrain`` is set."""
    # ``figures`` are unused: taking them as inputs makes this node run after every output
    # of the monitoring run has been saved, so a failed run still leaves its report behind.
    if report["verdict"] == "retrain" and monitoring["fail_on_retrain"]:
        raise RetrainRequiredError(
            "Monitoring verdict is 'retrain' (monitoring.fail_on_retrain is true):\n  "
            + "\n  ".join(r["message"] for r in report["reasons"] if r["severity"] == "retrain")
            + "\nSee data/08_reporting/monitoring_report.json"
        )
