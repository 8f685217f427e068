"""Tiny training parameters and windows shared by the training tests: seconds, not minutes.

Each test file takes copies with the few values it depends on changed, so that what a test
relies on is visible where it is asserted.
"""

from __future__ import annotations

import copy

import numpy as np

from har_mlops.contract import CHANNELS

CLASSES = ["A", "B", "C"]
LABELS = {"class_set": "x", "class_sets": {"x": CLASSES}}
IDENTITY_SCALER = {"channels": CHANNELS, "mean": [0.0] * 6, "std": [1.0] * 6}
FINE_TUNING = {"new_head": "auto", "frozen_blocks": 1, "learning_rate": 0.001}

_ARCHITECTURE = {
    "conv_filters": [8],
    "conv_kernel_sizes": [3],
    "pool_after": [],
    "pool_size": 2,
    "lstm_units": 4,
    "dense_units": 8,
    "dropout": 0.1,
    "window_statistics": True,
}
_TRAINING = {
    "seed": 5,
    "deterministic_ops": False,
    "epochs": 2,
    "batch_size": 16,
    "learning_rate": 0.01,
    "weight_decay": 0.0001,
    "lr_schedule": {"kind": "plateau", "factor": 0.5, "patience": 1, "min_lr": 0.0001},
    "early_stopping": {
        "enabled": True,
        "monitor": "val_loss",
        "patience": 5,
        "start_from_epoch": 0,
        "restore_best_weights": False,
    },
    "class_weighting": "balanced",
    "augmentation": {},
}


def architecture(**changes) -> dict:
    """A one-block network with the wide path, ``changes`` applied."""
    return copy.deepcopy({**_ARCHITECTURE, **changes})


def training(**changes) -> dict:
    """Two epochs of batches of 16, early stopping on, ``changes`` applied (whole groups)."""
    return copy.deepcopy({**_TRAINING, **changes})


def separable_windows(n: int = 48, window: int = 32) -> tuple[dict, dict]:
    """Training windows of the three classes, told apart by the first channel's level, and
    every third of them as validation windows."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % len(CLASSES)
    signals = rng.normal(size=(n, window, 6)).astype(np.float32)
    signals[:, :, 0] += labels[:, None]
    train = {"signals": signals, "label_index": labels}
    return train, {"signals": signals[::3], "label_index": labels[::3]}
