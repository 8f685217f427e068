"""The device's orientation from gravity: each class's mean acceleration, and the rotation
that takes one device frame onto another.

A model bundle carries its training windows' class gravity (in its contract); a fine-tuning
run on recordings from a device worn another way can start its input adapter at the
rotation that takes the user's class gravity onto the bundle's, instead of at the identity.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ACC = slice(0, 3)
GYRO = slice(3, 6)


def class_gravity(signals: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """The mean accelerometer vector (the contract's unit) of each class's windows
    ``[n, window, 6]``, by class name, in sorted order."""
    window_means = signals[:, :, ACC].mean(axis=1, dtype=np.float64)
    names, index = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    sums = np.zeros((len(names), 3))
    np.add.at(sums, index, window_means)
    counts = np.bincount(index, minlength=len(names))[:, None]
    return {str(name): [float(v) for v in row] for name, row in zip(names, sums / counts)}


def _largest_angle_degrees(directions: np.ndarray) -> float:
    """The largest angle between any two of the vectors ``[k, 3]``."""
    units = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    return float(np.degrees(np.arccos(np.clip(units @ units.T, -1.0, 1.0)).max()))


def rotation_between(
    user_gravity: dict[str, list[float]],
    reference_gravity: dict[str, list[float]],
    min_angle_degrees: float,
) -> tuple[np.ndarray | None, str]:
    """The rotation (3 x 3) that takes the user's class gravity onto the reference's over the
    classes both name (Kabsch), or None when they do not fix one; and why, in words.

    Two directions at least ``min_angle_degrees`` apart are needed: classes whose gravity is
    (nearly) the same direction leave the turn about that direction undetermined.
    """
    shared = sorted(set(user_gravity) & set(reference_gravity))
    if len(shared) < 2:
        return None, f"{len(shared)} class(es) shared with the bundle, 2 needed"
    user = np.array([user_gravity[name] for name in shared])
    reference = np.array([reference_gravity[name] for name in shared])
    spread = _largest_angle_degrees(reference)
    if spread < min_angle_degrees:
        return None, (
            f"the shared classes' gravity directions are at most {spread:.1f} degrees apart, "
            f"{min_angle_degrees:g} needed"
        )
    u, _, vt = np.linalg.svd(user.T @ reference)
    # A reflection is not a way to wear a device: force a proper rotation.
    sign = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rotation = vt.T @ np.diag([1.0, 1.0, sign]) @ u.T
    angle = float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1.0, 1.0))))
    return rotation, f"{angle:.1f} degrees from {len(shared)} shared classes ({', '.join(shared)})"


def adapter_weights(rotation: np.ndarray, scaler: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The kernel ``[6, 6]`` and bias ``[6]`` of a per-time-step linear map on scaled signals
    that turns both sensors by ``rotation`` in physical units: scaled in, scaled out."""
    turn = np.zeros((6, 6))
    turn[ACC, ACC] = rotation
    turn[GYRO, GYRO] = rotation
    mean = np.asarray(scaler["mean"], dtype=np.float64)
    std = np.asarray(scaler["std"], dtype=np.float64)
    # Row vectors: raw = scaled * std + mean, turned = raw @ turn.T, out = (turned - mean) / std.
    kernel = (std[:, None] * turn.T) / std[None, :]
    bias = (mean @ turn.T - mean) / std
    return kernel.astype(np.float32), bias.astype(np.float32)
