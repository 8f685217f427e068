"""Same seed, same machine: identical training history and predictions."""

import numpy as np
import pytest

from har_mlops.contract import CHANNELS
from har_mlops.pipelines.training.nodes import predict_probabilities, train_model

CLASSES = ["A", "B", "C"]


@pytest.fixture(scope="module")
def windows():
    rng = np.random.default_rng(0)
    n, size = 96, 32
    labels = np.repeat(np.arange(3), n // 3)
    signals = rng.normal(size=(n, size, 6)).astype(np.float32)
    signals[:, :, 0] += labels[:, None] * 2.0  # separable, so training has something to learn
    split = {"signals": signals, "label_index": labels}
    return split, {"signals": signals[::4], "label_index": labels[::4]}


def _train(windows, seed):
    train, validation = windows
    scaler = {"channels": CHANNELS, "mean": [0.0] * 6, "std": [1.0] * 6}
    architecture = {
        "conv_filters": [8, 8],
        "conv_kernel_sizes": [3, 3],
        "pool_after": [0],
        "pool_size": 2,
        "lstm_units": 4,
        "dense_units": 8,
        "dropout": 0.2,
        "window_statistics": True,
        "gravity_split_kernel": 5,
    }
    training = {
        "seed": seed,
        "deterministic_ops": True,
        "epochs": 2,
        "batch_size": 16,
        "learning_rate": 0.01,
        "weight_decay": 0.0001,
        "lr_schedule": {"factor": 0.5, "patience": 1, "min_lr": 0.0001},
        "early_stopping": {
            "monitor": "val_loss",
            "patience": 5,
            "start_from_epoch": 0,
            "restore_best_weights": True,
        },
        "class_weighting": "balanced",
        "augmentation": {
            "rotation": {"enabled": True, "max_degrees": 10},
            "scaling": {"enabled": True, "sigma": 0.05},
            "jitter": {"enabled": True, "sigma": 0.02},
        },
    }
    labels = {"class_set": "x", "class_sets": {"x": CLASSES}}
    model, history = train_model(train, validation, scaler, architecture, training, labels)
    return history, predict_probabilities(model, validation["signals"], scaler)


def test_same_seed_gives_identical_history_and_predictions(windows):
    history_a, probs_a = _train(windows, seed=7)
    history_b, probs_b = _train(windows, seed=7)
    assert history_a == history_b
    np.testing.assert_array_equal(probs_a, probs_b)


def test_other_seed_gives_other_weights(windows):
    _, probs_a = _train(windows, seed=7)
    _, probs_c = _train(windows, seed=8)
    assert not np.array_equal(probs_a, probs_c)
