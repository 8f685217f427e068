"""The predictor is the inference pipeline: same node functions, same table, compiled forward."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from har_mlops.config import project_parameters
from har_mlops.contract import CHANNELS, scale_signals
from har_mlops.datasets import RecordingIndexDataset, WearableExportDataset
from har_mlops.forward import CompiledForward, power_of_two_buckets
from har_mlops.parameters import Cohort, NonWear, Prediction, RawSource, Smoothing
from har_mlops.pipelines.inference.cohort import ChainSettings, RecordingModel, process_recording
from har_mlops.pipelines.inference.nodes import predict_activities, window_table
from har_mlops.serving.predictor import RecordingRejectedError, samples_to_recordings
from har_mlops.units import STANDARD_GRAVITY


def test_buckets_are_powers_of_two_up_to_the_largest():
    assert power_of_two_buckets(1, 512) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert power_of_two_buckets(4, 100) == [4, 8, 16, 32, 64, 100]
    with pytest.raises(ValueError, match="min_bucket"):
        power_of_two_buckets(0, 8)


SMALL_BUCKETS = [1, 2, 4, 8, 16]
PRETRAINED_TRANSITIONS = (
    Path(__file__).resolve().parents[2] / "data/06_models/pretrained/activity_transitions.json"
)


class _CountingModel:
    """The Keras model behind a call counter.

    Inside a ``tf.function`` the Python body of the model call runs only while tracing, so
    ``calls`` counts traces of *any* function built around it (eager calls count too), not
    only those of the one ``CompiledForward.tracing_count`` reads.
    """

    def __init__(self, model):
        self._model = model
        self.output_shape = model.output_shape
        self.calls = 0

    def __call__(self, x, training=False):
        self.calls += 1
        return self._model(x, training=training)


@pytest.fixture(scope="module", params=[False, True], ids=["graph", "xla"])
def small_forward(request, loaded) -> CompiledForward:
    """Buckets up to 16, as a graph function and XLA-compiled (the served default)."""
    counting = _CountingModel(loaded.predictor.model)
    forward = CompiledForward(counting, 128, 6, SMALL_BUCKETS, jit_compile=request.param)
    forward.counting_model = counting
    return forward


@pytest.mark.parametrize("n", [1, 3, 8, 13, 40])
def test_compiled_forward_equals_keras(loaded, small_forward, n):
    model = loaded.predictor.model
    forward = small_forward
    windows = np.random.default_rng(n).normal(size=(n, 128, 6)).astype(np.float32)
    # 40 > the largest bucket: split into 16 + 16 + 8.
    np.testing.assert_allclose(
        forward(windows), model(windows, training=False).numpy(), atol=1e-5, rtol=0
    )


# Every bucket size, sizes between buckets, and sizes above the largest bucket (split).
NEW_BATCH_SIZES = (1, 3, 5, 7, 11, *SMALL_BUCKETS, 17, 31, 33, 40)


def test_compiled_forward_never_retraces(small_forward):
    forward = small_forward
    # One trace per bucket, all at construction (other tests of this module may have called
    # the forward already: the counts must not depend on that).
    assert forward.tracing_count() == len(SMALL_BUCKETS)
    assert forward.counting_model.calls == len(SMALL_BUCKETS)
    windows = np.random.default_rng(0).normal(size=(40, 128, 6)).astype(np.float32)
    for n in NEW_BATCH_SIZES:
        assert forward(windows[:n]).shape == (n, 6)
    scaler = {"channels": list(CHANNELS), "mean": [0.0] * 6, "std": [1.0] * 6}
    assert forward.predict_signals(windows[:37], scaler).shape == (37, 6)
    assert forward(windows[:0]).shape == (0, 6)
    assert forward.tracing_count() == len(SMALL_BUCKETS)
    assert forward.counting_model.calls == len(SMALL_BUCKETS)


def test_served_forward_is_traced_once_per_bucket(loaded):
    forward = loaded.predictor.forward
    assert forward.tracing_count() == len(forward.buckets) > 1
    largest = forward.buckets[-1]
    for n in (1, 3, 77, forward.buckets[1], largest, largest + 1):
        assert forward(np.zeros((n, 128, 6), np.float32)).shape == (n, 6)
    assert forward.tracing_count() == len(forward.buckets)
    assert forward(np.zeros((0, 128, 6), np.float32)).shape == (0, 6)


def _run_inference_chain(predictor, recordings, folder, acc_unit, gyro_unit) -> pd.DataFrame:
    """Each recording through the inference pipeline's per-recording chain (as one Dask task).

    The recordings are written as a watch-export folder and read back the way
    ``kedro run --pipelines inference`` reads a study: indexed, then read in time chunks.
    """
    WearableExportDataset(str(folder)).save(recordings)
    params = project_parameters()
    raw_source = {
        **predictor.raw_source,
        "accelerometer_unit": acc_unit,
        "gyroscope_unit": gyro_unit,
    }
    settings = ChainSettings(
        RawSource.model_validate(raw_source),
        predictor.validation,
        predictor.resampling,
        predictor.windowing,
        predictor.labels,
        Prediction.model_validate({**predictor.prediction, "jit_compile": False}),
        Smoothing.model_validate(params["smoothing"]),
        NonWear.model_validate(params["inference"]["non_wear"]),
        # Half-minute chunks: the test recordings cross chunk borders.
        Cohort(chunk_minutes=0.5, sequential=True),
    )
    transitions = json.loads(PRETRAINED_TRANSITIONS.read_text())
    model = RecordingModel(predictor.model, predictor.contract, transitions, settings.prediction)
    tables = []
    for recording_id, entry in RecordingIndexDataset(str(folder)).load().items():
        job = {
            "recording_id": recording_id,
            "subject_id": entry["subject_id"],
            "entry": entry,
            "fingerprint": {},
            "model_source": "test",
        }
        result = process_recording(job, model, settings)
        assert result["manifest"]["status"] == "done", result["manifest"]
        tables.append(result["tables"]["windows"])
    return pd.concat(tables, ignore_index=True)


def _served_columns(windows: pd.DataFrame, chain: pd.DataFrame) -> pd.DataFrame:
    """The chain's table cut to the served table's columns and types."""
    return chain[list(windows.columns)].astype(windows.dtypes.to_dict())


def test_window_table_equals_predict_activities(loaded, sample_table, tmp_path):
    predictor = loaded.predictor
    windows, _ = predictor.predict(sample_table)
    # The same windows through the inference chain (Keras model, its own compiled function).
    recordings = samples_to_recordings(sample_table)
    chain = _run_inference_chain(predictor, recordings, tmp_path, "m/s^2", "rad/s")
    pd.testing.assert_frame_equal(
        windows, _served_columns(windows, chain), check_exact=False, atol=1e-5, rtol=0
    )


def test_predictor_equals_the_inference_pipeline(loaded, sample_table, tmp_path):
    predictor = loaded.predictor
    table = pd.concat(
        [sample_table.assign(recording_id="a"), sample_table.assign(recording_id="b")]
    )
    windows, _ = predictor.predict(table)
    chain = _run_inference_chain(
        predictor, samples_to_recordings(table), tmp_path, "m/s^2", "rad/s"
    )
    pd.testing.assert_frame_equal(
        windows, _served_columns(windows, chain), check_exact=False, atol=1e-5, rtol=0
    )
    assert set(windows["recording_id"]) == {"a", "b"}


def test_declared_units_are_converted(loaded, sample_table):
    predictor = loaded.predictor
    si, _ = predictor.predict(sample_table)
    other = sample_table.copy()
    other[["acc_x", "acc_y", "acc_z"]] *= 1000.0 / STANDARD_GRAVITY
    other[["gyro_x", "gyro_y", "gyro_z"]] *= 180.0 / np.pi
    converted, _ = predictor.predict(
        other, {"accelerometer_unit": "milli_g", "gyroscope_unit": "deg/s"}
    )
    pd.testing.assert_frame_equal(si, converted, check_exact=False, atol=1e-4, rtol=0)
    assert (si["activity"] == converted["activity"]).all()


def test_recording_validation_rejects_sparse_data(loaded, sample_table):
    sparse = sample_table.iloc[::20].reset_index(drop=True)
    with pytest.raises(RecordingRejectedError, match="too sparse"):
        loaded.predictor.predict(sparse)


def test_window_table_from_compiled_probabilities_equals_predict_activities(loaded, sample_table):
    predictor = loaded.predictor
    windows, _ = predictor.predict(sample_table)
    result = predictor.predict_detailed(sample_table)
    assert len(result.windows) == len(windows)
    assert result.report["summary"]["accepted"] == 1
    signals = np.random.default_rng(1).normal(size=(5, 128, 6)).astype(np.float32)
    scaler = {"channels": predictor.contract["channels"], **predictor.contract["scaler"]}
    expected = predict_activities(
        {"model": predictor.model},
        {
            "signals": signals,
            "recording_id": np.full(5, "r"),
            "start_ms": np.arange(5.0),
            "end_ms": np.arange(5.0) + 1,
        },
        predictor.contract,
        {**predictor.prediction, "jit_compile": False},
    )
    probabilities = predictor.forward(scale_signals(signals, scaler))
    table = window_table(
        {"recording_id": np.full(5, "r"), "start_ms": np.arange(5.0), "end_ms": np.arange(5.0) + 1},
        probabilities,
        predictor.contract["class_names"],
        predictor.prediction["low_confidence_threshold"],
    )
    pd.testing.assert_frame_equal(table, expected, check_exact=False, atol=1e-5, rtol=0)


def test_samples_to_recordings_groups_ids_as_text_in_table_order():
    n = 8
    table = pd.DataFrame(
        {
            "recording_id": pd.array([1, "b", "1", None, "b", 1, None, "1"], dtype=object),
            "timestamp_ms": np.arange(n) * 20.0,
            **{c: np.arange(n, dtype=float) for c in ["acc_x", "acc_y", "acc_z"]},
            **{c: -np.arange(n, dtype=float) for c in ["gyro_x", "gyro_y", "gyro_z"]},
        }
    )
    recordings = samples_to_recordings(table, default_recording_id="unnamed")
    assert sorted(recordings) == ["1", "b", "unnamed"]
    rows = {rec: r["accelerometer"]["timestamp"].tolist() for rec, r in recordings.items()}
    assert rows == {"1": [0.0, 40.0, 100.0, 140.0], "b": [20.0, 80.0], "unnamed": [60.0, 120.0]}
    assert recordings["b"]["gyroscope"]["x"].tolist() == [-1.0, -4.0]
    assert recordings["unnamed"]["files"]["accelerometer"] == "unnamed/accelerometer"
