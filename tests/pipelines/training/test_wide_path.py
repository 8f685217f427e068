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


def test_two_classes_give_the_logistic_regressions_probabilities():
    from har_mlops.pipelines.training.model import build_cnn_bilstm, fit_wide_path_logistic

    train, _ = tiny.separable_windows()
    keep = train["label_index"] < 2
    signals, labels = train["signals"][keep], train["label_index"][keep]
    model = build_cnn_bilstm(32, 6, 2, tiny.architecture())
    fit_wide_path_logistic(model, signals, labels, np.ones(len(labels)), 0.5)
    statistics = keras.Model(model.inputs, model.get_layer("statistics_bn").input)
    features = statistics.predict(signals, verbose=0).astype(np.float64)
    epsilon = model.get_layer("statistics_bn").epsilon
    standardised = (features - features.mean(0)) / np.sqrt(features.var(0) + epsilon)
    expected = LogisticRegression(C=0.5, max_iter=1000).fit(standardised, labels)
    wide = keras.Model(model.inputs, model.get_layer("wide_logits").output)
    logits = wide.predict(signals, verbose=0)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.softmax(logits)),
        expected.predict_proba(standardised),
        atol=1e-3,
    )
