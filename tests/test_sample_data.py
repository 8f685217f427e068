"""to_wearable_export: HAPT recordings re-expressed as smartwatch exports."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from har_mlops.contract import CHANNELS
from har_mlops.datasets import HaptZipDataset, WearableExportDataset
from har_mlops.pipelines.data_processing.nodes import convert_units
from har_mlops.sample_data import to_wearable_export
from har_mlops.units import STANDARD_GRAVITY
from tests.conftest import EPOCH_MS, HAPT_ZIP


def _hapt_like(duration_s: float = 10.0) -> dict:
    """A recording in HaptZipDataset's form: 50 Hz from t = 0 ms, linear signals, 4 labels."""
    t = np.arange(int(duration_s * 50) + 1) * 20.0
    acc = pd.DataFrame({"timestamp": t, "x": 0.001 * t, "y": -0.5 + 0.0 * t, "z": np.ones(t.size)})
    gyro = pd.DataFrame({"timestamp": t, "x": 0.002 * t, "y": -0.001 * t, "z": 0.1 + 0.0 * t})
    labels = pd.DataFrame(
        {
            "start": [0.0, 1520.0, 3020.0, 6020.0],
            "end": [1500.0, 3000.0, 6000.0, 10_000.0],
            "activity": ["STANDING", "SITTING", "WALKING", "LAYING"],
        }
    )
    return {
        "accelerometer": acc,
        "gyroscope": gyro,
        "labels": labels,
        "subject_id": "7",
        "files": {"accelerometer": "RawData/acc_exp01_user07.txt"},
    }


def _export(recording: dict, acc_unit: str = "m/s^2", gyro_unit: str = "rad/s", **kwargs):
    return to_wearable_export(
        recording, EPOCH_MS, acc_unit, gyro_unit, np.random.default_rng(0), **kwargs
    )


@pytest.fixture(scope="module")
def hapt_recording() -> dict:
    """exp01_user01 from the bundled zip, in HaptZipDataset's form (g, rad/s)."""
    return HaptZipDataset(filepath=str(HAPT_ZIP), subjects=[1]).load()["exp01_user01"]


def _samples(recording: dict) -> pd.DataFrame:
    """The accelerometer and gyroscope of a same-clock recording as convert_units' input."""
    acc, gyro = recording["accelerometer"], recording["gyroscope"]
    values = np.column_stack([acc[["x", "y", "z"]].to_numpy(), gyro[["x", "y", "z"]].to_numpy()])
    return pd.DataFrame(values, columns=CHANNELS)


def test_milli_g_and_deg_s_round_trip_to_si(hapt_recording):
    export = _export(hapt_recording, "milli_g", "deg/s")

    si_from_export = convert_units(
        _samples(export), {"accelerometer_unit": "milli_g", "gyroscope_unit": "deg/s"}
    )
    si_from_hapt = convert_units(
        _samples(hapt_recording), {"accelerometer_unit": "g", "gyroscope_unit": "rad/s"}
    )

    np.testing.assert_allclose(
        si_from_export.to_numpy(), si_from_hapt.to_numpy(), rtol=0, atol=1e-9
    )
    acc_g = hapt_recording["accelerometer"][["x", "y", "z"]].to_numpy()
    np.testing.assert_allclose(
        si_from_export[CHANNELS[:3]].to_numpy(), acc_g * STANDARD_GRAVITY, rtol=0, atol=1e-9
    )
    # The export itself is in the requested units.
    np.testing.assert_allclose(export["accelerometer"][["x", "y", "z"]], acc_g * 1000.0, rtol=1e-12)
    np.testing.assert_allclose(
        export["gyroscope"]["x"], np.degrees(hapt_recording["gyroscope"]["x"]), rtol=1e-12
    )


def test_si_export_shifts_the_clock_and_scales_g_exactly():
    recording = _hapt_like()

    export = _export(recording)

    acc, gyro = export["accelerometer"], export["gyroscope"]
    assert list(acc.columns) == list(gyro.columns) == ["timestamp", "x", "y", "z"]
    assert len(acc) == len(gyro) == 501
    assert acc["timestamp"].tolist() == [EPOCH_MS + 20.0 * i for i in range(501)]
    assert gyro["timestamp"].tolist() == acc["timestamp"].tolist()
    assert acc["z"].tolist() == [STANDARD_GRAVITY] * 501
    assert acc["y"].tolist() == [-0.5 * STANDARD_GRAVITY] * 501
    assert gyro["x"].tolist() == recording["gyroscope"]["x"].tolist()  # rad/s stays rad/s
    assert export["subject_id"] == "7"
    assert export["read_errors"] == {}
    assert "files" not in export


def test_labels_move_to_the_same_clock():
    recording = _hapt_like()

    labels = _export(recording, jitter_ms=5.0)["labels"]

    assert labels.to_dict("list") == {
        "start": [EPOCH_MS + 0.0, EPOCH_MS + 1520.0, EPOCH_MS + 3020.0, EPOCH_MS + 6020.0],
        "end": [EPOCH_MS + 1500.0, EPOCH_MS + 3000.0, EPOCH_MS + 6000.0, EPOCH_MS + 10_000.0],
        "activity": ["STANDING", "SITTING", "WALKING", "LAYING"],
    }


def test_unlabelled_recording_stays_unlabelled():
    recording = {**_hapt_like(), "labels": None}

    assert _export(recording)["labels"] is None


def test_jitter_is_bounded_per_stream_independent_and_seeded():
    recording = _hapt_like()
    exact = EPOCH_MS + recording["accelerometer"]["timestamp"].to_numpy()

    export = _export(recording, jitter_ms=3.0)

    acc_offset = export["accelerometer"]["timestamp"].to_numpy() - exact
    gyro_offset = export["gyroscope"]["timestamp"].to_numpy() - exact
    for offset in (acc_offset, gyro_offset):
        assert np.abs(offset).max() <= 3.0
        assert np.abs(offset).max() > 2.9  # 501 uniform draws reach the bound's neighbourhood
        assert offset.min() < 0 < offset.max()
        assert np.all(np.abs(offset) > 0)
    assert not np.allclose(acc_offset, gyro_offset)
    assert np.all(np.diff(export["accelerometer"]["timestamp"]) > 0)  # order kept
    # Values are untouched by jitter; the same seed gives the same export.
    assert export["gyroscope"]["x"].tolist() == recording["gyroscope"]["x"].tolist()
    assert_frame_equal(export["gyroscope"], _export(recording, jitter_ms=3.0)["gyroscope"])


def test_gyroscope_resampled_to_another_rate():
    recording = _hapt_like()

    export = _export(recording, gyroscope_rate_hz=40.0)

    gyro = export["gyroscope"]
    # 0..10 000 ms every 25 ms; the signals are linear in t, so interpolation is exact.
    offsets = 25.0 * np.arange(401)
    assert gyro["timestamp"].tolist() == (EPOCH_MS + offsets).tolist()
    np.testing.assert_allclose(gyro["x"], 0.002 * offsets, rtol=1e-12)
    np.testing.assert_allclose(gyro["y"], -0.001 * offsets, rtol=1e-12)
    np.testing.assert_allclose(gyro["z"], 0.1, rtol=1e-12)
    assert len(export["accelerometer"]) == 501  # the accelerometer keeps its rate


def test_gyroscope_rate_change_interpolates_real_signals(hapt_recording):
    export = _export(hapt_recording, gyroscope_rate_hz=40.0, crop_s=(5.0, 15.0))

    gyro = export["gyroscope"]
    hapt = hapt_recording["gyroscope"]
    t = 5000.0 + 25.0 * np.arange(401)
    assert gyro["timestamp"].tolist() == (EPOCH_MS + t - 5000.0).tolist()
    np.testing.assert_allclose(gyro["z"], np.interp(t, hapt["timestamp"], hapt["z"]), rtol=1e-12)


def test_crop_keeps_the_span_and_clips_labels():
    recording = _hapt_like()

    export = _export(recording, crop_s=(2.0, 4.0))

    acc = export["accelerometer"]
    # Samples 2000..4000 ms; the clock starts at the crop's start.
    assert acc["timestamp"].tolist() == [EPOCH_MS + 20.0 * i for i in range(101)]
    np.testing.assert_allclose(acc["x"], 0.001 * (2000.0 + 20.0 * np.arange(101)) * 9.80665)
    assert export["labels"].to_dict("list") == {
        "start": [EPOCH_MS + 0.0, EPOCH_MS + 1020.0],
        "end": [EPOCH_MS + 1000.0, EPOCH_MS + 2000.0],
        "activity": ["SITTING", "WALKING"],
    }


def test_input_recording_is_not_modified():
    recording = _hapt_like()
    before = copy.deepcopy(recording)

    _export(recording, "milli_g", "deg/s", jitter_ms=3.0, gyroscope_rate_hz=40.0, crop_s=(1, 9))

    for key in ("accelerometer", "gyroscope", "labels"):
        assert_frame_equal(recording[key], before[key])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"acc_unit": "mg"}, "Unknown accelerometer unit 'mg'"),
        ({"gyro_unit": "rpm"}, "Unknown gyroscope unit 'rpm'"),
        ({"jitter_ms": -1.0}, "jitter_ms must be >= 0"),
        ({"gyroscope_rate_hz": 0.0}, "gyroscope_rate_hz must be > 0"),
        ({"crop_s": (4.0, 2.0)}, "start < end"),
        ({"crop_s": (20.0, 30.0)}, "Fewer than 2 samples"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _export(_hapt_like(), **kwargs)


def test_export_survives_a_save_and_load(tmp_path):
    export = _export(_hapt_like(), "milli_g", "deg/s", jitter_ms=3.0, gyroscope_rate_hz=40.0)

    WearableExportDataset(path=str(tmp_path)).save({"rec_a": export})
    loaded = WearableExportDataset(path=str(tmp_path)).load()["rec_a"]

    assert loaded["subject_id"] == "7"
    assert loaded["read_errors"] == {}
    for key in ("accelerometer", "gyroscope", "labels"):
        assert_frame_equal(loaded[key], export[key], check_exact=False, rtol=1e-15)
