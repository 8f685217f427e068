"""The optional training levers: cosine decay, no early stopping, weight averaging (EMA) and
fitting on the validation subjects."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from har_mlops.contract import CHANNELS
from har_mlops.pipelines.training import nodes
from har_mlops.pipelines.training.model import build_cnn_bilstm
from har_mlops.pipelines.training.nodes import train_model

CLASSES = ["A", "B", "C"]
LABELS = {"class_set": "x", "class_sets": {"x": CLASSES}}
SCALER = {"channels": CHANNELS, "mean": [0.0] * 6, "std": [1.0] * 6}
ARCHITECTURE = {
    "conv_filters": [8],
    "conv_kernel_sizes": [3],
    "pool_after": [],
    "pool_size": 2,
    "lstm_units": 4,
    "dense_units": 8,
    "dropout": 0.1,
    "window_statistics": True,
}
TRAINING = {
    "seed": 3,
    "deterministic_ops": False,
    "epochs": 4,
    "batch_size": 16,
    "learning_rate": 0.01,
    "weight_decay": 0.0001,
    "lr_schedule": {"kind": "plateau", "factor": 0.5, "patience": 1, "min_lr": 0.0001},
    "early_stopping": {
        "enabled": True,
        "monitor": "val_loss",
        "patience": 0,
        "start_from_epoch": 0,
        "restore_best_weights": False,
    },
    "class_weighting": "balanced",
    "augmentation": {},
}
FINE_TUNING = {"new_head": "auto", "frozen_blocks": 1, "learning_rate": 0.001}


def _windows() -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    labels = np.arange(48) % 3
    signals = rng.normal(size=(48, 32, 6)).astype(np.float32)
    signals[:, :, 0] += labels[:, None]
    train = {"signals": signals, "label_index": labels}
    return train, {"signals": signals[::3] + 0.5, "label_index": labels[::3]}


def _train(**changes):
    train, validation = _windows()
    training = {**TRAINING, **changes}
    return train_model(train, validation, SCALER, {}, ARCHITECTURE, training, FINE_TUNING, LABELS)


def test_cosine_decay_anneals_to_min_lr_over_all_epochs_without_early_stopping():
    model, history = _train(
        lr_schedule={**TRAINING["lr_schedule"], "kind": "cosine"},
        early_stopping={**TRAINING["early_stopping"], "enabled": False},
    )
    assert len(history["loss"]) == TRAINING["epochs"]
    schedule = model.optimizer._learning_rate  # the schedule object the optimiser steps
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    steps = int(model.optimizer.iterations.numpy())
    rates = [float(schedule(step)) for step in range(0, steps + 1, max(steps // 8, 1))]
    assert rates[0] == pytest.approx(TRAINING["learning_rate"])
    assert all(b < a for a, b in zip(rates, rates[1:]))
    # Decayed over exactly the configured epochs: the last step ends at min_lr.
    assert float(schedule(steps)) == pytest.approx(TRAINING["lr_schedule"]["min_lr"], rel=1e-3)


def test_disabled_early_stopping_adds_no_callback():
    training = {**TRAINING, "early_stopping": {**TRAINING["early_stopping"], "enabled": False}}
    kinds = {type(c).__name__ for c in nodes._callbacks(training)}
    assert "EarlyStopping" not in kinds and "ReduceLROnPlateau" in kinds
    assert "EarlyStopping" in {type(c).__name__ for c in nodes._callbacks(TRAINING)}


def test_ema_swaps_the_averaged_weights_in_when_training_ends():
    # With a momentum this close to 1 the average barely leaves where it starts (Keras
    # starts it at the weights after the first step: one Adam step moves a weight by at most
    # about the learning rate), while the raw weights move on: the model left after fit()
    # must be the average.
    model, _ = _train(ema_momentum=0.999999)
    keras.utils.set_random_seed(TRAINING["seed"])
    initial = build_cnn_bilstm(32, 6, 3, ARCHITECTURE)
    moved, _ = _train()
    kernel = model.get_layer("conv0").get_weights()[0]
    start = initial.get_layer("conv0").get_weights()[0]
    step = TRAINING["learning_rate"]
    assert np.abs(kernel - start).max() < 1.5 * step
    assert np.abs(moved.get_layer("conv0").get_weights()[0] - start).max() > 3 * step


def test_fit_on_validation_needs_a_schedule_decided_by_nothing():
    with pytest.raises(ValueError, match="fit_on_validation"):
        _train(fit_on_validation=True)
    with pytest.raises(ValueError, match="fit_on_validation"):
        _train(fit_on_validation=True, lr_schedule={**TRAINING["lr_schedule"], "kind": "cosine"})


def test_fit_on_validation_trains_on_both_sets(monkeypatch):
    from har_mlops.pipelines.training import model as model_module

    seen = []
    original = model_module.AugmentedWindows.__init__

    def spy(self, signals, labels, *args, **kwargs):
        seen.append(len(labels))
        original(self, signals, labels, *args, **kwargs)

    monkeypatch.setattr(model_module.AugmentedWindows, "__init__", spy)
    _, history = _train(
        fit_on_validation=True,
        lr_schedule={**TRAINING["lr_schedule"], "kind": "cosine"},
        early_stopping={**TRAINING["early_stopping"], "enabled": False},
    )
    train, validation = _windows()
    assert seen == [len(train["label_index"]) + len(validation["label_index"])]
    assert not any(name.startswith("val_") for name in history)
