"""The one forward pass: a compiled function per fixed batch shape, for every caller.

Training evaluation, batch inference, monitoring's reference predictions and the served model
all compute class probabilities through :class:`CompiledForward`, so they cannot disagree on
how windows are scaled, padded or batched.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from har_mlops.contract import scale_signals

logger = logging.getLogger(__name__)


def power_of_two_buckets(min_bucket: int, max_bucket: int) -> list[int]:
    """Powers of two from ``min_bucket`` up to and including ``max_bucket`` (itself added)."""
    if min_bucket < 1 or max_bucket < min_bucket:
        raise ValueError(f"Need 1 <= min_bucket <= max_bucket, got {min_bucket}, {max_bucket}")
    buckets = []
    size = 1
    while size < max_bucket:
        if size >= min_bucket:
            buckets.append(size)
        size *= 2
    return [*buckets, int(max_bucket)]


class CompiledForward:
    """``model(x, training=False)`` through one concrete function per bucket size.

    Keras' ``model.predict`` costs ~40 ms a call (it builds a data pipeline every time) and a
    ``tf.function`` retraces (~0.3 s) for every new input shape, so each batch is padded up to
    the next bucket and every bucket is traced once, at construction.
    """

    def __init__(
        self,
        model: Any,
        window_size: int,
        n_channels: int,
        buckets: list[int],
        jit_compile: bool = False,
        warm_up: bool = True,
    ):
        import tensorflow as tf

        self._tf = tf
        self.buckets = sorted({int(b) for b in buckets})
        self.window_size = int(window_size)
        self.n_channels = int(n_channels)
        self.n_classes = int(model.output_shape[-1])
        forward = tf.function(lambda x: model(x, training=False), jit_compile=jit_compile)
        started = time.perf_counter()
        self._functions = {
            size: forward.get_concrete_function(
                tf.TensorSpec([size, self.window_size, self.n_channels], tf.float32)
            )
            for size in self.buckets
        }
        # Tracing counts calls of the Python function: after construction it must stay put.
        self.traces = forward.experimental_get_tracing_count()
        self._forward = forward
        if warm_up:
            # The first call of each concrete function still builds its executor: warm them
            # all, so that no served request pays for it.
            for size, function in self._functions.items():
                function(tf.zeros([size, self.window_size, self.n_channels], tf.float32))
        logger.info(
            "Compiled the forward pass for batch buckets %s in %.1f s",
            self.buckets,
            time.perf_counter() - started,
        )

    def bucket_for(self, n: int) -> int:
        """The smallest bucket holding ``n`` windows (the largest bucket if none does)."""
        for size in self.buckets:
            if size >= n:
                return size
        return self.buckets[-1]

    def __call__(self, scaled: np.ndarray) -> np.ndarray:
        """Class probabilities ``[n, classes]`` for already scaled windows ``[n, window, ch]``."""
        n = len(scaled)
        if n == 0:
            return np.empty((0, self.n_classes), dtype=np.float32)
        largest = self.buckets[-1]
        parts = []
        for start in range(0, n, largest):
            chunk = np.asarray(scaled[start : start + largest], dtype=np.float32)
            size = self.bucket_for(len(chunk))
            padded = np.pad(chunk, ((0, size - len(chunk)), (0, 0), (0, 0)))
            parts.append(self._functions[size](self._tf.constant(padded)).numpy()[: len(chunk)])
        return np.concatenate(parts)

    def predict_signals(self, signals: np.ndarray, scaler: dict[str, Any]) -> np.ndarray:
        """Class probabilities for windows in SI units, scaled one largest bucket at a time.

        Scaling batch by batch means a day of windows is never held twice.
        """
        step = self.buckets[-1]
        if len(signals) == 0:
            return np.empty((0, self.n_classes), dtype=np.float32)
        return np.concatenate(
            [
                self(scale_signals(signals[i : i + step], scaler))
                for i in range(0, len(signals), step)
            ]
        )

    def tracing_count(self) -> int:
        """How often the forward function has been traced (one per bucket, at construction)."""
        return int(self._forward.experimental_get_tracing_count())


def predict_probabilities(
    model: Any,
    signals: np.ndarray,
    scaler: dict[str, Any],
    batch_size: int,
    jit_compile: bool = False,
) -> np.ndarray:
    """Class probabilities ``[n, classes]`` for windows ``[n, window, ch]`` in SI units.

    One fixed batch shape (the last batch padded), so XLA compiles once.
    """
    n, window_size, n_channels = signals.shape
    if n == 0:
        return np.empty((0, int(model.output_shape[-1])), dtype=np.float32)
    forward = CompiledForward(
        model, window_size, n_channels, [min(int(batch_size), n)], jit_compile, warm_up=False
    )
    return forward.predict_signals(signals, scaler)
