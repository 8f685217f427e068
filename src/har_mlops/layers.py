"""The project's custom Keras layers, registered so that saved models load anywhere.

They live at the package root because loading a model (inference, monitoring, serving) needs
them registered as much as building one (training) does.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="har_mlops")
class WindowStatistics(keras.layers.Layer):
    """Per-channel window mean and log standard deviation, ``[batch, 2 * channels]``.

    The mean carries the device's orientation to gravity; the log spread carries the
    micro-motion that separates standing (postural sway) from sitting far more consistently
    across people than orientation does.
    """

    def __init__(self, epsilon: float = 1e-3, correlations: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.correlations = correlations

    def call(self, inputs):
        mean = keras.ops.mean(inputs, axis=1)
        std = keras.ops.std(inputs, axis=1)
        parts = [mean, keras.ops.log(std + self.epsilon)]
        if self.correlations:
            # Pairwise correlation of the channels (upper triangle): how the axes move
            # together, which does not depend on how the device sits on the body.
            centred = (inputs - mean[:, None, :]) / (std[:, None, :] + self.epsilon)
            matrix = keras.ops.einsum("btc,btd->bcd", centred, centred) / inputs.shape[1]
            n = inputs.shape[-1]
            rows, cols = np.triu_indices(n, k=1)
            flat = keras.ops.reshape(matrix, (-1, n * n))
            parts.append(keras.ops.take(flat, rows * n + cols, axis=1))
        return keras.ops.concatenate(parts, axis=-1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        return {**config, "epsilon": self.epsilon, "correlations": self.correlations}


@keras.saving.register_keras_serializable(package="har_mlops")
class WindowSpectrum(keras.layers.Layer):
    """Per-channel log power in ``bands`` frequency bands of the window, ``[batch, bands * ch]``.

    Cadence and the harmonics of the gait separate walking from stair walking by frequency,
    which a few convolution layers only see through their short kernels. The bands split the
    non-zero frequencies geometrically: gait energy sits in the lowest few hertz.
    """

    def __init__(self, bands: int = 8, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.bands = bands
        self.epsilon = epsilon

    def build(self, input_shape):
        window = int(input_shape[1])
        n_bins = window // 2 + 1
        edges = np.unique(np.geomspace(1, n_bins, self.bands + 1).astype(int))
        pooling = np.zeros((n_bins, len(edges) - 1), dtype=np.float32)
        for band, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
            pooling[low:high, band] = 1.0 / (high - low)
        self._pooling = pooling
        self._n_bands = pooling.shape[1]

    def call(self, inputs):
        centred = inputs - keras.ops.mean(inputs, axis=1, keepdims=True)
        real, imag = keras.ops.rfft(keras.ops.transpose(centred, (0, 2, 1)))
        power = real * real + imag * imag  # [batch, channels, bins]
        banded = keras.ops.matmul(power, keras.ops.convert_to_tensor(self._pooling))
        return keras.ops.reshape(
            keras.ops.log(banded + self.epsilon), (-1, inputs.shape[-1] * self._n_bands)
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1] * self._n_bands)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bands": self.bands, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="har_mlops")
class CentreWindow(keras.layers.Layer):
    """Each channel minus its window mean: the signal without the device's orientation.

    Fed to the deep path so that orientation (posture: sitting vs standing) reaches the logits
    only through the linear wide path; the deep path left with it fits the training subjects'
    own way of wearing the device, which does not carry over to new people.
    """

    def call(self, inputs):
        return inputs - keras.ops.mean(inputs, axis=1, keepdims=True)
