"""The wide path fitted first as a logistic regression and frozen (training.wide_path)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from har_mlops.pipelines.training.nodes import train_model
from tests.pipelines.training import tiny

LOGISTIC = {"fit": "logistic", "inverse_regularisation": 0.5}


def _wide_weights(model: keras.Model) -> list[np.ndarray]:
    return [
        *model.get_layer("statistics_bn").get_weights(),
        *model.get_layer("wide_logits").get_weights(),
    ]


def _train(seed: int, **training_changes) -> keras.Model:
    train, validation = tiny.separable_windows()
    model, _ = train_model(
        train,
        validation,
        tiny.IDENTITY_SCALER,
        {},
        tiny.architecture(),
        tiny.training(seed=seed, **training_changes),
        tiny.FINE_TUNING,
        tiny.LABELS,
    )
    return model


def test_the_wide_logits_are_the_logistic_regression_and_stay_frozen():
    train, _ = tiny.separable_windows()
    model = _train(seed=5, wide_path=LOGISTIC)
    statistics = keras.Model(model.inputs, model.get_layer("statistics_bn").input)
    features = statistics.predict(train["signals"], verbose=0).astype(np.float64)
    epsilon = model.get_layer("statistics_bn").epsilon
    standardised = (features - features.mean(0)) / np.sqrt(features.var(0) + epsilon)
    # Balanced class weights are equal here: three classes of 16 windows.
    expected = LogisticRegression(C=0.5, max_iter=1000).fit(standardised, train["label_index"])
    wide = keras.Model(model.inputs, model.get_layer("wide_logits").output)
    np.testing.assert_allclose(
        wide.predict(train["signals"], verbose=0),
        expected.decision_function(standardised),
        atol=2e-3,
    )
    assert not model.get_layer("wide_logits").trainable_weights


def test_every_seed_gets_the_same_wide_rule_and_its_own_deep_path():
    first, second = _train(seed=5, wide_path=LOGISTIC), _train(seed=6, wide_path=LOGISTIC)
    for a, b in zip(_wide_weights(first), _wide_weights(second), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(
        first.get_layer("conv0").get_weights()[0], second.get_layer("conv0").get_weights()[0]
    )
    joint = _train(seed=5)
    assert joint.get_layer("wide_logits").trainable_weights


def test_logistic_wide_path_needs_the_window_statistics():
    train, validation = tiny.separable_windows()
    with pytest.raises(ValueError, match="window_statistics"):
        train_model(
            train,
            validation,
            tiny.IDENTITY_SCALER,
            {},
            tiny.architecture(window_statistics=False),
            tiny.training(wide_path=LOGISTIC),
            tiny.FINE_TUNING,
            tiny.LABELS,
        )
