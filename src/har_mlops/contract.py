"""The model's input contract: channels, classes, units, scaling, and the check against it.

Every pipeline and the served model import these from here, so that what a model was trained
on and what it is fed cannot drift apart in two copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from har_mlops.units import SI_UNITS

# The model's input schema: order matters and is part of the preprocessing contract.
CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
STREAM_CHANNELS = {"accelerometer": CHANNELS[:3], "gyroscope": CHANNELS[3:]}
CONTRACT_UNITS = {"acc": SI_UNITS["accelerometer"], "gyro": SI_UNITS["gyroscope"]}


class ContractMismatchError(ValueError):
    """The data or configuration does not honour the model's preprocessing contract."""


def class_names(labels: Any) -> list[str]:
    """The ordered class names of the configured class set."""
    class_sets = _get(labels, "class_sets")
    class_set = _get(labels, "class_set")
    try:
        return list(class_sets[class_set])
    except (KeyError, TypeError):
        raise ValueError(
            f"labels.class_set {class_set!r} is not one of {sorted(class_sets or {})}"
        ) from None


def _get(group: Any, key: str) -> Any:
    """A key of a parameter group, typed (attribute) or plain (mapping)."""
    return group.get(key) if isinstance(group, dict) else getattr(group, key, None)


def scale_signals(signals: np.ndarray, scaler: dict[str, Any]) -> np.ndarray:
    """Standardises windows ``[n, window, 6]`` with the fitted per-channel statistics."""
    if list(scaler["channels"]) != CHANNELS:
        raise ValueError(f"Scaler channels {scaler['channels']} differ from {CHANNELS}")
    mean = np.asarray(scaler["mean"], dtype=np.float32)
    std = np.asarray(scaler["std"], dtype=np.float32)
    return (signals.astype(np.float32, copy=False) - mean) / std


def contract_scaler(contract: dict[str, Any]) -> dict[str, Any]:
    """The scaler a contract carries, in the form :func:`scale_signals` takes."""
    return {"channels": CHANNELS, **contract["scaler"]}


def build_contract(
    scaler: dict[str, Any],
    window_size: int,
    overlap: float,
    target_rate_hz: float,
    classes: list[str],
    class_gravity: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    """The preprocessing contract a model needs its input to honour; with ``class_gravity``
    (each class's mean acceleration in its training windows), the device orientation it was
    trained on, which fine-tuning aligns another device's recordings to."""
    contract = {
        "class_names": list(classes),
        "channels": list(CHANNELS),
        "units": dict(CONTRACT_UNITS),
        "target_rate_hz": float(target_rate_hz),
        "window_size": int(window_size),
        "overlap": float(overlap),
        "scaler": {"mean": list(scaler["mean"]), "std": list(scaler["std"])},
    }
    if class_gravity is not None:
        contract["class_gravity"] = {name: list(v) for name, v in class_gravity.items()}
    return contract


def contract_mismatches(
    contract: dict[str, Any],
    window_shape: tuple[int, int],
    window_size: int,
    overlap: float,
    target_rate_hz: float,
    classes: list[str],
) -> list[str]:
    """What in the windows ``[window, channels]`` or the configuration breaks ``contract``."""
    samples, n_channels = window_shape
    observed = {
        "window_size": [int(window_size), int(samples)],
        "overlap": [float(overlap)],
        "target_rate_hz": [float(target_rate_hz)],
        "channels": [list(CHANNELS[:n_channels]) if n_channels == len(CHANNELS) else n_channels],
        "units": [dict(CONTRACT_UNITS)],
        "class_names": [list(classes)],
    }
    mismatches = [
        f"{field}: model expects {contract[field]!r}, data/configuration has {value!r}"
        for field, values in observed.items()
        for value in values
        if value != contract[field]
    ]
    return list(dict.fromkeys(mismatches))
