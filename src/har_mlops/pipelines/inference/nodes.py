"""Per-window functions of inference and serving: contract check, prediction table, summaries, scores."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from har_mlops.contract import (
    ContractMismatchError,
    class_names,
    contract_mismatches,
    contract_scaler,
)
from har_mlops.evaluation import classification_metrics
from har_mlops.forward import predict_probabilities
from har_mlops.parameters import Labels, Prediction, Resampling, Windowing

logger = logging.getLogger(__name__)


def check_contract(
    model_bundle: dict[str, Any],
    windows: dict[str, np.ndarray],
    windowing: Windowing,
    resampling: Resampling,
    labels: Labels,
) -> dict[str, Any]:
    """The model's contract, if the windows and the configuration honour it."""
    contract = model_bundle["contract"]
    mismatches = contract_mismatches(
        contract,
        windows["signals"].shape[1:],
        windowing["window_size"],
        windowing["overlap"],
        resampling["target_rate_hz"],
        class_names(labels),
    )
    if mismatches:
        raise ContractMismatchError(
            f"Input breaks the preprocessing contract of {model_bundle.get('source', 'the model')}:"
            "\n  " + "\n  ".join(mismatches)
        )
    return contract


def predict_activities(
    model_bundle: dict[str, Any],
    windows: dict[str, np.ndarray],
    contract: dict[str, Any],
    prediction: Prediction,
) -> pd.DataFrame:
    """One row per window: times, predicted activity, confidence, class probabilities, flag."""
    probabilities = predict_probabilities(
        model_bundle["model"],
        windows["signals"],
        contract_scaler(contract),
        prediction["batch_size"],
        jit_compile=prediction["jit_compile"],
    )
    table = window_table(
        windows, probabilities, contract["class_names"], prediction["low_confidence_threshold"]
    )
    logger.info(
        "Predicted %d windows in %d recordings (%.1f %% low confidence)",
        len(table),
        table["recording_id"].nunique(),
        100.0 * table["low_confidence"].mean() if len(table) else 0.0,
    )
    return table


def window_table(
    windows: dict[str, np.ndarray],
    probabilities: np.ndarray,
    classes: list[str],
    low_confidence_threshold: float,
) -> pd.DataFrame:
    """The per-window table from class probabilities (shared with the served model)."""
    best = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    # One constructor call: adding columns one by one costs more than the model on a request.
    return pd.DataFrame(
        {
            "recording_id": pd.array(windows["recording_id"], dtype="string"),
            "window_start_ms": windows["start_ms"],
            "window_end_ms": windows["end_ms"],
            "activity": pd.array(np.asarray(classes)[best], dtype="string"),
            "confidence": confidence,
            **{f"p_{name}": probabilities[:, i] for i, name in enumerate(classes)},
            "low_confidence": confidence < low_confidence_threshold,
        }
    )


def summarise_recordings(
    predictions: pd.DataFrame,
    validation_report: dict[str, Any],
    contract: dict[str, Any],
) -> pd.DataFrame:
    """Per recording: minutes per activity, activity changes, low-confidence share, coverage."""
    # Overlapping windows would count time twice: each window stands for one hop.
    hop_s = contract["window_size"] * (1.0 - contract["overlap"]) / contract["target_rate_hz"]
    durations = {
        entry["recording_id"]: entry.get("overlap_duration_s", 0.0)
        for entry in validation_report["recordings"]
        if entry["status"] == "accepted"
    }
    # numpy on integer codes: the pandas pivot and groupby cost ~20 ms even for one short
    # recording, which is most of a served request.
    order = np.lexsort(
        (predictions["window_start_ms"].to_numpy(), predictions["recording_id"].to_numpy(str))
    )
    rec_names, rec_codes = np.unique(
        predictions["recording_id"].to_numpy(str)[order], return_inverse=True
    )
    classes = list(contract["class_names"])
    # Predicted activities are always the model's classes: their index via the sorted names.
    sorter = np.argsort(classes)
    position = np.searchsorted(
        np.asarray(classes), predictions["activity"].to_numpy(str)[order], sorter=sorter
    )
    act_codes = sorter[np.minimum(position, len(classes) - 1)]
    n_recordings = len(rec_names)
    windows = np.bincount(rec_codes, minlength=n_recordings)
    same_recording = np.r_[False, rec_codes[1:] == rec_codes[:-1]]
    changed = same_recording & np.r_[False, act_codes[1:] != act_codes[:-1]]
    low = predictions["low_confidence"].to_numpy(bool)[order]
    confidence = predictions["confidence"].to_numpy(np.float64)[order]
    counts = np.bincount(
        rec_codes * len(classes) + act_codes, minlength=n_recordings * len(classes)
    ).reshape(n_recordings, len(classes))
    duration_s = np.asarray([float(durations.get(rec, np.nan)) for rec in rec_names])
    # Windows cover at most one window length beyond the last hop.
    window_s = contract["window_size"] / contract["target_rate_hz"]
    covered_s = (windows - 1) * hop_s + window_s
    columns = {
        "recording_id": pd.array(rec_names, dtype="string"),
        "windows": windows.astype(np.int64),
        "activity_changes": np.bincount(rec_codes, changed, n_recordings).astype(np.int64),
        "low_confidence_share": np.bincount(rec_codes, low, n_recordings) / windows,
        "mean_confidence": np.bincount(rec_codes, confidence, n_recordings) / windows,
        "duration_s": duration_s,
        "coverage": np.minimum(covered_s / np.where(duration_s > 0, duration_s, np.nan), 1.0),
    }
    for i, name in enumerate(classes):
        columns[f"minutes_{name}"] = counts[:, i] * (hop_s / 60.0)
    return pd.DataFrame(columns)


def score_windows(table: pd.DataFrame, classes: list[str]) -> dict[str, Any]:
    """Accuracy and macro-F1 of raw and smoothed activities on windows labelled with a class."""
    scored = table["label"].isin(classes).to_numpy(bool)
    report: dict[str, Any] = {"labelled_windows": int(scored.sum()), "recordings": {}}
    if not scored.any():
        report["note"] = "no recording carries labels in the model's classes"
        return report
    index_of = {name: i for i, name in enumerate(classes)}
    y_true = table["label"][scored].map(index_of).to_numpy(np.int64)
    for column, prefix in (("activity", ""), ("activity_smoothed", "smoothed_")):
        y_pred = table[column][scored].map(index_of).to_numpy(np.int64)
        metrics = classification_metrics(y_true, y_pred, classes)
        report.update({f"{prefix}{k}": metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1")})
        if not prefix:
            report["confusion_matrix"] = metrics["confusion_matrix"]
    correct = table["label"][scored].to_numpy(str) == table["activity"][scored].to_numpy(str)
    recordings = table["recording_id"].to_numpy(str)[scored]
    for rec in np.unique(recordings):
        mine = recordings == rec
        report["recordings"][str(rec)] = {
            "windows": int(mine.sum()),
            "accuracy": float(correct[mine].mean()),
        }
    logger.info(
        "Against labels.csv: macro-F1 %.4f per window, %.4f smoothed, on %d windows",
        report["macro_f1"],
        report["smoothed_macro_f1"],
        report["labelled_windows"],
    )
    return report
