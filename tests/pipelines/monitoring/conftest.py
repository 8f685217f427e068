"""HAPT windows for the monitoring tests, a reference profile built from them, corruptions.

Subjects are split as in a real project: reference (training) subjects, calibration pool
(validation and test subjects of the reference), and the UCI test subjects, never seen by
either, as the "current" data. Predictions are a stand-in: mostly the true activity with a high
confidence, sometimes another with a lower one, all seeded (the real model is exercised end to
end in test_pipeline.py).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from har_mlops.config import project_parameters
from har_mlops.contract import class_names
from har_mlops.datasets import HaptZipDataset
from har_mlops.pipelines.data_processing.nodes import (
    assign_labels,
    convert_units,
    filter_windows_by_class,
    resample_recordings,
    validate_recordings,
    window_samples,
)
from har_mlops.pipelines.monitoring.reference import calibrate_reference, compute_reference_features
from tests.conftest import HAPT_ZIP, PROJECT_ROOT

TRAIN_SUBJECTS = [1, 3, 5, 6, 7, 8, 11, 14, 15, 16, 17, 19, 21, 22]
VALIDATION_SUBJECTS = [23, 25, 26]
TEST_SUBJECTS = [27, 28, 29, 30]
CURRENT_SUBJECTS = [2, 4, 9, 10, 12, 13]  # UCI's test subjects: unseen by the reference


def _parameters(name: str) -> dict[str, Any]:
    """The groups of conf/base/parameters_<name>.yml, interpolations resolved as in a run."""
    with (PROJECT_ROOT / "conf" / "base" / f"parameters_{name}.yml").open() as handle:
        groups = yaml.safe_load(handle)
    resolved = project_parameters(PROJECT_ROOT / "conf", env="base")
    return {group: resolved[group] for group in groups}


@pytest.fixture(scope="session")
def processing_params() -> dict[str, Any]:
    return _parameters("data_processing")


@pytest.fixture(scope="session")
def _monitoring_params() -> dict[str, Any]:
    params = _parameters("monitoring")["monitoring"]
    params["calibration"]["repetitions"] = 200
    return params


@pytest.fixture
def monitoring_params(_monitoring_params) -> dict[str, Any]:
    """conf/base monitoring parameters (fewer bootstrap repetitions); tests may mutate them."""
    return copy.deepcopy(_monitoring_params)


def build_windows(
    subjects: list[int], params: dict[str, Any], rate_hz: float = 50.0
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """HAPT subjects through the data_processing nodes; ``rate_hz`` is the declared HAPT rate."""
    recordings = HaptZipDataset(str(HAPT_ZIP), sampling_rate_hz=rate_hz, subjects=subjects).load()
    valid, report = validate_recordings(
        recordings,
        params["raw_source"],
        params["validation"],
        params["resampling"],
        params["windowing"],
    )
    samples = resample_recordings(valid, params["resampling"])
    samples = convert_units(samples, params["raw_source"])
    samples = assign_labels(samples, valid, params["raw_source"])
    windows = filter_windows_by_class(
        window_samples(samples, params["windowing"]), params["labels"]
    )
    return windows, report


# Share of windows the stand-in model gets wrong, so the label-free accuracy estimate (ATC)
# has errors to find.
STAND_IN_ERROR_SHARE = 0.1


def stand_in_probabilities(labels: np.ndarray, classes: list[str], seed: int) -> np.ndarray:
    """A seeded stand-in model's ``[n, C]`` probabilities of windows with true ``labels [n]``.

    Right with a Beta(12, 1) confidence, or (a ``STAND_IN_ERROR_SHARE`` of windows) a random
    other class with a lower Uniform(0.35, 0.85) one; the rest of the mass spread evenly.
    """
    rng = np.random.default_rng(seed)
    n, n_classes = labels.size, len(classes)
    true = pd.Series(labels).map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=int)
    wrong = rng.random(n) < STAND_IN_ERROR_SHARE
    index = np.where(wrong, (true + rng.integers(1, n_classes, size=n)) % n_classes, true)
    confidence = np.where(wrong, rng.uniform(0.35, 0.85, size=n), rng.beta(12.0, 1.0, size=n))
    rest = (1.0 - confidence) / (n_classes - 1)
    probabilities = np.repeat(rest[:, None], n_classes, axis=1)
    probabilities[np.arange(n), index] = confidence
    return probabilities


def stand_in_predictions(
    windows: dict[str, np.ndarray], classes: list[str], seed: int = 7
) -> pd.DataFrame:
    """window_predictions as the inference pipeline writes them, from the stand-in model."""
    probabilities = stand_in_probabilities(windows["label"], classes, seed)
    return pd.DataFrame(
        {
            "recording_id": windows["recording_id"],
            "window_start_ms": windows["start_ms"],
            "window_end_ms": windows["end_ms"],
            "activity": np.asarray(classes)[probabilities.argmax(axis=1)],
            "confidence": probabilities.max(axis=1),
        }
    )


def no_days(classes: list[str]) -> pd.DataFrame:
    """daily_activity with its columns and no participant-day (windows, not whole days)."""
    return pd.DataFrame(
        columns=["subject_id", "date", "wear_minutes", *(f"minutes_{c}" for c in classes)]
    )


@pytest.fixture(scope="session")
def classes(processing_params) -> list[str]:
    return class_names(processing_params["labels"])


@pytest.fixture(scope="session")
def reference_inputs(
    processing_params, classes
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Train, validation and test windows of the reference subjects and stand-in predictions."""
    splits = {
        name: build_windows(subjects, processing_params)[0]
        for name, subjects in (
            ("train", TRAIN_SUBJECTS),
            ("validation", VALIDATION_SUBJECTS),
            ("test", TEST_SUBJECTS),
        )
    }
    predictions = {
        "class_names": classes,
        "target_rate_hz": 50.0,
        "source": "stand-in",
        "probabilities": {
            name: stand_in_probabilities(part["label"], classes, seed)
            for seed, (name, part) in enumerate(splits.items())
        },
    }
    return splits, predictions


@pytest.fixture(scope="session")
def reference_profile(reference_inputs, _monitoring_params) -> dict[str, Any]:
    splits, predictions = reference_inputs
    features = compute_reference_features(
        splits["train"], splits["validation"], splits["test"], predictions, _monitoring_params
    )
    return calibrate_reference(
        features, predictions, _monitoring_params, {"low_confidence_threshold": 0.6}
    )


@pytest.fixture(scope="session")
def current(processing_params) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Clean windows of the unseen UCI test subjects and their validation report."""
    return build_windows(CURRENT_SUBJECTS, processing_params)
