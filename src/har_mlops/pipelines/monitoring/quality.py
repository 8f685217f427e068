"""Sensor-fault gates: which windows are unfit for drift statistics, and why.

Window gates look at the signals (non-finite values, flat-line stretches, clipping);
recording gates look at the validation report (rejected recordings, sampling rate, repaired
share, gaps) and at gravity (the acceleration magnitude of still windows must be ~9.81 m/s^2:
it tells a wrong declared unit). A failing window gets the reason code of the first failing
gate in ``REASONS`` order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from har_mlops.units import gravity_at_rest, still_windows

# Gate order: the first failing gate names the window's quarantine reason.
REASONS = ("non_finite", "sampling_rate", "repaired_share", "gravity", "flat_line", "clipping")
ACC, GYRO = slice(0, 3), slice(3, 6)
# What window_gates returns per window; the prediction log stores the same values.
GATE_KEYS = ("non_finite", "flat_line", "flat_channels", "clipping", "still", "acc_magnitude")


# The gates reduce over time; on channel-major arrays [n, 6, T] those reductions run over
# contiguous memory, ~10x faster than over the middle axis of [n, T, 6].


def has_flat_run(channels: np.ndarray, tolerance: np.ndarray, min_samples: int) -> np.ndarray:
    """``[n, 6]``: the channel holds ``min_samples`` unchanged samples in a row somewhere."""
    same = np.abs(np.diff(channels, axis=2)) <= tolerance[:, None]
    steps = min_samples - 1
    if steps < 1 or steps > same.shape[2]:
        return np.full(channels.shape[:2], steps < 1)
    count = np.cumsum(same, axis=2, dtype=np.int16)
    window = count[:, :, steps - 1 :].copy()
    window[:, :, 1:] -= count[:, :, :-steps]
    return (window == steps).any(axis=2)


def clipped_samples(channels: np.ndarray, min_level: np.ndarray, tolerance: float) -> np.ndarray:
    """``[n, 6]``: samples sitting on the window's extreme, where that extreme is large."""
    magnitude = np.abs(channels)
    extreme = magnitude.max(axis=2, keepdims=True)
    at_extreme = (magnitude >= extreme * (1.0 - tolerance)).sum(axis=2)
    return np.where(extreme[:, :, 0] >= min_level, at_extreme, 0)


def window_gates(signals: np.ndarray, quality: dict[str, Any]) -> dict[str, np.ndarray]:
    """Failure masks of the signal-only gates for windows ``[n, T, 6]``, plus still flags."""
    channels = np.ascontiguousarray(signals.transpose(0, 2, 1))
    finite = np.isfinite(channels).all(axis=(1, 2))
    if not finite.all():
        channels = np.where(np.isfinite(channels), channels, 0.0).astype(channels.dtype)
    flat = quality["flat_line"]
    tolerance = np.array([flat["tolerance_ms2"]] * 3 + [flat["tolerance_rads"]] * 3)
    flat_channels = has_flat_run(channels, tolerance.astype(channels.dtype), flat["min_samples"])
    clip = quality["clipping"]
    levels = np.array([clip["min_level_ms2"]] * 3 + [clip["min_level_rads"]] * 3)
    clipped = clipped_samples(channels, levels, clip["tolerance"])
    acc = channels[:, ACC, :]
    acc_magnitude = np.sqrt((acc**2).sum(axis=1)).mean(axis=1)
    return {
        "non_finite": ~finite,
        "flat_line": flat_channels.any(axis=1),
        "flat_channels": flat_channels,
        "clipping": (clipped >= clip["min_samples"]).any(axis=1),
        "still": still_windows(acc, acc_magnitude, quality["still"]) & finite,
        "acc_magnitude": acc_magnitude,
    }


def gravity_check(
    recording_ids: np.ndarray,
    still: np.ndarray,
    acc_magnitude: np.ndarray,
    gravity: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Per recording: median |a| of still windows (else of all windows) against 9.81 m/s^2."""
    return {
        str(rec): gravity_at_rest(
            acc_magnitude[recording_ids == rec], still[recording_ids == rec], gravity
        )
        for rec in np.unique(recording_ids)
    }


def recording_gates(
    validation_report: dict[str, Any], quality: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Per recording: problems the validation report reveals, with their reason codes."""
    declared = quality["declared_rates_hz"]
    results: dict[str, dict[str, Any]] = {}
    for entry in validation_report.get("recordings", []):
        issues = []
        if entry.get("status") == "rejected":
            for problem in entry.get("problems", []):
                if problem["action"] == "rejected":
                    issues.append(
                        {
                            "reason": "recording_rejected",
                            "quarantine": False,
                            "detail": f"{problem['file']}: {problem['problem']}",
                        }
                    )
        for stream, stats in entry.get("streams", {}).items():
            rate, expected = stats.get("observed_rate_hz"), declared.get(stream)
            if rate and expected and abs(rate / expected - 1.0) > quality["rate_tolerance"]:
                issues.append(
                    {
                        "reason": "sampling_rate",
                        "quarantine": True,
                        "detail": f"{stream}: observed {rate:g} Hz, declared {expected:g} Hz",
                    }
                )
            rows = stats.get("rows") or 0
            repaired = sum(
                p["rows_affected"]
                for p in entry.get("problems", [])
                if p["action"] == "repaired" and p["file"] == stats.get("file")
            )
            if rows and repaired / rows > quality["max_repaired_share"]:
                issues.append(
                    {
                        "reason": "repaired_share",
                        "quarantine": True,
                        "detail": f"{stream}: {repaired} of {rows} rows repaired or dropped",
                    }
                )
            if stats.get("longest_gap_s", 0.0) > quality["max_gap_s"]:
                issues.append(
                    {
                        "reason": "gaps",
                        "quarantine": False,
                        "detail": f"{stream}: {stats['gaps']} gap(s), longest "
                        f"{stats['longest_gap_s']} s",
                    }
                )
        results[str(entry["recording_id"])] = {"status": entry.get("status"), "issues": issues}
    return results


def quarantine_reasons(
    recording_ids: np.ndarray,
    gates: dict[str, np.ndarray],
    gravity: dict[str, dict[str, Any]],
    recordings: dict[str, dict[str, Any]],
) -> np.ndarray:
    """One reason code per window (``""`` = passed), the first failing gate in REASONS order."""
    failing = {
        "non_finite": gates["non_finite"],
        "flat_line": gates["flat_line"],
        "clipping": gates["clipping"],
        "gravity": np.isin(recording_ids, [r for r, g in gravity.items() if not g["ok"]]),
    }
    for code in ("sampling_rate", "repaired_share"):
        bad = [
            rec
            for rec, result in recordings.items()
            if any(i["reason"] == code and i["quarantine"] for i in result["issues"])
        ]
        failing[code] = np.isin(recording_ids, bad)
    reasons = np.full(len(recording_ids), "", dtype=object)
    for code in reversed(REASONS):
        reasons[failing[code]] = code
    return reasons.astype(str)
