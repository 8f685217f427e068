"""Nodes of the data_processing pipeline, each pinned on tiny hand-made inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from har_mlops.contract import CHANNELS
from har_mlops.pipelines.data_processing.nodes import (
    assign_labels,
    convert_units,
    filter_windows_by_class,
    fit_scaler,
    resample_recordings,
    split_windows,
    summarise_windows,
    window_samples,
)
from har_mlops.units import STANDARD_GRAVITY, unit_factor
from tests.conftest import EPOCH_MS, make_recording

# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("sensor", "unit", "factor"),
    [
        ("accelerometer", "g", 9.80665),
        ("accelerometer", "milli_g", 0.00980665),
        ("accelerometer", "m/s^2", 1.0),
        ("gyroscope", "rad/s", 1.0),
        ("gyroscope", "deg/s", 0.017453292519943295),
    ],
)
def test_unit_factor(sensor, unit, factor):
    assert unit_factor(sensor, unit) == pytest.approx(factor, rel=1e-15)


def test_unit_factor_unknown_unit_names_it():
    with pytest.raises(ValueError, match=r"Unknown accelerometer unit 'ft/s\^2'"):
        unit_factor("accelerometer", "ft/s^2")
    with pytest.raises(ValueError, match=r"Unknown gyroscope unit 'g'; declare one of"):
        unit_factor("gyroscope", "g")


# --------------------------------------------------------------------------- convert_units


def _channel_frame(rows: list[list[float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=CHANNELS)
    frame.insert(0, "recording_id", "r")
    frame.insert(1, "timestamp", np.arange(len(rows)) * 20.0)
    return frame


def test_convert_units_subtracts_offsets_before_the_factor():
    samples = _channel_frame(
        [[1.0, 0.0, -1.0, 181.0, 90.0, 0.0], [0.1, 2.0, 0.0, 1.0, 0.0, -180.0]]
    )
    original = samples.copy()
    raw_source = {
        "accelerometer_unit": "g",
        "gyroscope_unit": "deg/s",
        "accelerometer_offset": [0.1, 0.0, -0.5],
        "gyroscope_offset": [1.0, 0.0, 0.0],
    }

    out = convert_units(samples, raw_source)

    g = STANDARD_GRAVITY
    expected = np.array(
        [
            [0.9 * g, 0.0, -0.5 * g, math.pi, math.pi / 2, 0.0],
            [0.0, 2.0 * g, 0.5 * g, 0.0, 0.0, -math.pi],
        ]
    )
    np.testing.assert_allclose(out[CHANNELS].to_numpy(), expected, rtol=1e-12, atol=1e-12)
    assert out["acc_x"].iloc[0] == pytest.approx(0.9 * 9.80665, rel=1e-12)
    # Other columns and the input frame are untouched.
    assert_frame_equal(out[["recording_id", "timestamp"]], original[["recording_id", "timestamp"]])
    assert_frame_equal(samples, original)


def test_convert_units_milli_g_and_default_offsets():
    samples = _channel_frame([[1000.0, -500.0, 2.0, 1.0, 2.0, 3.0]])

    out = convert_units(samples, {"accelerometer_unit": "milli_g", "gyroscope_unit": "rad/s"})

    np.testing.assert_allclose(
        out[CHANNELS].to_numpy()[0],
        [9.80665, -4.903325, 0.0196133, 1.0, 2.0, 3.0],
        rtol=1e-12,
    )


def test_convert_units_si_is_identity(si_raw_source):
    samples = _channel_frame([[1.5, -2.5, 9.8, 0.1, -0.2, 0.3]])

    out = convert_units(samples, si_raw_source)

    assert_frame_equal(out, samples)


def test_convert_units_unknown_unit_raises():
    samples = _channel_frame([[0.0] * 6])
    with pytest.raises(ValueError, match="'furlongs'"):
        convert_units(samples, {"accelerometer_unit": "furlongs", "gyroscope_unit": "rad/s"})


# --------------------------------------------------------------------------- resample_recordings


def _record(acc: pd.DataFrame, gyro: pd.DataFrame, subject: str = "s1") -> dict:
    return {"accelerometer": acc, "gyroscope": gyro, "labels": None, "subject_id": subject}


def _linear_streams(t_acc: np.ndarray, t_gyro: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Streams whose every axis is a linear function of time, so linear interpolation is exact."""
    ua, ug = (t_acc - EPOCH_MS) / 1000.0, (t_gyro - EPOCH_MS) / 1000.0
    acc = pd.DataFrame({"timestamp": t_acc, "x": 1.0 * ua, "y": 2.0 - 0.5 * ua, "z": 3.0 + 0 * ua})
    gyro = pd.DataFrame({"timestamp": t_gyro, "x": 2.0 * ug, "y": -1.0 * ug, "z": 0.5 + 0 * ug})
    return acc, gyro


def _expected_linear(timestamps: np.ndarray) -> np.ndarray:
    u = (np.asarray(timestamps, dtype=float) - EPOCH_MS) / 1000.0
    return np.column_stack(
        [u, 2.0 - 0.5 * u, np.full_like(u, 3.0), 2.0 * u, -u, np.full_like(u, 0.5)]
    )


def test_resample_clean_50hz_recording_passes_through_unchanged(resampling):
    acc, gyro = make_recording(duration_s=10.0)

    out = resample_recordings({"rec_a": _record(acc, gyro, subject="7")}, resampling)

    assert list(out.columns) == ["recording_id", "subject_id", "timestamp", "segment_id", *CHANNELS]
    assert len(out) == 501
    np.testing.assert_array_equal(out["timestamp"].to_numpy(), acc["timestamp"].to_numpy(float))
    np.testing.assert_array_equal(out[CHANNELS[:3]].to_numpy(), acc[["x", "y", "z"]].to_numpy())
    np.testing.assert_array_equal(out[CHANNELS[3:]].to_numpy(), gyro[["x", "y", "z"]].to_numpy())
    assert (out["segment_id"] == 0).all()
    assert out["segment_id"].dtype == np.int32
    # Categorical: one id per recording, not a string per sample.
    assert out["recording_id"].dtype == "category"
    assert out["subject_id"].dtype == "category"
    assert out["recording_id"].astype(str).eq("rec_a").all()
    assert set(out["recording_id"]) == {"rec_a"}
    assert set(out["subject_id"]) == {"7"}


def test_resample_merges_jittered_streams_at_different_rates_onto_exact_grid(resampling):
    rng = np.random.default_rng(0)
    # Accelerometer ~50 Hz and gyroscope ~100 Hz, each with +-2 ms integer jitter; the
    # gyroscope starts before and ends after the accelerometer, so every acc sample merges.
    t_acc = EPOCH_MS + np.arange(0, 10_001, 20) + rng.integers(-2, 3, 501)
    t_gyro = EPOCH_MS - 10 + np.arange(0, 10_031, 10) + rng.integers(-2, 3, 1004)
    acc, gyro = _linear_streams(t_acc.astype(float), t_gyro.astype(float))
    assert np.abs(np.diff(t_acc) - 20).max() > 0  # really jittered

    out = resample_recordings({"rec_j": _record(acc, gyro)}, resampling)

    n_expected = int((t_acc[-1] - t_acc[0]) // 20) + 1
    expected_t = t_acc[0] + 20.0 * np.arange(n_expected)
    np.testing.assert_array_equal(out["timestamp"].to_numpy(), expected_t)
    assert np.all(np.diff(out["timestamp"].to_numpy()) == 20.0)
    assert (out["segment_id"] == 0).all()
    np.testing.assert_allclose(out[CHANNELS].to_numpy(), _expected_linear(expected_t), atol=1e-9)


def test_resample_does_not_interpolate_across_a_long_gap(resampling):
    acc, gyro = make_recording(duration_s=10.0)
    offset = acc["timestamp"] - EPOCH_MS
    acc = acc[(offset <= 3000) | (offset >= 4000)].reset_index(drop=True)  # 1 s hole

    out = resample_recordings({"rec_g": _record(acc, gyro)}, resampling)

    t = out["timestamp"].to_numpy() - EPOCH_MS
    assert len(out) == 501 - 49
    assert not ((t > 3000) & (t < 4000)).any()
    np.testing.assert_array_equal(t, acc["timestamp"].to_numpy(float) - EPOCH_MS)
    assert out["segment_id"].tolist() == [0] * 151 + [1] * 301
    assert t[150] == 3000.0 and t[151] == 4000.0


def test_resample_bridges_a_short_gap_with_exact_linear_interpolation(resampling):
    acc, gyro = make_recording(duration_s=10.0)
    offset = acc["timestamp"] - EPOCH_MS
    acc = acc[~offset.isin([5020, 5040])].reset_index(drop=True)  # 60 ms hole
    acc_at_5000 = acc.loc[acc["timestamp"] == EPOCH_MS + 5000, "x"].item()
    acc_at_5060 = acc.loc[acc["timestamp"] == EPOCH_MS + 5060, "x"].item()

    out = resample_recordings({"rec_s": _record(acc, gyro)}, resampling)

    assert len(out) == 501
    assert (out["segment_id"] == 0).all()
    row = out.loc[out["timestamp"] == EPOCH_MS + 5020].iloc[0]
    assert row["acc_y"] == pytest.approx(0.5 * 5.02, abs=1e-12)  # linear signal: exact
    assert row["acc_z"] == STANDARD_GRAVITY
    # sin is not linear: the bridged value is the straight line between the neighbours.
    assert row["acc_x"] == pytest.approx(acc_at_5000 + (acc_at_5060 - acc_at_5000) / 3, abs=1e-12)
    assert row["gyro_y"] == pytest.approx(-0.1 * 5.02, abs=1e-12)  # gyro had no hole


@pytest.mark.parametrize(("hole_ms", "segments"), [(100, 1), (120, 2)])
def test_resample_max_gap_boundary_is_inclusive(resampling, hole_ms, segments):
    acc, gyro = make_recording(duration_s=4.0)
    offset = acc["timestamp"] - EPOCH_MS
    acc = acc[(offset <= 2000) | (offset >= 2000 + hole_ms)].reset_index(drop=True)

    out = resample_recordings({"r": _record(acc, gyro)}, resampling)

    assert out["segment_id"].nunique() == segments
    assert len(out) == (201 if segments == 1 else 201 - hole_ms // 20 + 1)


def test_resample_drops_acc_samples_without_a_gyro_sample_within_tolerance(resampling):
    # Gyroscope has an 80 ms hole (1000 -> 1080): under max_gap, but the accelerometer sample
    # at 1040 is 40 ms from any gyro sample (> merge_tolerance_ms=25) so it is not merged;
    # its (spiked) value must not reach the output, the grid point is interpolated instead.
    t = EPOCH_MS + np.arange(0, 2001, 20, dtype=float)
    t_gyro = t[~np.isin(t - EPOCH_MS, [1020, 1040, 1060])]
    acc, gyro = _linear_streams(t, t_gyro)
    acc.loc[acc["timestamp"] == EPOCH_MS + 1040, "x"] = 1000.0

    out = resample_recordings({"r": _record(acc, gyro)}, resampling)

    np.testing.assert_array_equal(out["timestamp"].to_numpy(), t)
    assert (out["segment_id"] == 0).all()
    np.testing.assert_allclose(out[CHANNELS].to_numpy(), _expected_linear(t), atol=1e-9)


def test_resample_ignores_a_gyro_sample_far_from_every_acc_sample(resampling):
    # The accelerometer has a 1 s hole (3000..4000); the gyroscope (50 Hz, 10 ms phase) has
    # the same hole but for one wild sample at 3500, 500 ms from any accelerometer sample.
    t_acc = EPOCH_MS + np.arange(0, 8001, 20, dtype=float)
    t_acc = t_acc[((t_acc - EPOCH_MS) <= 3000) | ((t_acc - EPOCH_MS) >= 4000)]
    t_gyro = EPOCH_MS + 10 + np.arange(0, 8001, 20, dtype=float)
    t_gyro = t_gyro[((t_gyro - EPOCH_MS) < 3000) | ((t_gyro - EPOCH_MS) > 4000)]
    t_gyro = np.sort(np.r_[t_gyro, EPOCH_MS + 3500.0])
    acc, gyro = _linear_streams(t_acc, t_gyro)
    gyro.loc[gyro["timestamp"] == EPOCH_MS + 3500, ["x", "y", "z"]] = 999.0

    out = resample_recordings({"r": _record(acc, gyro)}, resampling)

    t = out["timestamp"].to_numpy() - EPOCH_MS
    # acc 0 precedes the first gyro sample (10): no extrapolation; acc 3000 and 4000 sit
    # between gyro samples 510 ms apart (> max_gap_ms): not merged. The last gyro is 8010.
    assert t[0] == 20.0
    assert t[-1] == 8000.0
    assert len(out) == 400 - 49 - 2
    assert t[out["segment_id"].to_numpy() == 0].max() == 2980.0
    assert t[out["segment_id"].to_numpy() == 1].min() == 4020.0
    assert out["segment_id"].unique().tolist() == [0, 1]
    assert not (out[CHANNELS].to_numpy() > 100).any()
    np.testing.assert_allclose(
        out[CHANNELS].to_numpy(), _expected_linear(out["timestamp"].to_numpy()), atol=1e-9
    )


def test_resample_concatenates_recordings_and_skips_ones_without_overlap(resampling, caplog):
    acc, gyro = make_recording(duration_s=1.0)
    late_gyro = gyro.assign(timestamp=gyro["timestamp"] + 60_000)
    records = {"b": _record(acc, gyro, "2"), "a": _record(acc, late_gyro, "1")}

    out = resample_recordings(records, resampling)

    assert out["recording_id"].unique().tolist() == ["b"]
    assert len(out) == 51
    assert "Recording a has no overlapping samples after merging" in caplog.text


def test_resample_rejects_max_gap_below_one_period(resampling):
    acc, gyro = make_recording(duration_s=1.0)
    with pytest.raises(ValueError, match="max_gap_ms must be at least one sample period"):
        resample_recordings({"r": _record(acc, gyro)}, {**resampling, "max_gap_ms": 19})


# --------------------------------------------------------------------------- assign_labels


def _samples(rec_ids: list[str], timestamps: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"recording_id": pd.array(rec_ids, dtype="string"), "timestamp": timestamps, "acc_x": 0.0}
    )


def test_assign_labels_inclusive_bounds_na_outside_and_label_map():
    t = [80.0, 100.0, 120.0, 140.0, 160.0, 180.0, 200.0, 260.0, 280.0]
    samples = _samples(["a"] * 9 + ["b"] * 2 + ["c"] * 2, t + [100.0, 120.0, 100.0, 120.0])
    validated = {
        "a": {
            "labels": pd.DataFrame(
                {"start": [100.0, 200.0], "end": [140.0, 260.0], "activity": ["walk", "sit"]}
            )
        },
        "b": {"labels": None},
        "c": {"labels": pd.DataFrame({"start": [], "end": [], "activity": []})},
    }
    raw_source = {"label_map": {"walk": "WALKING"}}

    out = assign_labels(samples, validated, raw_source)

    assert out["label"].dtype == "category"
    assert out["label"].astype("string").tolist()[:9] == [
        pd.NA,
        "WALKING",  # exactly at start
        "WALKING",
        "WALKING",  # exactly at end: inclusive
        pd.NA,  # the next sample is not labelled
        pd.NA,
        "sit",  # not in label_map: kept as is
        "sit",
        pd.NA,
    ]
    assert out["label"].iloc[9:].isna().all()  # no labels / empty labels: unlabelled
    assert "label" not in samples.columns
    assert_frame_equal(out.drop(columns="label"), samples)


def test_assign_labels_without_label_map(raw_source):
    samples = _samples(["a", "a"], [0.0, 20.0])
    validated = {
        "a": {"labels": pd.DataFrame({"start": [0.0], "end": [10.0], "activity": ["LAYING"]})}
    }

    out = assign_labels(samples, validated, {**raw_source, "label_map": None})

    assert out["label"].astype("string").tolist() == ["LAYING", pd.NA]


# --------------------------------------------------------------------------- window_samples


def _window_input(
    runs: list[tuple[str, int, int]], labels: list[str | None] | None = None
) -> pd.DataFrame:
    """Rows for each (recording_id, segment_id, n); channel c of row i holds i + 1000 * c."""
    rec = [r for r, _, n in runs for _ in range(n)]
    seg = [s for _, s, n in runs for _ in range(n)]
    i = np.arange(len(rec))
    frame = pd.DataFrame(
        {
            "recording_id": pd.array(rec, dtype="string"),
            "subject_id": pd.array([f"subj_{r}" for r in rec], dtype="string"),
            "timestamp": 1000.0 + 20.0 * i,
            "segment_id": np.asarray(seg, dtype=np.int32),
        }
    )
    for c, name in enumerate(CHANNELS):
        frame[name] = i + 1000.0 * c
    if labels is not None:
        frame["label"] = pd.array(labels, dtype="string")
    return frame


def _expected_signals(starts: list[int], size: int) -> np.ndarray:
    i = np.asarray(starts)[:, None] + np.arange(size)[None, :]
    return (i[:, :, None] + 1000.0 * np.arange(6)[None, None, :]).astype(np.float32)


def test_window_samples_stride_and_contents(windowing):
    samples = _window_input([("r", 0, 10)], ["WALKING"] * 10)

    w = window_samples(samples, {**windowing, "window_size": 4, "overlap": 0.5})

    assert w["signals"].dtype == np.float32
    assert w["signals"].shape == (4, 4, 6)
    np.testing.assert_array_equal(w["signals"], _expected_signals([0, 2, 4, 6], 4))
    assert w["signals"][1, :, 0].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert w["signals"][1, 0, :].tolist() == [2.0, 1002.0, 2002.0, 3002.0, 4002.0, 5002.0]
    assert w["label"].tolist() == ["WALKING"] * 4
    assert w["recording_id"].tolist() == ["r"] * 4
    assert w["subject_id"].tolist() == ["subj_r"] * 4
    assert w["start_ms"].tolist() == [1000.0, 1040.0, 1080.0, 1120.0]
    assert w["end_ms"].tolist() == [1060.0, 1100.0, 1140.0, 1180.0]
    assert w["signals"].flags["C_CONTIGUOUS"]


def test_window_samples_never_cross_segment_or_recording_boundaries(windowing):
    # a/0: 5 rows (0-4), a/1: 6 rows (5-10), b/1: 4 rows (11-14); b reuses a's segment id.
    samples = _window_input([("a", 0, 5), ("a", 1, 6), ("b", 1, 4)], ["SITTING"] * 15)

    w = window_samples(samples, {**windowing, "window_size": 4, "overlap": 0.5})

    starts = [0, 5, 7, 11]
    np.testing.assert_array_equal(w["signals"], _expected_signals(starts, 4))
    assert w["recording_id"].tolist() == ["a", "a", "a", "b"]
    assert w["subject_id"].tolist() == ["subj_a", "subj_a", "subj_a", "subj_b"]
    assert w["start_ms"].tolist() == [1000.0 + 20 * s for s in starts]
    assert w["end_ms"].tolist() == [1000.0 + 20 * (s + 3) for s in starts]


LABEL_RUN = ["W"] * 4 + ["W", "W", "W", "S"] + ["W", "W", None, None] + [None] * 4


@pytest.mark.parametrize(
    ("policy", "share", "expected"),
    [
        ("single", 0.5, ["W", "", "", ""]),
        ("majority", 0.5, ["W", "W", "W", ""]),
        ("majority", 0.75, ["W", "W", "", ""]),
        ("majority", 1.0, ["W", "", "", ""]),
    ],
)
def test_window_samples_label_policies(windowing, policy, share, expected):
    samples = _window_input([("r", 0, 16)], LABEL_RUN)
    params = {
        **windowing,
        "window_size": 4,
        "overlap": 0.0,
        "label_policy": policy,
        "majority_share": share,
    }

    w = window_samples(samples, params)

    assert w["label"].tolist() == expected
    assert w["start_ms"].tolist() == [1000.0, 1080.0, 1160.0, 1240.0]


def test_window_samples_majority_picks_the_most_common_label(windowing):
    samples = _window_input([("r", 0, 4)], ["S", "W", "W", "W"])
    params = {**windowing, "window_size": 4, "label_policy": "majority", "majority_share": 0.5}

    assert window_samples(samples, params)["label"].tolist() == ["W"]


def test_window_samples_unknown_policy_raises(windowing):
    samples = _window_input([("r", 0, 4)], ["W"] * 4)
    with pytest.raises(ValueError, match="Unknown windowing.label_policy 'vote'"):
        window_samples(samples, {**windowing, "window_size": 4, "label_policy": "vote"})


def test_window_samples_high_overlap_means_stride_one(windowing):
    samples = _window_input([("r", 0, 6)], ["W"] * 6)

    w = window_samples(samples, {**windowing, "window_size": 4, "overlap": 0.75})

    assert w["start_ms"].tolist() == [1000.0, 1020.0, 1040.0]


def test_window_samples_unlabelled_and_too_short_inputs(windowing):
    unlabelled = window_samples(_window_input([("r", 0, 8)]), {**windowing, "window_size": 4})
    assert unlabelled["label"].tolist() == ["", "", ""]

    short = window_samples(_window_input([("r", 0, 3)], ["W"] * 3), windowing)
    assert short["signals"].shape == (0, 128, 6)
    assert short["signals"].dtype == np.float32
    assert short["label"].shape == (0,)
    assert short["start_ms"].shape == short["end_ms"].shape == (0,)


# --------------------------------------------------------------------------- filter_windows_by_class


def _windows(labels: list[str], subjects: list[str]) -> dict[str, np.ndarray]:
    n = len(labels)
    return {
        "signals": np.arange(n * 2 * 6, dtype=np.float32).reshape(n, 2, 6),
        "label": np.asarray(labels),
        "recording_id": np.asarray([f"rec_{s}" for s in subjects]),
        "subject_id": np.asarray(subjects),
        "start_ms": np.arange(n) * 100.0,
        "end_ms": np.arange(n) * 100.0 + 20.0,
    }


def test_filter_windows_by_class_basic(labels_params):
    windows = _windows(["SITTING", "", "WALKING", "STAND_TO_SIT", "LAYING"], list("12345"))

    out = filter_windows_by_class(windows, labels_params)

    assert out["label"].tolist() == ["SITTING", "WALKING", "LAYING"]
    assert out["label_index"].tolist() == [3, 0, 5]
    assert out["label_index"].dtype == np.int64
    assert out["subject_id"].tolist() == ["1", "3", "5"]
    assert out["start_ms"].tolist() == [0.0, 200.0, 400.0]
    np.testing.assert_array_equal(out["signals"], windows["signals"][[0, 2, 4]])


def test_filter_windows_by_class_all(labels_params):
    windows = _windows(["SITTING", "", "WALKING", "STAND_TO_SIT", "LIE_TO_STAND"], list("12345"))

    out = filter_windows_by_class(windows, {**labels_params, "class_set": "all"})

    assert out["label"].tolist() == ["SITTING", "WALKING", "STAND_TO_SIT", "LIE_TO_STAND"]
    assert out["label_index"].tolist() == [3, 0, 6, 11]


def test_filter_windows_by_class_unknown_class_set(labels_params):
    with pytest.raises(
        ValueError, match=r"labels.class_set 'nope' is not one of \['all', 'basic'\]"
    ):
        filter_windows_by_class(
            _windows(["SITTING"], ["1"]), {**labels_params, "class_set": "nope"}
        )


# --------------------------------------------------------------------------- split_windows

SUBJECTS = ["1", "1", "2", "3", "3", "4", "5", "6", "6", "6"]


def _split_input() -> dict[str, np.ndarray]:
    return _windows(["WALKING"] * len(SUBJECTS), SUBJECTS)


def _subjects(part: dict[str, np.ndarray]) -> set[str]:
    return set(part["subject_id"].tolist())


def test_split_windows_explicit_validation_subjects(split_params):
    params = {**split_params, "test_subjects": [2, 4], "validation_subjects": [3]}

    train, val, test = split_windows(_split_input(), params)

    assert _subjects(train) == {"1", "5", "6"}
    assert _subjects(val) == {"3"}
    assert _subjects(test) == {"2", "4"}
    assert train["start_ms"].tolist() == [0.0, 100.0, 600.0, 700.0, 800.0, 900.0]
    assert val["start_ms"].tolist() == [300.0, 400.0]
    assert test["start_ms"].tolist() == [200.0, 500.0]
    for part in (train, val, test):
        assert set(part) == set(_split_input())
        assert part["signals"].shape[0] == part["label"].size


def test_split_windows_validation_fraction_is_seeded_and_disjoint(split_params):
    params = {**split_params, "test_subjects": [2, 4], "validation_fraction": 0.5, "seed": 42}

    first = split_windows(_split_input(), params)
    second = split_windows(_split_input(), params)

    train, val, test = first
    assert _subjects(val) == {"1", "6"}  # 2 of the 4 remaining subjects, drawn with seed 42
    assert _subjects(train) == {"3", "5"}
    assert _subjects(test) == {"2", "4"}
    for a, b in zip(first, second):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    all_parts = [_subjects(p) for p in first]
    assert sum(len(s) for s in all_parts) == len(set(SUBJECTS))


def test_split_windows_fraction_draws_at_least_one_subject(split_params):
    params = {**split_params, "test_subjects": [2, 4], "validation_fraction": 0.01}

    train, val, _ = split_windows(_split_input(), params)

    assert len(_subjects(val)) == 1
    assert _subjects(train) | _subjects(val) == {"1", "3", "5", "6"}


def test_split_windows_rejects_subject_in_validation_and_test(split_params):
    params = {**split_params, "test_subjects": [2, 4], "validation_subjects": ["4", "3"]}
    with pytest.raises(ValueError, match=r"Subjects \['4'\] are both validation and test"):
        split_windows(_split_input(), params)


@pytest.mark.parametrize(
    ("test_subjects", "validation_subjects", "empty"),
    [
        ([2], [99], "validation"),
        ([99], [3], "test"),
        ([1, 2, 4, 5, 6], [3], "train"),
    ],
)
def test_split_windows_empty_split_raises(split_params, test_subjects, validation_subjects, empty):
    params = {
        **split_params,
        "test_subjects": test_subjects,
        "validation_subjects": validation_subjects,
    }
    with pytest.raises(ValueError, match=f"The {empty} split is empty"):
        split_windows(_split_input(), params)


# --------------------------------------------------------------------------- fit_scaler


def test_fit_scaler_exact_mean_and_std_constant_channel_gets_one():
    signals = np.zeros((2, 2, 6), dtype=np.float32)
    signals[:, :, 0] = [[1, 3], [1, 3]]  # mean 2, std 1
    signals[:, :, 1] = [[0, 0], [4, 4]]  # mean 2, std 2
    signals[:, :, 2] = [[-1, -1], [-1, -1]]  # constant -> std 1.0 (not 0)
    signals[:, :, 3] = [[0.5, 1.5], [2.5, 3.5]]  # mean 2, std sqrt(1.25)
    signals[:, :, 4] = [[10, 10], [10, 10]]
    signals[:, :, 5] = [[-2, 2], [-2, 2]]  # mean 0, std 2

    scaler = fit_scaler({"signals": signals, "label": np.array(["a", "b"])})

    assert scaler["channels"] == CHANNELS
    assert scaler["mean"] == [2.0, 2.0, -1.0, 2.0, 10.0, 0.0]
    assert scaler["std"] == pytest.approx([1.0, 2.0, 1.0, math.sqrt(1.25), 1.0, 2.0], rel=1e-15)
    assert scaler["fitted_on_windows"] == 2
    assert all(type(v) is float for v in scaler["mean"] + scaler["std"])


def test_fit_scaler_matches_numpy_on_train_windows_only():
    rng = np.random.default_rng(3)
    train = rng.normal(2.0, 3.0, size=(5, 8, 6)).astype(np.float32)
    validation = rng.normal(-50.0, 10.0, size=(5, 8, 6)).astype(np.float32)

    scaler = fit_scaler({"signals": train})

    flat = train.reshape(-1, 6).astype(np.float64)
    np.testing.assert_allclose(scaler["mean"], flat.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scaler["std"], flat.std(axis=0), rtol=1e-12)
    both = np.concatenate([train, validation]).reshape(-1, 6)
    assert not np.allclose(scaler["mean"], both.mean(axis=0), atol=1.0)


# --------------------------------------------------------------------------- summarise_windows


def test_summarise_windows_counts(labels_params):
    train = _windows(["WALKING", "WALKING", "LAYING"], ["10", "2", "10"])
    val = _windows(["SITTING"], ["s7"])
    test = _windows(["WALKING", "STANDING"], ["3", "alice"])

    summary = summarise_windows(train, val, test, labels_params)

    zeros = dict.fromkeys(labels_params["class_sets"]["basic"], 0)
    assert summary == {
        "classes": [
            "WALKING",
            "WALKING_UPSTAIRS",
            "WALKING_DOWNSTAIRS",
            "SITTING",
            "STANDING",
            "LAYING",
        ],
        "splits": {
            "train": {
                "windows": 3,
                "per_class": {**zeros, "WALKING": 2, "LAYING": 1},
                "subjects": ["2", "10"],  # numeric order, not string order
            },
            "validation": {"windows": 1, "per_class": {**zeros, "SITTING": 1}, "subjects": ["s7"]},
            "test": {
                "windows": 2,
                "per_class": {**zeros, "WALKING": 1, "STANDING": 1},
                "subjects": ["3", "alice"],
            },
        },
    }
