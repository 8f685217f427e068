"""The project's custom Keras layers, registered so that saved models load anywhere.

They live at the package root because loading a model (inference, monitoring, serving) needs
them registered as much as building one (training) does.
"""

from __future__ import annotations

import itertools
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


@keras.saving.register_keras_serializable(package="har_mlops")
class RandomKernelFeatures(keras.layers.Layer):
    """MiniRocket's features inside the model (Dempster et al., KDD 2021), ``[batch, k * biases]``.

    The 84 fixed kernels of length 9 (three weights 2, six weights -1), each at several
    dilations on its own random subset of channels; each output is summarised by the share of
    time steps above ``biases`` thresholds (proportion of positive values) fitted as quantiles
    of the training windows by :meth:`adapt`. A linear model on these features ranks with the
    best classifiers on HAPT, and, being fixed, they do not move with the training seed.
    """

    KERNEL_LENGTH = 9

    def __init__(self, dilations: int = 5, biases: int = 8, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.dilations = dilations
        self.biases = biases
        self.seed = seed
        positions = np.array(list(itertools.combinations(range(self.KERNEL_LENGTH), 3)))
        kernels = -np.ones((len(positions), self.KERNEL_LENGTH), dtype=np.float32)
        kernels[np.arange(len(positions))[:, None], positions] = 2.0
        self._kernels = kernels  # [84, 9]

    def build(self, input_shape):
        window, n_channels = int(input_shape[1]), int(input_shape[2])
        # MiniRocket's dilations: exponentially spaced up to a kernel spanning the window.
        top = np.log2(max((window - 1) / (self.KERNEL_LENGTH - 1), 1.0))
        self._dilation_rates = [
            int(d) for d in np.unique(np.round(2 ** np.linspace(0, top, self.dilations)))
        ]
        n_kernels = len(self._kernels)
        rng = np.random.default_rng(self.seed)
        mix = np.zeros((len(self._dilation_rates), n_channels, n_kernels), dtype=np.float32)
        # Each (dilation, kernel) sums the channels of a random subset (1 up to all of them).
        sizes = np.floor(2 ** rng.uniform(0, np.log2(n_channels + 1), size=mix.shape[::2])).astype(
            int
        )
        for d in range(mix.shape[0]):
            for k in range(n_kernels):
                mix[
                    d, rng.choice(n_channels, size=min(sizes[d, k], n_channels), replace=False), k
                ] = 1
        self.channel_mix = self.add_weight(
            name="channel_mix", shape=mix.shape, initializer="zeros", trainable=False
        )
        self.channel_mix.assign(mix)
        self.thresholds = self.add_weight(
            name="thresholds",
            shape=(len(self._dilation_rates) * n_kernels, self.biases),
            initializer="zeros",
            trainable=False,
        )

    def _convolved(self, inputs):
        """The kernels' outputs, ``[batch, time, dilations * 84]``."""
        depthwise = keras.ops.convert_to_tensor(self._kernels.T[:, :, None])  # [9, 84, 1]
        outputs = []
        for index, rate in enumerate(self._dilation_rates):
            mixed = keras.ops.einsum("btc,ck->btk", inputs, self.channel_mix[index])
            outputs.append(
                keras.ops.depthwise_conv(mixed, depthwise, padding="same", dilation_rate=rate)
            )
        return keras.ops.concatenate(outputs, axis=-1)

    def adapt(self, windows: np.ndarray) -> None:
        """Sets the thresholds to quantiles of each output over ``windows`` (scaled signals),
        at levels spread by the golden ratio as MiniRocket does."""
        if not self.built:
            self.build(windows.shape)
        convolved = keras.ops.convert_to_numpy(self._convolved(windows.astype(np.float32)))
        ordered = np.sort(convolved.reshape(-1, convolved.shape[-1]), axis=0)
        n_values, n_outputs = ordered.shape
        levels = (np.arange(1, n_outputs * self.biases + 1) * ((np.sqrt(5) + 1) / 2)) % 1
        rows = np.round(levels.reshape(self.biases, n_outputs) * (n_values - 1)).astype(int)
        self.thresholds.assign(np.take_along_axis(ordered, rows, axis=0).T)

    def call(self, inputs):
        convolved = self._convolved(inputs)
        # One threshold at a time: [batch, time, outputs] is the largest tensor held.
        shares = [
            keras.ops.mean(keras.ops.cast(convolved > self.thresholds[:, j], "float32"), axis=1)
            for j in range(self.biases)
        ]
        return keras.ops.concatenate(shares, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self._dilation_rates) * len(self._kernels) * self.biases)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "dilations": self.dilations,
            "biases": self.biases,
            "seed": self.seed,
        }
