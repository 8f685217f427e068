"""MiniRocket's fixed kernels inside the model (layers.RandomKernelFeatures)."""

from __future__ import annotations

import itertools

import keras
import numpy as np

from har_mlops.layers import RandomKernelFeatures
from har_mlops.pipelines.training.model import build_cnn_bilstm, fit_kernel_thresholds
from tests.pipelines.training import tiny

ARCHITECTURE = tiny.architecture(
    random_kernels={"dilations": 3, "biases": 2, "sample_windows": 50, "seed": 1}
)


def _signals(n: int = 80, window: int = 64) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, window, 6)).astype(np.float32)


def _reference_outputs(layer: RandomKernelFeatures, signals: np.ndarray) -> np.ndarray:
    """The kernels' outputs computed by NumPy, zero padding on both sides, ``[n, t, k]``."""
    mix = keras.ops.convert_to_numpy(layer.channel_mix)
    window = signals.shape[1]
    outputs = []
    for index, rate in enumerate(layer._dilation_rates):
        mixed = signals @ mix[index]  # [n, t, 84]
        half = 4 * rate
        padded = np.pad(mixed, ((0, 0), (half, half), (0, 0)))
        out = np.zeros_like(mixed)
        for tap in range(9):
            out += padded[:, tap * rate : tap * rate + window, :] * layer._kernels[:, tap]
        outputs.append(out)
    return np.concatenate(outputs, axis=-1)


def test_kernels_are_minirockets_84():
    layer = RandomKernelFeatures(dilations=3, biases=2)
    kernels = layer._kernels
    assert kernels.shape == (84, 9)
    assert set(np.unique(kernels)) == {-1.0, 2.0}
    assert np.all((kernels == 2.0).sum(axis=1) == 3) and np.all(kernels.sum(axis=1) == 0)
    positions = {tuple(np.flatnonzero(row == 2.0)) for row in kernels}
    assert positions == set(itertools.combinations(range(9), 3))


def test_features_are_shares_above_fitted_quantiles():
    signals = _signals()
    layer = RandomKernelFeatures(dilations=3, biases=4, seed=3)
    layer.adapt(signals)
    convolved = _reference_outputs(layer, signals)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer._convolved(signals)), convolved, atol=1e-4
    )
    thresholds = keras.ops.convert_to_numpy(layer.thresholds)  # [outputs, biases]
    features = keras.ops.convert_to_numpy(layer(signals))
    n_outputs = convolved.shape[-1]
    expected = np.concatenate(
        [(convolved > thresholds[:, j]).mean(axis=1) for j in range(layer.biases)], axis=-1
    )
    np.testing.assert_allclose(features, expected, atol=1e-6)
    assert features.shape == (len(signals), n_outputs * layer.biases)
    # A threshold at quantile q of the windows it was fitted on leaves a share 1 - q above it.
    levels = (np.arange(1, n_outputs * 4 + 1) * ((np.sqrt(5) + 1) / 2)) % 1
    shares = features.mean(axis=0)
    np.testing.assert_allclose(shares, 1 - levels.reshape(4, n_outputs).ravel(), atol=0.02)


def test_channel_subsets_are_seeded_and_not_all_channels():
    first, again, other = (RandomKernelFeatures(3, 2, seed) for seed in (0, 0, 1))
    for layer in (first, again, other):
        layer.build((None, 64, 6))
    mix = keras.ops.convert_to_numpy(first.channel_mix)
    np.testing.assert_array_equal(mix, keras.ops.convert_to_numpy(again.channel_mix))
    assert not np.array_equal(mix, keras.ops.convert_to_numpy(other.channel_mix))
    per_output = mix.sum(axis=1)
    assert per_output.min() >= 1 and per_output.max() <= 6 and len(np.unique(per_output)) > 2


def test_model_with_random_kernels_fits_thresholds_saves_and_loads(tmp_path):
    signals = _signals()
    model = build_cnn_bilstm(64, 6, 3, ARCHITECTURE)
    layer = model.get_layer("random_kernel_features")
    trainable_before = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    fit_kernel_thresholds(model, signals, sample_windows=50, seed=0)
    assert np.abs(keras.ops.convert_to_numpy(layer.thresholds)).sum() > 0
    # Fixed features: nothing of the layer is trained.
    assert not layer.trainable_weights
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable_before
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(signals, verbose=0), model.predict(signals, verbose=0), atol=1e-6
    )


def test_training_fits_the_thresholds_on_the_training_windows():
    from har_mlops.pipelines.training.nodes import train_model

    train, validation = tiny.separable_windows(window=64)
    model, _ = train_model(
        train,
        validation,
        tiny.IDENTITY_SCALER,
        {},
        ARCHITECTURE,
        tiny.training(epochs=1),
        tiny.FINE_TUNING,
        tiny.LABELS,
    )
    fitted = keras.ops.convert_to_numpy(model.get_layer("random_kernel_features").thresholds)
    expected = RandomKernelFeatures(3, 2, seed=1)
    sample = train["signals"][
        np.random.default_rng(1).choice(len(train["signals"]), 48, replace=False)
    ]
    expected.adapt(sample)
    np.testing.assert_allclose(
        fitted, keras.ops.convert_to_numpy(expected.thresholds), rtol=1e-5, atol=1e-5
    )
