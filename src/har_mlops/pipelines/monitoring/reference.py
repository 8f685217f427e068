"""Nodes of the reference part: profile the training data and calibrate drift thresholds.

The reference profile holds, per predicted activity, a quantile sketch of every window
feature of the training windows, the model's prediction profile on the test subjects, and
thresholds calibrated by drawing batches of held-out subjects' windows (validation and test
subjects, never seen in training) at each monitored batch size and comparing them with the
reference exactly as a monitoring run would.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from har_mlops.contract import contract_scaler
from har_mlops.features import feature_names, window_features
from har_mlops.forward import predict_probabilities
from har_mlops.parameters import ParameterGroup, Prediction

from .calibration import (
    calibration_batches,
    calibration_groups,
    calibration_settings,
    class_sketches,
    class_thresholds,
    confirmed_windows,
    dataset_limits,
    gravity_reference,
    min_batch_windows,
    prediction_profile,
)
from .parameters import Monitoring
from .quality import window_gates

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
# Version 2: feature-drift thresholds and limits per activity and window count.
PROFILE_VERSION = 2


def predict_reference_windows(
    model_bundle: dict[str, Any],
    windows_train: dict[str, np.ndarray],
    windows_validation: dict[str, np.ndarray],
    windows_test: dict[str, np.ndarray],
    prediction: Prediction,
) -> dict[str, Any]:
    """The model's class probabilities on every split, with the contract facts monitoring needs."""
    contract = model_bundle["contract"]
    scaler = contract_scaler(contract)
    splits = dict(zip(SPLITS, (windows_train, windows_validation, windows_test)))
    return {
        "class_names": list(contract["class_names"]),
        "target_rate_hz": float(contract["target_rate_hz"]),
        "source": str(model_bundle.get("source", "unknown")),
        "probabilities": {
            name: predict_probabilities(
                model_bundle["model"],
                part["signals"],
                scaler,
                prediction["batch_size"],
                jit_compile=prediction["jit_compile"],
            )
            for name, part in splits.items()
        },
    }


def _feature_table(
    windows: dict[str, np.ndarray],
    probabilities: np.ndarray,
    classes: list[str],
    rate_hz: float,
    monitoring: Monitoring,
) -> dict[str, np.ndarray]:
    gates = window_gates(windows["signals"], monitoring["quality"])
    passed = ~(gates["non_finite"] | gates["flat_line"] | gates["clipping"])
    predicted = np.asarray(classes)[probabilities.argmax(axis=1)]
    table = {
        "features": window_features(windows["signals"], rate_hz),
        "predicted": predicted,
        "confidence": probabilities.max(axis=1),
        "label": np.asarray(windows["label"]).astype(str),
        "correct": predicted == windows["label"],
        # Transitions and unlabelled windows count for the profile, not for accuracy.
        "labelled": np.isin(windows["label"], classes),
        "recording_id": windows["recording_id"],
        "subject_id": windows["subject_id"],
        "still": gates["still"],
        "acc_magnitude": gates["acc_magnitude"],
    }
    logger.info("Reference windows: %d of %d pass the sensor gates", passed.sum(), passed.size)
    return {name: values[passed] for name, values in table.items()}


def compute_reference_features(
    windows_train: dict[str, np.ndarray],
    windows_validation: dict[str, np.ndarray],
    windows_test: dict[str, np.ndarray],
    reference_predictions: dict[str, Any],
    monitoring: Monitoring,
) -> dict[str, dict[str, np.ndarray]]:
    """Window features, predicted activity and confidence of each split's gate-passing windows."""
    classes = reference_predictions["class_names"]
    rate = reference_predictions["target_rate_hz"]
    splits = dict(zip(SPLITS, (windows_train, windows_validation, windows_test)))
    return {
        name: _feature_table(
            part, reference_predictions["probabilities"][name], classes, rate, monitoring
        )
        for name, part in splits.items()
    }


def calibrate_reference(
    reference_features: dict[str, dict[str, np.ndarray]],
    reference_predictions: dict[str, Any],
    monitoring: Monitoring,
    prediction: Prediction,
) -> dict[str, Any]:
    """The reference profile: sketches, prediction profile and thresholds per batch size."""
    classes = reference_predictions["class_names"]
    calibration = monitoring["calibration"]
    sketches = class_sketches(reference_features["train"], classes, monitoring)
    predictions = prediction_profile(
        reference_features["validation"],
        reference_features["test"],
        classes,
        prediction["low_confidence_threshold"],
        monitoring["report"]["confidence_bins"],
    )
    groups = calibration_groups(reference_features, sketches, classes, monitoring)
    batches = calibration_batches(groups, calibration, monitoring["seed"])
    # Feature drift is judged per activity at that activity's own window count, so its
    # thresholds come from batches of one activity at each count; batches of the reference's
    # mix give the prediction-drift limits and the typical sensitivity per batch size.
    per_class = class_thresholds(groups, classes, monitoring)
    dataset = dataset_limits(groups, batches, per_class, predictions, classes, monitoring)
    min_batch = min_batch_windows(dataset, calibration["max_detectable_shift"])
    confirmed = confirmed_windows(per_class, calibration["max_detectable_shift"])
    logger.info(
        "Calibrated drift thresholds at batch sizes %s on %d groups of held-out subjects; "
        "verdict valid from %d windows",
        list(batches),
        len(groups),
        min_batch,
    )
    return to_builtin(
        {
            "version": PROFILE_VERSION,
            "model_source": reference_predictions["source"],
            "class_names": classes,
            "features": feature_names(),
            "target_rate_hz": reference_predictions["target_rate_hz"],
            "windows": {name: int(len(t["predicted"])) for name, t in reference_features.items()},
            "sketch": {
                "quantile_levels": monitoring["sketch"]["quantile_levels"],
                "psi_bins": monitoring["sketch"]["psi_bins"],
                "classes": sketches,
            },
            "predictions": predictions,
            "gravity": gravity_reference(reference_features["train"]),
            "calibration": {
                **calibration_settings(groups, monitoring),
                "batch_sizes": list(batches),
                "activity_windows": sorted(calibration["activity_windows"]),
                "min_batch_windows": min_batch,
                "per_class": per_class,
                "confirmed_windows": confirmed,
                "dataset": dataset,
            },
        }
    )


def to_builtin(value: Any) -> Any:
    """Arrays and numpy scalars to lists and floats, so the profile is the same saved or not."""
    if isinstance(value, ParameterGroup):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_builtin(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
