"""The optional training levers: cosine decay, no early stopping, weight averaging (EMA) and
fitting on the validation subjects."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from har_mlops.pipelines.training import nodes
from har_mlops.pipelines.training.model import build_cnn_bilstm
from har_mlops.pipelines.training.nodes import train_model
from tests.pipelines.training import tiny

ARCHITECTURE = tiny.architecture()
# Four epochs; early stopping as eager as it gets, so that turning it off shows.
TRAINING = tiny.training(seed=3, epochs=4)
TRAINING["early_stopping"]["patience"] = 0


def _windows() -> tuple[dict, dict]:
    train, validation = tiny.separable_windows()
    # Validation windows unlike the training ones: the validation loss has something to say.
    return train, {**validation, "signals": validation["signals"] + 0.5}


def _train(**changes):
    train, validation = _windows()
    training = {**TRAINING, **changes}
    return train_model(
        train,
        validation,
        tiny.IDENTITY_SCALER,
        {},
        ARCHITECTURE,
        training,
        tiny.FINE_TUNING,
        tiny.LABELS,
    )


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
