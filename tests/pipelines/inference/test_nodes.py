"""Inference nodes: namespaced reuse, contract check, output schema, summaries, scoring."""

from __future__ import annotations

import copy

import keras
import numpy as np
import pandas as pd
import pytest

from har_mlops.contract import CHANNELS
from har_mlops.pipelines.data_processing import create_preprocessing_pipeline
from har_mlops.pipelines.inference import create_chunk_pipeline, create_pipeline
from har_mlops.pipelines.inference.nodes import (
    ContractMismatchError,
    check_contract,
    predict_activities,
    score_windows,
    summarise_recordings,
)
from har_mlops.pipelines.training.model import build_cnn_bilstm
from har_mlops.pipelines.training.nodes import build_contract
from tests.conftest import TINY_ARCHITECTURE


@pytest.fixture
def contract(windowing, resampling, labels_params):
    scaler = {"channels": CHANNELS, "mean": [0.0] * 6, "std": [1.0] * 6}
    return build_contract(scaler, windowing, resampling, labels_params)


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    return build_cnn_bilstm(128, 6, 6, TINY_ARCHITECTURE)


def _windows(n: int, recording_id: str = "rec", window_size: int = 128, channels: int = 6):
    rng = np.random.default_rng(0)
    start = 1_700_000_000_000 + np.arange(n) * 1280
    return {
        "signals": rng.normal(size=(n, window_size, channels)).astype(np.float32),
        "label": np.full(n, "NO_LABEL"),
        "recording_id": np.full(n, recording_id),
        "subject_id": np.full(n, "unknown"),
        "start_ms": start,
        "end_ms": start + 2540,
    }


# --------------------------------------------------------------------------- reuse


def test_inference_runs_the_data_processing_functions_on_each_recording():
    shared = create_preprocessing_pipeline()
    # The very same function objects: one code path for training, inference and serving.
    chunk_functions = {node.func for node in create_chunk_pipeline().nodes}
    assert {node.func for node in shared.nodes} <= chunk_functions
    inference = create_pipeline()
    assert "inference_recordings" in inference.inputs()
    # Shared parameters are not namespaced: inference cannot be configured apart from training.
    assert {"params:windowing", "params:resampling", "params:validation"} <= inference.inputs()
    assert "params:inference.raw_source" in inference.inputs()


# --------------------------------------------------------------------------- contract


MISMATCHES = [
    ("window_size", lambda c, w, r, lab: w.update(window_size=64), "expects 128", "has 64"),
    ("overlap", lambda c, w, r, lab: w.update(overlap=0.25), "expects 0.5", "has 0.25"),
    (
        "target_rate_hz",
        lambda c, w, r, lab: r.update(target_rate_hz=25),
        "expects 50.0",
        "has 25.0",
    ),
    (
        "class_names",
        lambda c, w, r, lab: lab.update(class_set="all"),
        "'WALKING', 'WALKING_UPSTAIRS'",
        "STAND_TO_SIT",
    ),
    ("units", lambda c, w, r, lab: c.update(units={"acc": "g", "gyro": "rad/s"}), "'g'", "m/s^2"),
    (
        "channels",
        lambda c, w, r, lab: c.update(channels=list(reversed(c["channels"]))),
        "'gyro_z', 'gyro_y'",
        "'acc_x', 'acc_y'",
    ),
]


@pytest.mark.parametrize(
    ("field", "change", "model_value", "data_value"), MISMATCHES, ids=[m[0] for m in MISMATCHES]
)
def test_contract_mismatch_names_field_and_both_values(
    field, change, model_value, data_value, contract, windowing, resampling, labels_params
):
    windowing, resampling, labels = (
        copy.deepcopy(windowing),
        copy.deepcopy(resampling),
        copy.deepcopy(labels_params),
    )
    contract = copy.deepcopy(contract)
    change(contract, windowing, resampling, labels)
    bundle = {"model": None, "contract": contract, "source": "model.keras"}
    with pytest.raises(ContractMismatchError) as error:
        check_contract(bundle, _windows(2), windowing, resampling, labels)
    message = str(error.value)
    assert f"{field}: model expects" in message
    assert model_value in message
    assert data_value in message
    assert "model.keras" in message


def test_windows_of_another_shape_break_the_contract(
    contract, windowing, resampling, labels_params
):
    bundle = {"model": None, "contract": contract}
    with pytest.raises(ContractMismatchError, match="window_size: model expects 128.*has 64"):
        check_contract(bundle, _windows(2, window_size=64), windowing, resampling, labels_params)
    with pytest.raises(ContractMismatchError, match="channels: model expects"):
        check_contract(bundle, _windows(2, channels=3), windowing, resampling, labels_params)


def test_honoured_contract_is_passed_on(contract, windowing, resampling, labels_params):
    bundle = {"model": "the model", "contract": contract}
    assert check_contract(bundle, _windows(2), windowing, resampling, labels_params) == contract


# --------------------------------------------------------------------------- predictions


def test_window_predictions_schema(tiny_model, contract):
    windows = _windows(5)
    table = predict_activities(
        {"model": tiny_model, "contract": contract},
        windows,
        contract,
        {"low_confidence_threshold": 0.6, "batch_size": 2, "jit_compile": True},
    )
    classes = contract["class_names"]
    assert list(table.columns) == [
        "recording_id",
        "window_start_ms",
        "window_end_ms",
        "activity",
        "confidence",
        *[f"p_{c}" for c in classes],
        "low_confidence",
    ]
    assert len(table) == 5
    assert table["window_start_ms"].tolist() == windows["start_ms"].tolist()
    probabilities = table[[f"p_{c}" for c in classes]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(table["confidence"], probabilities.max(axis=1))
    assert table["activity"].tolist() == [classes[i] for i in probabilities.argmax(axis=1)]
    assert table["low_confidence"].tolist() == (table["confidence"] < 0.6).tolist()
    # Batching must not change the numbers: batch size 2 vs. Keras on the whole array.
    expected = tiny_model.predict(windows["signals"], verbose=0)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_no_windows_gives_an_empty_table_with_the_schema(tiny_model, contract):
    table = predict_activities(
        {"model": tiny_model, "contract": contract},
        _windows(0),
        contract,
        {"low_confidence_threshold": 0.6, "batch_size": 8, "jit_compile": False},
    )
    assert table.empty
    assert "p_LAYING" in table.columns


# --------------------------------------------------------------------------- summaries


def _prediction_table(rows: list[tuple[str, int, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["recording_id", "window_start_ms", "activity", "confidence"]
    )
    frame["window_end_ms"] = frame["window_start_ms"] + 2540
    frame["low_confidence"] = frame["confidence"] < 0.6
    return frame


def test_summary_arithmetic_on_a_hand_made_table(contract):
    hop_ms = 1280  # 64 samples at 50 Hz
    rows = [
        # Out of order on purpose: the summary sorts by time.
        ("a", 2 * hop_ms, "SITTING", 0.9),
        ("a", 0, "WALKING", 0.5),
        ("a", 1 * hop_ms, "WALKING", 0.95),
        ("a", 3 * hop_ms, "WALKING", 0.4),
        ("b", 0, "LAYING", 0.99),
    ]
    report = {
        "recordings": [
            {"recording_id": "a", "status": "accepted", "overlap_duration_s": 10.0},
            {"recording_id": "b", "status": "accepted", "overlap_duration_s": 2.0},
            {"recording_id": "c", "status": "rejected"},
        ]
    }
    summary = summarise_recordings(_prediction_table(rows), report, contract).set_index(
        "recording_id"
    )
    a, b = summary.loc["a"], summary.loc["b"]
    assert a["windows"] == 4
    assert a["activity_changes"] == 2  # WALKING -> SITTING -> WALKING
    assert a["low_confidence_share"] == pytest.approx(0.5)
    assert a["mean_confidence"] == pytest.approx((0.9 + 0.5 + 0.95 + 0.4) / 4)
    assert a["minutes_WALKING"] == pytest.approx(3 * 1.28 / 60)
    assert a["minutes_SITTING"] == pytest.approx(1.28 / 60)
    assert a["minutes_LAYING"] == 0
    assert a["duration_s"] == 10.0
    # Three hops and one window length: 3 * 1.28 s + 2.56 s of 10 s.
    assert a["coverage"] == pytest.approx((3 * 1.28 + 2.56) / 10.0)
    assert b["activity_changes"] == 0
    assert b["coverage"] == 1.0  # one window (2.56 s) over a 2 s overlap is capped
    assert "c" not in summary.index


# --------------------------------------------------------------------------- scoring


def _scored_table(rows) -> pd.DataFrame:
    recording, label, activity, smoothed = zip(*rows)
    return pd.DataFrame(
        {
            "recording_id": list(recording),
            "label": pd.array(label, dtype="string"),
            "activity": list(activity),
            "activity_smoothed": list(smoothed),
        }
    )


def test_scores_count_labelled_windows_only(contract):
    table = _scored_table(
        [
            ("a", "WALKING", "WALKING", "WALKING"),
            ("a", "STANDING", "SITTING", "STANDING"),
            ("b", None, "LAYING", "LAYING"),
        ]
    )
    report = score_windows(table, contract["class_names"])
    assert report["labelled_windows"] == 2
    assert report["accuracy"] == pytest.approx(0.5)
    assert report["smoothed_accuracy"] == pytest.approx(1.0)
    assert report["recordings"] == {"a": {"windows": 2, "accuracy": 0.5}}
    assert np.asarray(report["confusion_matrix"]["matrix"]).sum() == 2


def test_scores_without_labels_say_so(contract):
    table = _scored_table([("b", None, "LAYING", "LAYING")])
    report = score_windows(table, contract["class_names"])
    assert report["labelled_windows"] == 0
    assert "note" in report
