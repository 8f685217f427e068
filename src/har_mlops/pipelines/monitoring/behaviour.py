"""Behaviour change: what participants do differently, reported for the researcher.

Two comparisons, neither of which ever sets ``warn`` or ``retrain``:

- the batch's predicted activity mix against the reference's (the model's test subjects),
  reported when the Jensen-Shannon distance exceeds its calibrated no-drift limit and
  ``behaviour.min_js_distance``;
- each participant's valid days (``daily_activity`` of the inference run) against their own
  earlier valid days: an activity's share of worn time on a day is a change when it differs
  from the median of the participant's last ``baseline_days`` valid days by at least
  ``min_share_change`` and by at least ``robust_z`` robust standard deviations
  (1.4826 x median absolute deviation) of those days.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd

from .parameters import Monitoring
from .reference import to_builtin

logger = logging.getLogger(__name__)

# Median absolute deviation to standard deviation for normally distributed data.
MAD_TO_SD = 1.4826


def class_mix_change(
    prediction_drift: dict[str, Any], min_js_distance: float, min_windows: int
) -> dict[str, Any]:
    """The batch's predicted activity mix against the reference's, and whether it changed."""
    current = prediction_drift["current"]["class_mix"]
    reference = prediction_drift["reference"]["class_mix"]
    distance = prediction_drift["deltas"]["js_distance"]
    calibrated = prediction_drift["thresholds"]["js_distance"]
    limit = max(calibrated if calibrated is not None else 0.0, min_js_distance)
    judged = prediction_drift["windows"] >= min_windows and distance is not None
    changed = bool(judged and np.isfinite(distance) and distance > limit)
    moved = sorted(current, key=lambda c: -abs(current[c] - reference[c]))
    return {
        "windows": prediction_drift["windows"],
        "js_distance": distance,
        "limit": limit,
        "changed": changed,
        "reference": reference,
        "current": current,
        "moved": [
            {"activity": c, "reference": reference[c], "current": current[c]} for c in moved[:3]
        ],
    }


def _robust_changes(
    shares: np.ndarray, valid_before: np.ndarray, behaviour: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per day ``[D]`` and activity ``[C]``: baseline median, robust SD, z and the change flag.

    ``shares [D, C]`` are one participant's valid days in date order; ``valid_before [D]`` the
    number of earlier valid days. Days with fewer than ``min_baseline_days`` earlier ones get
    NaN and no flag.
    """
    days, n_classes = shares.shape
    window = behaviour["baseline_days"]
    # [D, window, C]: the previous ``window`` days of each day, NaN where there is none.
    padded = np.vstack([np.full((window, n_classes), np.nan), shares])
    index = np.arange(days)[:, None] + np.arange(window)[None, :]
    previous = padded[index]
    assessed = valid_before >= behaviour["min_baseline_days"]
    with warnings.catch_warnings():
        # All-NaN slices (days without a baseline) are expected here.
        warnings.simplefilter("ignore", category=RuntimeWarning)
        median = np.nanmedian(np.where(assessed[:, None, None], previous, np.nan), axis=1)
        sd = MAD_TO_SD * np.nanmedian(np.abs(previous - median[:, None, :]), axis=1)
    change = shares - median
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, np.abs(change) / sd, np.where(np.abs(change) > 0, np.inf, 0.0))
    flag = (
        assessed[:, None]
        & (np.abs(change) >= behaviour["min_share_change"])
        & (z >= behaviour["robust_z"])
    )
    return median, sd, z, flag


def participant_day_changes(
    daily_activity: pd.DataFrame, classes: list[str], behaviour: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Per participant: their valid days' activity shares and the days that changed."""
    if daily_activity.empty and not len(daily_activity.columns):
        # No daily table at all (served traffic has no days): no participant to assess.
        return {}
    columns = [f"minutes_{c}" for c in classes]
    missing = [
        c for c in ["subject_id", "date", "wear_minutes", *columns] if c not in daily_activity
    ]
    if missing:
        raise ValueError(
            f"daily_activity lacks the columns {missing} for the classes {classes}: run "
            "`kedro run --pipelines inference` with this model first"
        )
    participants = {}
    for subject, days in daily_activity.sort_values(["subject_id", "date"]).groupby(
        "subject_id", sort=True
    ):
        wear = days["wear_minutes"].to_numpy(float)
        valid = wear >= behaviour["min_wear_minutes"]
        minutes = days[columns].to_numpy(float)[valid]
        shares = minutes / wear[valid][:, None]
        dates = days["date"].astype(str).to_numpy()[valid]
        median, sd, z, flag = _robust_changes(shares, np.arange(valid.sum()), behaviour)
        median_minutes = median * wear[valid][:, None]
        changes = [
            {
                "date": dates[d],
                "activity": classes[c],
                "minutes": minutes[d, c],
                "expected_minutes": median_minutes[d, c],
                "share": shares[d, c],
                "baseline_share": median[d, c],
                "robust_z": z[d, c],
                "direction": "more" if shares[d, c] > median[d, c] else "less",
            }
            for d, c in zip(*np.nonzero(flag))
        ]
        participants[str(subject)] = {
            "days": int(len(days)),
            "valid_days": int(valid.sum()),
            "assessed_days": int((np.arange(valid.sum()) >= behaviour["min_baseline_days"]).sum()),
            "dates": dates.tolist(),
            "wear_minutes": wear[valid].tolist(),
            "shares": {c: shares[:, i].tolist() for i, c in enumerate(classes)},
            "changes": changes,
        }
    return participants


def _findings(mix: dict[str, Any], participants: dict[str, dict[str, Any]]) -> list[str]:
    """One sentence per change, for the log and the top of the section."""
    findings = []
    if mix["changed"]:
        findings.append(
            f"Activity mix differs from the reference (Jensen-Shannon distance "
            f"{mix['js_distance']:.3f} > {mix['limit']:.3f}): "
            + ", ".join(
                f"{m['activity']} {m['reference']:.0%} -> {m['current']:.0%}" for m in mix["moved"]
            )
        )
    for subject, result in participants.items():
        for change in result["changes"]:
            findings.append(
                f"Participant {subject} on {change['date']}: {change['direction']} "
                f"{change['activity']} ({change['minutes']:.0f} min, "
                f"{change['share']:.0%} of worn time; their earlier days "
                f"{change['expected_minutes']:.0f} min, {change['baseline_share']:.0%})"
            )
    return findings


def assess_behaviour(
    prediction_drift: dict[str, Any],
    daily_activity: pd.DataFrame,
    reference_profile: dict[str, Any],
    monitoring: Monitoring,
) -> dict[str, Any]:
    """Activity mix vs the reference and each participant's days vs their own earlier days."""
    behaviour = monitoring["behaviour"]
    mix = class_mix_change(
        prediction_drift, behaviour["min_js_distance"], monitoring["min_class_windows"]
    )
    participants = participant_day_changes(
        daily_activity, list(reference_profile["class_names"]), behaviour
    )
    findings = _findings(mix, participants)
    assessed = sum(p["assessed_days"] for p in participants.values())
    logger.info(
        "Behaviour: %d finding(s) (activity mix %s; %d participant-days assessed against "
        "the participant's earlier days)%s",
        len(findings),
        "changed" if mix["changed"] else "as the reference",
        assessed,
        "".join(f"\n  {f}" for f in findings[:10]),
    )
    return to_builtin(
        {
            "findings": findings,
            "class_mix": mix,
            "participants": participants,
            "assessed_days": assessed,
            "rule": behaviour,
            "note": "Behaviour change is a finding for the researcher; it never sets the "
            "verdict (docs/monitoring.md, 'Behaviour change').",
        }
    )
