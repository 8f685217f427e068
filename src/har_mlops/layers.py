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
