"""A compiled forward pass with fixed bucket shapes: arbitrary batch sizes, no retracing."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

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
        # The first call of each concrete function still builds its executor: warm them all.
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
