"""The 1D-CNN-BiLSTM architecture and its training-time data feed."""

from __future__ import annotations

import logging
import math
from typing import Any

import keras
import numpy as np

from har_mlops.layers import (
    CentreWindow,
    RandomKernelFeatures,
    WindowSpectrum,
    WindowStatistics,
)

from .parameters import Architecture


def build_cnn_bilstm(
    window_size: int,
    n_channels: int,
    n_classes: int,
    architecture: Architecture,
    name: str = "cnn_bilstm",
) -> keras.Model:
    """Convolution blocks, a bidirectional LSTM and a softmax head, sized by parameters."""
    inputs = keras.Input(shape=(window_size, n_channels), name="signals")
    x = inputs
    if architecture.get("deep_path_input", "raw") == "centred":
        x = CentreWindow(name="centred_signals")(x)
    kernel = architecture.get("gravity_split_kernel")
    if kernel:
        # Low-pass (moving average) = gravity and slow posture; the rest = body motion. The
        # split the UCI HAR authors make with filters, here inside the model so that training
        # and serving share it.
        slow = keras.layers.AveragePooling1D(kernel, strides=1, padding="same", name="slow")(x)
        fast = keras.layers.Subtract(name="fast")([x, slow])
        x = keras.layers.Concatenate(name="split_signals")([x, slow, fast])
    for i, (filters, kernel) in enumerate(
        zip(architecture["conv_filters"], architecture["conv_kernel_sizes"])
    ):
        x = keras.layers.Conv1D(filters, kernel, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i}")(x)
        if i in architecture.get("pool_after", []):
            x = keras.layers.MaxPooling1D(architecture["pool_size"], name=f"pool{i}")(x)
    x = keras.layers.Dropout(architecture["dropout"], name="conv_dropout")(x)
    x = keras.layers.Bidirectional(
        keras.layers.LSTM(architecture["lstm_units"], return_sequences=True), name="bilstm"
    )(x)
    # Average and max over time: the activity is a property of the whole window.
    pooled = [keras.layers.GlobalAveragePooling1D()(x), keras.layers.GlobalMaxPooling1D()(x)]
    x = keras.layers.Concatenate(name="pool_time")(pooled)
    x = keras.layers.Dropout(architecture["dropout"], name="head_dropout")(x)
    x = keras.layers.Dense(architecture["dense_units"], activation="relu", name="dense")(x)
    logits = keras.layers.Dense(n_classes, name="deep_logits")(x)
    if architecture.get("window_statistics", False):
        # Wide path: a linear model on window statistics added to the deep logits. Sitting vs
        # standing is decided by orientation and micro-motion, and a linear rule on them
        # generalises across people better than the deep path does.
        stats = WindowStatistics(
            correlations=architecture.get("window_correlations", False), name="window_statistics"
        )(inputs)
        if architecture.get("spectral_bands"):
            spectrum = WindowSpectrum(architecture["spectral_bands"], name="window_spectrum")(
                inputs
            )
            stats = keras.layers.Concatenate(name="wide_features")([stats, spectrum])
        random_kernels = architecture.get("random_kernels")
        if random_kernels:
            kernel_features = RandomKernelFeatures(
                random_kernels["dilations"],
                random_kernels["biases"],
                random_kernels["seed"],
                name="random_kernel_features",
            )(inputs)
            stats = keras.layers.Concatenate(name="wide_and_kernel_features")(
                [stats, kernel_features]
            )
        stats = keras.layers.BatchNormalization(name="statistics_bn")(stats)
        logits = keras.layers.Add(name="logits")(
            [logits, keras.layers.Dense(n_classes, name="wide_logits")(stats)]
        )
    outputs = keras.layers.Activation("softmax", name="probabilities")(logits)
    return keras.Model(inputs, outputs, name=name)


def fit_kernel_thresholds(
    model: keras.Model, signals: np.ndarray, sample_windows: int, seed: int
) -> None:
    """Fits the thresholds of the model's :class:`RandomKernelFeatures` on a seeded sample of
    ``sample_windows`` (scaled) training windows; nothing when it has none."""
    layers = [layer for layer in model.layers if isinstance(layer, RandomKernelFeatures)]
    if not layers:
        return
    rng = np.random.default_rng(seed)
    sample = signals[rng.choice(len(signals), min(sample_windows, len(signals)), replace=False)]
    for layer in layers:
        layer.adapt(sample)


def fit_wide_path_logistic(
    model: keras.Model,
    signals: np.ndarray,
    labels: np.ndarray,
    sample_weight: np.ndarray,
    inverse_regularisation: float,
) -> None:
    """Fits the wide path (``statistics_bn`` and ``wide_logits``) as a multinomial logistic
    regression on (scaled) training windows and freezes it, so that the deep path trains on
    top of a wide rule that no seed changes."""
    from sklearn.linear_model import LogisticRegression

    normalise = model.get_layer("statistics_bn")
    wide_logits = model.get_layer("wide_logits")
    features = keras.Model(model.inputs, normalise.input).predict(signals, verbose=0)
    features = np.asarray(features, dtype=np.float64)
    mean, variance = features.mean(axis=0), features.var(axis=0)
    standardised = (features - mean) / np.sqrt(variance + normalise.epsilon)
    regression = LogisticRegression(C=inverse_regularisation, max_iter=1000)
    regression.fit(standardised, labels, sample_weight=sample_weight)
    n_classes = wide_logits.units
    kernel = np.zeros((features.shape[1], n_classes))
    # A class absent from the training windows gets no wide evidence: the lowest intercept.
    bias = np.full(n_classes, regression.intercept_.min())
    coefficients = regression.coef_
    if len(regression.classes_) == 2:
        # scikit-learn keeps one row for two classes: the logit of the second against the first.
        coefficients = np.vstack([-coefficients / 2, coefficients / 2])
        intercepts = np.array([-regression.intercept_[0] / 2, regression.intercept_[0] / 2])
    else:
        intercepts = regression.intercept_
    kernel[:, regression.classes_] = coefficients.T
    bias[regression.classes_] = intercepts
    normalise.set_weights([np.ones_like(mean), np.zeros_like(mean), mean, variance])
    wide_logits.set_weights([kernel, bias])
    # A frozen BatchNormalization also runs in inference mode: its moving statistics are used.
    normalise.trainable = False
    wide_logits.trainable = False


def average_of(members: list[keras.Model]) -> keras.Model:
    """One model whose output is the mean of its members' class probabilities: an ensemble
    served, saved and loaded as a single Keras model with a single forward pass."""
    if len(members) == 1:
        return members[0]
    inputs = keras.Input(shape=members[0].input_shape[1:], name="signals")
    outputs = keras.layers.Average(name="probabilities")([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name="cnn_bilstm_ensemble")


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The member networks of an ensemble from :func:`average_of`; ``[model]`` otherwise
    (looking through an input adapter in front of either)."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) == 1:
        return ensemble_members(nested[0])
    return nested or [model]


def leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of ``model`` and of the networks nested in it, the networks themselves left
    out."""
    leaves = []
    for layer in model.layers:
        leaves += leaf_layers(layer) if isinstance(layer, keras.Model) else [layer]
    return leaves


def find_layer(model: keras.Model, name: str) -> keras.layers.Layer:
    """The layer called ``name`` in ``model`` or the first network nested in it."""
    for layer in model.layers:
        if layer.name == name:
            return layer
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            try:
                return find_layer(layer, name)
            except ValueError:
                continue
    raise ValueError(f"No layer {name!r} in {model.name}")


def random_rotations(rng: np.random.Generator, n: int, max_degrees: float) -> np.ndarray:
    """``n`` rotation matrices about random axes by angles uniform in +-max_degrees."""
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.deg2rad(rng.uniform(-max_degrees, max_degrees, size=n))
    k = np.zeros((n, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axes[:, 2], axes[:, 1], -axes[:, 0]
    k -= k.transpose(0, 2, 1)
    sin, cos = np.sin(angles)[:, None, None], np.cos(angles)[:, None, None]
    return np.eye(3) + sin * k + (1 - cos) * (k @ k)  # Rodrigues' formula


def augment(
    signals: np.ndarray, rng: np.random.Generator, augmentation: dict[str, Any]
) -> np.ndarray:
    """Applies the enabled augmentations to windows in SI units ``[n, window, 6]``."""
    out = signals.astype(np.float32, copy=True)
    n = out.shape[0]
    rotation = augmentation.get("rotation", {})
    if rotation.get("enabled"):
        # One rotation per window for both sensors: the device was worn at another angle.
        rot = random_rotations(rng, n, rotation["max_degrees"]).astype(np.float32)
        out[:, :, :3] = np.einsum("nij,ntj->nti", rot, out[:, :, :3])
        out[:, :, 3:] = np.einsum("nij,ntj->nti", rot, out[:, :, 3:])
    scaling = augmentation.get("scaling", {})
    if scaling.get("enabled"):
        factors = rng.normal(1.0, scaling["sigma"], size=(n, 1, 2)).astype(np.float32)
        out *= np.repeat(factors, 3, axis=2)
    jitter = augmentation.get("jitter", {})
    if jitter.get("enabled"):
        scale = np.asarray(jitter["sigma"], dtype=np.float32) * out.std(axis=(0, 1))
        out += rng.normal(size=out.shape).astype(np.float32) * scale
    return out


class AugmentedWindows(keras.utils.PyDataset):
    """Shuffled, augmented, standardised training batches.

    Each batch draws from its own generator seeded by (seed, epoch, batch), so the stream of
    batches is the same whatever order or thread Keras asks for them in.
    """

    def __init__(
        self,
        signals: np.ndarray,
        labels: np.ndarray,
        sample_weights: np.ndarray,
        scaler: dict[str, Any],
        batch_size: int,
        augmentation: dict[str, Any],
        seed: int,
    ):
        super().__init__(workers=1, use_multiprocessing=False)
        self._signals = signals
        self._labels = labels
        self._weights = sample_weights.astype(np.float32)
        self._mean = np.asarray(scaler["mean"], dtype=np.float32)
        self._std = np.asarray(scaler["std"], dtype=np.float32)
        self._batch_size = batch_size
        self._augmentation = augmentation
        self._seed = seed
        self._epoch = 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self._seed, self._epoch]).permutation(len(self._labels))

    def __len__(self) -> int:
        return math.ceil(len(self._labels) / self._batch_size)

    def __getitem__(self, index: int):
        idx = self._order[index * self._batch_size : (index + 1) * self._batch_size]
        rng = np.random.default_rng([self._seed, self._epoch, index])
        batch = augment(self._signals[idx], rng, self._augmentation)
        return (batch - self._mean) / self._std, self._labels[idx], self._weights[idx]

    def on_epoch_end(self) -> None:
        self._epoch += 1
        self._order = self._permutation()


class EpochLogger(keras.callbacks.Callback):
    """One log line per epoch through ``logging`` instead of Keras' printed progress bar."""

    def __init__(self, log: logging.Logger):
        super().__init__()
        self._log = log

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        summary = ", ".join(f"{k}={float(v):.4f}" for k, v in sorted((logs or {}).items()))
        self._log.info("epoch %d: %s", epoch + 1, summary)


def conv_block_layers(model: keras.Model, n_blocks: int) -> list[keras.layers.Layer]:
    """The convolution and batch-normalisation layers of the first ``n_blocks`` blocks."""
    names = {f"{kind}{i}" for i in range(n_blocks) for kind in ("conv", "bn")}
    return [layer for layer in model.layers if layer.name in names]


RECURRENT_LAYERS = ("bilstm", "dense")


def with_input_adapter(model: keras.Model) -> keras.Model:
    """``model`` behind a trainable per-time-step linear mix of its input channels, starting
    as the identity: a device worn in another orientation (or axes in another order) is a
    fixed linear map of the channels, which the adapter learns from few windows."""
    inputs = keras.Input(shape=model.input_shape[1:], name="signals")
    mixed = keras.layers.Dense(
        model.input_shape[-1], kernel_initializer="identity", name="input_adapter"
    )(inputs)
    return keras.Model(inputs, model(mixed), name=f"{model.name}_adapted")


def _start_rows_from(
    layer: keras.layers.Dense, base_layer: keras.layers.Dense, head_rows: list[int | None]
) -> None:
    """Sets ``layer``'s output units to ``base_layer``'s where ``head_rows`` names one."""
    kernel, bias = (np.array(w) for w in layer.get_weights())
    base_kernel, base_bias = base_layer.get_weights()
    for row, base_row in enumerate(head_rows):
        if base_row is not None:
            kernel[:, row] = base_kernel[:, base_row]
            bias[row] = base_bias[base_row]
    layer.set_weights([kernel, bias])


def adapt_for_fine_tuning(
    base: keras.Model,
    n_classes: int,
    new_head: bool,
    frozen_blocks: int,
    frozen_recurrent: bool = False,
    input_adapter: bool = False,
    head_rows: list[int | None] | None = None,
) -> keras.Model:
    """The base network with its feature layers reused: a new softmax head for ``n_classes``
    when ``new_head``, the first ``frozen_blocks`` convolution blocks (and the recurrent and
    dense layers if ``frozen_recurrent``) frozen, and optionally an input adapter in front. An
    ensemble is adapted member by member and fine-tuned as a whole. ``head_rows`` gives, per
    new class, the class of the base's head whose weights its row of the new head starts from
    (None: a fresh row)."""
    members = ensemble_members(base)
    if len(members) > 1 or members[0] is not base:
        adapted = average_of(
            [
                adapt_for_fine_tuning(
                    m, n_classes, new_head, frozen_blocks, frozen_recurrent, False, head_rows
                )
                for m in members
            ]
        )
        return with_input_adapter(adapted) if input_adapter else adapted
    model = base
    if new_head:
        features = base.get_layer("dense").output
        deep = keras.layers.Dense(n_classes, name="deep_logits")
        logits = deep(features)
        new_layers = [(deep, base.get_layer("deep_logits"))]
        if any(layer.name == "wide_logits" for layer in base.layers):
            wide = keras.layers.Dense(n_classes, name="wide_logits")
            logits = keras.layers.Add(name="logits")(
                [logits, wide(base.get_layer("statistics_bn").output)]
            )
            new_layers.append((wide, base.get_layer("wide_logits")))
        outputs = keras.layers.Activation("softmax", name="probabilities")(logits)
        model = keras.Model(base.inputs, outputs, name=base.name)
        if head_rows is not None:
            for new_layer, base_layer in new_layers:
                _start_rows_from(new_layer, base_layer, head_rows)
    frozen = conv_block_layers(model, frozen_blocks)
    if len(frozen) < 2 * frozen_blocks:
        raise ValueError(
            f"fine_tuning.frozen_blocks {frozen_blocks}: the starting model has only "
            f"{len(frozen) // 2} convolution blocks"
        )
    if frozen_recurrent:
        frozen += [layer for layer in model.layers if layer.name in RECURRENT_LAYERS]
    for layer in frozen:
        # A frozen BatchNormalization also keeps its moving statistics (inference mode).
        layer.trainable = False
    return with_input_adapter(model) if input_adapter else model
