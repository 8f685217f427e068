"""The device's orientation from class gravity: class means, the turn between two devices and
the adapter that applies it to scaled signals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from har_mlops.contract import CHANNELS, scale_signals
from har_mlops.orientation import adapter_weights, class_gravity, rotation_between

GRAVITY = {
    "LAYING": [0.6, 6.4, 6.1],
    "SITTING": [9.3, 1.5, 1.5],
    "STANDING": [9.8, -1.5, -0.4],
}


def test_class_gravity_is_the_mean_acceleration_of_each_class():
    signals = np.zeros((3, 4, 6), dtype=np.float32)
    signals[0, :, :3] = [1.0, 2.0, 3.0]
    signals[1, :, :3] = [3.0, 2.0, 1.0]
    signals[2, :2, :3] = [0.0, 0.0, 8.0]
    signals[:, :, 3:] = 5.0  # the gyroscope plays no part
    gravity = class_gravity(signals, np.array(["B", "B", "A"]))
    assert list(gravity) == ["A", "B"]
    np.testing.assert_allclose(gravity["A"], [0.0, 0.0, 4.0])
    np.testing.assert_allclose(gravity["B"], [2.0, 2.0, 2.0])


@pytest.mark.parametrize("degrees", [[90, 0, 45], [0, 180, 0], [10, -30, 120]])
def test_rotation_between_recovers_the_turn_of_the_device(degrees):
    turn = Rotation.from_euler("xyz", degrees, degrees=True).as_matrix()
    user = {name: list(turn @ np.array(g)) for name, g in GRAVITY.items()}
    user["NAIL_BITING"] = [0.0, 0.0, 9.8]  # not in the bundle: not used
    rotation, how = rotation_between(user, GRAVITY, 20.0)
    np.testing.assert_allclose(rotation, turn.T, atol=1e-9)
    assert "from 3 shared classes (LAYING, SITTING, STANDING)" in how


def test_rotation_between_needs_two_classes_that_fix_a_turn():
    assert rotation_between({"SITTING": [1, 0, 0]}, GRAVITY, 20.0)[0] is None
    upright = {k: GRAVITY[k] for k in ("SITTING", "STANDING")}
    rotation, how = rotation_between(upright, upright, 30.0)
    assert rotation is None
    assert "degrees apart, 30 needed" in how
    assert rotation_between(upright, upright, 10.0)[0] is not None


def test_adapter_weights_turn_scaled_signals_as_the_raw_ones():
    rng = np.random.default_rng(0)
    scaler = {"channels": CHANNELS, "mean": rng.normal(size=6), "std": rng.uniform(0.5, 4, 6)}
    turn = Rotation.from_euler("xyz", [30, 60, -20], degrees=True).as_matrix()
    raw = rng.normal(size=(5, 16, 6)).astype(np.float32)
    turned = np.concatenate([raw[..., :3] @ turn.T, raw[..., 3:] @ turn.T], axis=-1)
    kernel, bias = adapter_weights(turn, scaler)
    np.testing.assert_allclose(
        scale_signals(raw, scaler) @ kernel + bias, scale_signals(turned, scaler), atol=1e-5
    )
