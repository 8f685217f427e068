"""Same seed, same machine: identical training history and predictions.

Training with ``deterministic_ops`` switches TensorFlow's op determinism on for the rest of
the process, and TensorFlow has no public way back: the three trainings run in one
subprocess (``python -m tests.pipelines.training.test_reproducibility OUT``) and the tests
compare what it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import PROJECT_ROOT

CLASSES = ["A", "B", "C"]
# (name, seed): the same seed twice, then another one.
TRAININGS = (("first", 7), ("again", 7), ("other", 8))


def _windows():
    rng = np.random.default_rng(0)
    n, size = 96, 32
    labels = np.repeat(np.arange(3), n // 3)
    signals = rng.normal(size=(n, size, 6)).astype(np.float32)
    signals[:, :, 0] += labels[:, None] * 2.0  # separable, so training has something to learn
    split = {"signals": signals, "label_index": labels}
    return split, {"signals": signals[::4], "label_index": labels[::4]}


def _train(windows, seed):
    from har_mlops.contract import CHANNELS
    from har_mlops.forward import predict_probabilities
    from har_mlops.pipelines.training.nodes import train_model

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
    model, history = train_model(
        train, validation, scaler, {}, architecture, training, FINE_TUNING, labels
    )
    return history, predict_probabilities(model, validation["signals"], scaler, batch_size=16)


FINE_TUNING = {"new_head": "auto", "frozen_blocks": 0, "learning_rate": 0.001}


def _train_all(out: Path) -> None:
    """The subprocess: every training of TRAININGS, histories as JSON, predictions as npz."""
    windows = _windows()
    histories, probabilities = {}, {}
    for name, seed in TRAININGS:
        histories[name], probabilities[name] = _train(windows, seed)
    (out / "histories.json").write_text(json.dumps(histories))
    np.savez(out / "probabilities.npz", **probabilities)


@pytest.fixture(scope="module")
def trainings(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproducibility")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "tests.pipelines.training.test_reproducibility", str(out)],
        check=False,
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    histories = json.loads((out / "histories.json").read_text())
    with np.load(out / "probabilities.npz") as saved:
        probabilities = {name: saved[name] for name in saved.files}
    return histories, probabilities


def test_same_seed_gives_identical_history_and_predictions(trainings):
    histories, probabilities = trainings
    assert histories["first"] == histories["again"]
    assert len(histories["first"]["loss"]) == 2  # both epochs ran
    np.testing.assert_array_equal(probabilities["first"], probabilities["again"])
    assert probabilities["first"].shape == (24, len(CLASSES))


def test_other_seed_gives_other_weights(trainings):
    _, probabilities = trainings
    assert not np.array_equal(probabilities["first"], probabilities["other"])


def test_training_leaves_op_determinism_off_in_this_process(trainings):
    from tensorflow.python.framework import config as tf_config

    assert not tf_config.is_op_determinism_enabled()


if __name__ == "__main__":
    _train_all(Path(sys.argv[1]))
