"""Sensor unit conversions to the project's SI convention (m/s^2, rad/s)."""

from __future__ import annotations

import math

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
