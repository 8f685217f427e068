"""An ensemble of networks is one Keras model: trained, saved, loaded, fine-tuned as one."""

from __future__ import annotations

import numpy as np

from har_mlops.contract import CHANNELS
from har_mlops.model_io import load_bundle_folder, save_bundle_folder
from har_mlops.pipelines.training.model import (
    adapt_for_fine_tuning,
    ensemble_members,
)
from har_mlops.pipelines.training.nodes import train_model

CLASSES = ["A", "B", "C"]
ARCHITECTURE = {
    "conv_filters": [8, 8],
    "conv_kernel_sizes": [5, 3],
    "pool_after": [0],
    "pool_size": 2,
    "lstm_units": 4,
    "dense_units": 8,
    "dropout": 0.1,
    "window_statistics": True,
    "spectral_bands": 4,
}
TRAINING = {
    "seed": 5,
    "deterministic_ops": False,
    "epochs": 2,
    "batch_size": 16,
    "learning_rate": 0.01,
    "weight_decay": 0.0001,
    "lr_schedule": {"factor": 0.5, "patience": 1, "min_lr": 0.0001},
    "early_stopping": {
        "monitor": "val_loss",
        "patience": 5,
        "start_from_epoch": 0,
        "restore_best_weights": False,
    },
    "class_weighting": "balanced",
    "augmentation": {},
    "ensemble_members": 3,
}
FINE_TUNING = {"new_head": "auto", "frozen_blocks": 1, "learning_rate": 0.001}


def _windows() -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    labels = np.arange(48) % 3
    signals = rng.normal(size=(48, 32, 6)).astype(np.float32)
    signals[:, :, 0] += labels[:, None]
    train = {"signals": signals, "label_index": labels}
    return train, {"signals": signals[::3], "label_index": labels[::3]}


def _trained_ensemble():
    train, validation = _windows()
    scaler = {"channels": CHANNELS, "mean": [0.0] * 6, "std": [1.0] * 6}
    labels = {"class_set": "x", "class_sets": {"x": CLASSES}}
    return train_model(
        train, validation, scaler, {}, ARCHITECTURE, TRAINING, FINE_TUNING, labels
    ), train


def test_ensemble_round_trips_and_equals_the_average_of_its_members(tmp_path):
    (model, history), train = _trained_ensemble()
    members = ensemble_members(model)
    assert [m.name for m in members] == ["member0", "member1", "member2"]
    # Each member trained on its own seed: different weights, its own history.
    assert not np.array_equal(members[0].get_weights()[0], members[1].get_weights()[0])
    assert {"member0_loss", "member2_val_loss"} <= set(history)

    save_bundle_folder(tmp_path, model, {"class_names": CLASSES})
    loaded = load_bundle_folder(tmp_path)["model"]
    signals = train["signals"][:10]
    each = np.stack([m.predict(signals, verbose=0) for m in ensemble_members(loaded)])
    np.testing.assert_allclose(
        loaded.predict(signals, verbose=0), each.mean(axis=0), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        loaded.predict(signals, verbose=0), model.predict(signals, verbose=0), atol=1e-6
    )


def test_an_ensemble_is_fine_tuned_member_by_member():
    (model, _), _ = _trained_ensemble()
    frozen_before = [m.get_layer("conv0").get_weights()[0].copy() for m in ensemble_members(model)]
    adapted = adapt_for_fine_tuning(model, 5, True, 1)
    assert adapted.output_shape == (None, 5)
    members = ensemble_members(adapted)
    assert len(members) == 3
    for member, before in zip(members, frozen_before, strict=True):
        assert not member.get_layer("conv0").trainable
        np.testing.assert_array_equal(member.get_layer("conv0").get_weights()[0], before)
