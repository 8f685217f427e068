"""Sensor unit conversions to the project's SI convention (m/s^2, rad/s)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

STANDARD_GRAVITY = 9.80665

# Multiply a value in the declared unit by this factor to get the SI unit.
UNIT_FACTORS: dict[str, dict[str, float]] = {
    "accelerometer": {"m/s^2": 1.0, "g": STANDARD_GRAVITY, "milli_g": STANDARD_GRAVITY / 1000.0},
    "gyroscope": {"rad/s": 1.0, "deg/s": math.pi / 180.0},
}
SI_UNITS = {"accelerometer": "m/s^2", "gyroscope": "rad/s"}


def unit_factor(sensor: str, unit: str) -> float:
    """Returns the factor converting ``unit`` to SI for ``sensor``; rejects unknown units."""
    try:
        return UNIT_FACTORS[sensor][unit]
    except KeyError:
        known = sorted(UNIT_FACTORS.get(sensor, {}))
        raise ValueError(
            f"Unknown {sensor} unit {unit!r}; declare one of {known} in parameters"
        ) from None


def still_windows(
    acc: np.ndarray, acc_magnitude: np.ndarray, still: dict[str, float]
) -> np.ndarray:
    """Windows whose accelerometer ``[n, 3, T]`` barely moves (GGIR-style SD and range limits).

    The limits are in m/s^2 at 1 g and scale with the window's own mean magnitude, so a still
    window stays still under a wrong unit, which is what the gravity check needs to see.
    """
    scale = (acc_magnitude / STANDARD_GRAVITY)[:, None]
    return (acc.std(axis=2) < still["max_std_ms2"] * scale).all(axis=1) & (
        (acc.max(axis=2) - acc.min(axis=2)) < still["max_range_ms2"] * scale
    ).all(axis=1)


def likely_unit_mistake(ratio: float) -> str:
    """Names the declared-vs-actual unit pair whose conversion error best explains ``ratio``."""
    factors = UNIT_FACTORS["accelerometer"]
    guesses = {
        f"data in {actual} declared as {declared}": factors[declared] / factors[actual]
        for actual in factors
        for declared in factors
        if actual != declared
    }
    best = min(guesses, key=lambda k: abs(np.log(guesses[k] / ratio)))
    return best if abs(np.log(guesses[best] / ratio)) < np.log(1.5) else "no unit mix-up fits"


def gravity_at_rest(
    acc_magnitude: np.ndarray, still: np.ndarray, gravity: dict[str, Any]
) -> dict[str, Any]:
    """Median |a| of the still windows (else of all windows) against 1 g, with a unit hint.

    ``acc_magnitude [n]`` is each window's mean acceleration magnitude in m/s^2 as declared,
    ``still [n]`` its stillness; a unit mistake scales every magnitude by its factor.
    """
    use_still = int(still.sum()) >= gravity["min_still_windows"]
    selected = acc_magnitude[still] if use_still else acc_magnitude
    tolerance = gravity["tolerance"] if use_still else gravity["tolerance_moving"]
    ratio = float(np.median(selected)) / STANDARD_GRAVITY if selected.size else float("nan")
    ok = bool(not np.isfinite(ratio) or abs(ratio - 1.0) <= tolerance)
    return {
        "windows_used": int(selected.size),
        "from": "still windows" if use_still else "all windows (too few still ones)",
        "median_magnitude_ms2": round(ratio * STANDARD_GRAVITY, 4) if np.isfinite(ratio) else None,
        "ratio_to_g": round(ratio, 4) if np.isfinite(ratio) else None,
        "ok": ok,
        "hint": None if ok else likely_unit_mistake(ratio),
    }


def stream_gravity(acc_ms2: np.ndarray, window: int, unit_check: dict[str, Any]) -> dict[str, Any]:
    """``gravity_at_rest`` of a raw accelerometer stream ``[n, 3]`` cut into ``window`` samples."""
    window = max(int(window), 2)
    n_windows = len(acc_ms2) // window
    if n_windows == 0:
        blocks = acc_ms2[None].transpose(0, 2, 1)
    else:
        blocks = acc_ms2[: n_windows * window].reshape(n_windows, window, 3).transpose(0, 2, 1)
    magnitude = np.sqrt((blocks**2).sum(axis=1)).mean(axis=1)
    still = still_windows(blocks, magnitude, unit_check["still"])
    return gravity_at_rest(magnitude, still, unit_check["gravity"])
