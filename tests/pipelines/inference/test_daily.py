"""Non-wear flags, local days across DST, additive daily partials and the minute timeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from har_mlops.parameters import NonWear
from har_mlops.pipelines.inference.daily import (
    NON_WEAR_LABEL,
    combine_daily,
    daily_partials,
    flag_non_wear,
    local_day_minutes,
    local_day_parts,
    minute_timeline,
    window_motion,
)
from har_mlops.units import STANDARD_GRAVITY

HOP_S = 1.28
WINDOW_S = 2.56
CLASSES = ["walking", "sitting", "lying"]
BERLIN = "Europe/Berlin"
MOVING_MS2 = 0.5  # ~51 mg: a worn, moving wrist
STILL_MS2 = 0.02  # ~2 mg: sensor noise of a watch lying on a table


@pytest.fixture
def non_wear() -> NonWear:
    return NonWear(std_threshold_mg=15, axes_required=3, min_minutes=90, gap_tolerance_s=60)


def _utc_ms(local: str, timezone: str = BERLIN) -> float:
    return pd.Timestamp(local, tz=timezone).tz_convert("UTC").value / 1e6


def _windows(
    start_ms: float,
    n: int,
    hop_s: float = HOP_S,
    subject: str = "p1",
    recording: str = "r1",
    activity: str | np.ndarray = "sitting",
    motion: float | np.ndarray = MOVING_MS2,
) -> pd.DataFrame:
    start = start_ms + np.arange(n) * hop_s * 1000.0
    motion = np.broadcast_to(np.asarray(motion, dtype=np.float64), (n,))
    activity = np.broadcast_to(np.asarray(activity, dtype=object), (n,))
    return pd.DataFrame(
        {
            "subject_id": pd.array([subject] * n, dtype="string"),
            "recording_id": pd.array([recording] * n, dtype="string"),
            "window_start_ms": start,
            "window_end_ms": start + (WINDOW_S - 0.02) * 1000.0,
            "activity": pd.array(activity, dtype="string"),
            "activity_smoothed": pd.array(activity, dtype="string"),
            "confidence": np.full(n, 0.9),
            "low_confidence": np.zeros(n, dtype=bool),
            "acc_std_x": motion,
            "acc_std_y": motion,
            "acc_std_z": motion,
        }
    )


def _stretches(*parts: tuple[float, float]) -> np.ndarray:
    """Per-window motion for consecutive (minutes, std in m/s²) parts."""
    return np.concatenate([np.full(round(minutes * 60 / HOP_S), std) for minutes, std in parts])


# ------------------------------------------------------------------------------ motion


def test_window_motion_is_the_per_axis_standard_deviation_of_the_accelerometer():
    rng = np.random.default_rng(0)
    signals = rng.normal(size=(5, 128, 6)).astype(np.float32)
    # Gravity on z with milli-g noise: float32 sums would lose the noise.
    signals[:, :, 2] = 9.80665 + 0.001 * rng.normal(size=(5, 128))
    motion = window_motion(signals, slice(0, 3))
    assert motion.shape == (5, 3) and motion.dtype == np.float32
    expected = signals[:, :, :3].astype(np.float64).std(axis=1, ddof=1)
    np.testing.assert_allclose(motion, expected, rtol=1e-5)
    np.testing.assert_allclose(window_motion(signals, [0, 1, 2]), motion)
    assert window_motion(np.zeros((0, 128, 6), np.float32), slice(0, 3)).shape == (0, 3)


# ------------------------------------------------------------------------------ non-wear


def test_long_still_stretch_is_non_wear_short_one_and_motion_are_not(non_wear):
    motion = _stretches(
        (30, MOVING_MS2), (120, STILL_MS2), (30, MOVING_MS2), (10, STILL_MS2), (30, MOVING_MS2)
    )
    windows = _windows(_utc_ms("2026-06-01 08:00"), len(motion), motion=motion)
    flags = flag_non_wear(windows, non_wear)
    assert flags.dtype == bool and flags.shape == (len(windows),)
    # Only the 2-hour stretch: a resting wrist makes 10-minute still stretches every day.
    expected = np.zeros(len(motion), dtype=bool)
    expected[round(30 * 60 / HOP_S) : round(150 * 60 / HOP_S)] = True
    np.testing.assert_array_equal(flags, expected)


def test_threshold_is_in_milli_g_and_axes_required_counts_still_axes(non_wear):
    just_below = 14.9 * STANDARD_GRAVITY / 1000.0
    just_above = 15.1 * STANDARD_GRAVITY / 1000.0
    n = round(100 * 60 / HOP_S)
    assert flag_non_wear(_windows(0.0, n, motion=just_below), non_wear).all()
    assert not flag_non_wear(_windows(0.0, n, motion=just_above), non_wear).any()
    # Two still axes and one moving: non-wear only when two axes suffice (GGIR's rule).
    windows = _windows(0.0, n, motion=STILL_MS2).assign(acc_std_z=MOVING_MS2)
    assert not flag_non_wear(windows, non_wear).any()
    two_axes = non_wear.model_copy(update={"axes_required": 2})
    assert flag_non_wear(windows, two_axes).all()


def test_a_gap_longer_than_the_tolerance_ends_a_still_stretch(non_wear):
    n = round(60 * 60 / HOP_S)
    before = _windows(0.0, n, motion=STILL_MS2)
    long_gap_ms = before["window_end_ms"].iloc[-1] + 10 * 60_000.0
    short_gap_ms = before["window_end_ms"].iloc[-1] + 30_000.0
    # Two 60-min still stretches: 120 min in all, but not one stretch across a 10-min gap.
    split = pd.concat([before, _windows(long_gap_ms, n, motion=STILL_MS2)], ignore_index=True)
    assert not flag_non_wear(split, non_wear).any()
    joined = pd.concat([before, _windows(short_gap_ms, n, motion=STILL_MS2)], ignore_index=True)
    assert flag_non_wear(joined, non_wear).all()


def test_flags_follow_the_rows_when_windows_come_unsorted(non_wear):
    motion = _stretches((20, MOVING_MS2), (100, STILL_MS2), (20, MOVING_MS2))
    windows = _windows(0.0, len(motion), motion=motion)
    expected = flag_non_wear(windows, non_wear)
    shuffled = windows.sample(frac=1.0, random_state=0)
    np.testing.assert_array_equal(flag_non_wear(shuffled, non_wear), expected[shuffled.index])
    missing = windows.assign(acc_std_x=np.nan)
    assert not flag_non_wear(missing, non_wear).any()
    assert flag_non_wear(windows.iloc[:0], non_wear).shape == (0,)


# ------------------------------------------------------------------------------ local days


def test_day_length_follows_the_timezone_on_dst_days():
    dates = ["2026-03-29", "2026-10-25", "2026-06-01"]
    np.testing.assert_array_equal(local_day_minutes(dates, BERLIN), [1380, 1500, 1440])
    np.testing.assert_array_equal(local_day_minutes(dates, None), [1440, 1440, 1440])
    np.testing.assert_array_equal(local_day_minutes(dates, "America/New_York"), [1440] * 3)
    with pytest.raises(ValueError, match="Nowhere/Atlantis"):
        local_day_minutes(dates, "Nowhere/Atlantis")


def test_local_day_parts_attribute_each_hop_to_the_local_date_of_its_start():
    # 23:58 to 00:02 Berlin summer time (UTC+2): both sides of local midnight.
    windows = _windows(_utc_ms("2026-07-10 23:58"), 5, hop_s=60.0)
    parts = local_day_parts(windows, BERLIN, hop_s=60.0)
    assert parts.index.equals(windows.index)
    assert parts["date"].tolist() == ["2026-07-10"] * 2 + ["2026-07-11"] * 3
    assert parts["minute_of_day"].tolist() == [1438, 1439, 0, 1, 2]
    np.testing.assert_allclose(parts["minutes"], 1.0)
    # The same instants in UTC are still on 2026-07-10 (21:58 to 22:02).
    assert set(local_day_parts(windows, "UTC", 60.0)["date"]) == {"2026-07-10"}


def test_spring_forward_day_has_1380_minutes_and_a_midnight_recording_feeds_both_days(
    non_wear,
):
    # 23:00 on 28 March to 01:00 on 30 March, local: 26 h of clock time, 25 h of real time.
    start = _utc_ms("2026-03-28 23:00")
    n = round((_utc_ms("2026-03-30 01:00") - start) / (HOP_S * 1000.0))
    windows = _windows(start, n)
    partial = daily_partials(windows, np.zeros(n, bool), BERLIN, CLASSES, HOP_S)
    assert partial["date"].tolist() == ["2026-03-28", "2026-03-29", "2026-03-30"]
    np.testing.assert_array_equal(partial["day_minutes"], [1440, 1380, 1440])
    np.testing.assert_allclose(partial["recorded_minutes"], [60, 1380, 60], atol=HOP_S / 60)
    assert partial["recorded_minutes"].sum() == pytest.approx(n * HOP_S / 60)
    daily = combine_daily(partial)
    assert daily.loc[1, "coverage"] == pytest.approx(1.0, abs=1e-3)


def test_fall_back_day_has_1500_minutes_and_all_of_them_count():
    start = _utc_ms("2026-10-25 00:00")
    n = round((_utc_ms("2026-10-26 00:00") - start) / (HOP_S * 1000.0))
    windows = _windows(start, n)
    partial = daily_partials(windows, np.zeros(n, bool), BERLIN, CLASSES, HOP_S)
    assert partial["date"].tolist() == ["2026-10-25"]
    assert partial.loc[0, "day_minutes"] == 1500
    assert partial.loc[0, "recorded_minutes"] == pytest.approx(1500, abs=HOP_S / 60)
    assert combine_daily(partial).loc[0, "coverage"] == pytest.approx(1.0, abs=1e-3)


# ------------------------------------------------------------------------------ partials


def test_activity_minutes_count_worn_windows_only_and_raw_minutes_come_from_activity():
    n = 600  # 10 minutes at one window a second
    activity = np.array(["walking", "sitting", "lying"] * 200)
    windows = _windows(0.0, n, hop_s=1.0, activity=activity)
    windows["activity"] = pd.array(["walking"] * n, dtype="string")  # raw prediction differs
    windows["low_confidence"] = np.arange(n) % 4 == 0
    non_wear = np.arange(n) >= 300  # second half not worn
    partial = daily_partials(windows, non_wear, None, CLASSES, hop_s=1.0)
    row = partial.iloc[0]
    assert row["timezone"] == "UTC" and row["date"] == "1970-01-01"
    assert row["windows"] == 600 and row["wear_windows"] == 300
    assert row["recorded_minutes"] == pytest.approx(10.0)
    assert row["wear_minutes"] == pytest.approx(5.0)
    assert row["non_wear_minutes"] == pytest.approx(5.0)
    assert row["low_confidence_windows"] == 75  # of the worn 300 only
    assert [row[f"minutes_{c}"] for c in CLASSES] == pytest.approx([5 / 3] * 3)
    assert [row[f"raw_minutes_{c}"] for c in CLASSES] == pytest.approx([5.0, 0.0, 0.0])


def test_partials_have_stable_columns_and_explicit_dtypes():
    windows = _windows(0.0, 10)
    partial = daily_partials(windows, np.zeros(10, bool), "UTC", CLASSES, HOP_S)
    empty = daily_partials(windows.iloc[:0], np.zeros(0, bool), "UTC", CLASSES, HOP_S)
    assert list(empty.columns) == list(partial.columns)
    assert (empty.dtypes == partial.dtypes).all()
    assert partial["subject_id"].dtype == "string" and partial["date"].dtype == "string"
    assert partial["windows"].dtype == np.int64 and partial["day_minutes"].dtype == np.float64
    assert [c for c in partial.columns if c.startswith("minutes_")] == [
        f"minutes_{c}" for c in CLASSES
    ]
    with pytest.raises(ValueError, match="non_wear_flags"):
        daily_partials(windows, np.zeros(3, bool), "UTC", CLASSES, HOP_S)


def test_combine_daily_sums_two_recordings_of_one_participant_on_one_day():
    morning = _windows(_utc_ms("2026-06-01 08:00"), 120, hop_s=60.0, recording="r1")
    evening = _windows(
        _utc_ms("2026-06-01 18:00"), 60, hop_s=60.0, recording="r2", activity="walking"
    )
    evening["low_confidence"] = True
    other = _windows(_utc_ms("2026-06-01 08:00"), 30, hop_s=60.0, subject="p0")
    partials = [
        daily_partials(frame, np.zeros(len(frame), bool), BERLIN, CLASSES, 60.0)
        for frame in (morning, evening, other)
    ]
    daily = combine_daily(partials)
    assert list(zip(daily["subject_id"], daily["date"], strict=True)) == [
        ("p0", "2026-06-01"),
        ("p1", "2026-06-01"),
    ]
    p1 = daily.iloc[1]
    assert p1["recordings"] == 2 and p1["windows"] == 180
    assert p1["recorded_minutes"] == pytest.approx(180.0)
    assert p1["minutes_sitting"] == pytest.approx(120.0)
    assert p1["minutes_walking"] == pytest.approx(60.0)
    assert p1["low_confidence_share"] == pytest.approx(60 / 180)
    assert p1["coverage"] == pytest.approx(180 / 1440)
    assert p1["timezone"] == BERLIN
    # Stable, typed columns; the same for an empty cohort when the classes are given.
    empty = combine_daily([], classes=CLASSES)
    assert list(empty.columns) == list(daily.columns)
    assert (empty.dtypes == daily.dtypes).all()
    assert daily.columns[:3].tolist() == ["subject_id", "date", "timezone"]


def test_combined_coverage_is_capped_and_share_is_empty_without_worn_windows():
    day = _windows(0.0, 1440, hop_s=60.0)
    twice = daily_partials(day, np.zeros(1440, bool), "UTC", CLASSES, 60.0)
    daily = combine_daily([twice, twice])  # overlapping recordings count their time twice
    assert daily.loc[0, "recorded_minutes"] == pytest.approx(2880)
    assert daily.loc[0, "coverage"] == 1.0
    unworn = daily_partials(day, np.ones(1440, bool), "UTC", CLASSES, 60.0)
    combined = combine_daily(unworn)
    assert np.isnan(combined.loc[0, "low_confidence_share"])
    assert combined.loc[0, "wear_coverage"] == 0.0


# ------------------------------------------------------------------------------ timeline


def test_minute_timeline_is_bounded_by_the_minutes_of_the_day_and_marks_non_wear(non_wear):
    # The 25-hour fall-back day at one window per 1.28 s: the repeated hour shares its
    # wall-clock minutes, so the day still has at most 1440 rows.
    start = _utc_ms("2026-10-25 00:00")
    n = round((_utc_ms("2026-10-26 00:30") - start) / (HOP_S * 1000.0))
    motion = np.full(n, MOVING_MS2)
    motion[: round(120 * 60 / HOP_S)] = STILL_MS2  # 00:00-02:00 not worn
    windows = _windows(start, n, motion=motion)
    flags = flag_non_wear(windows, non_wear)
    timeline = minute_timeline(windows, flags, BERLIN)
    per_day = timeline.groupby("date").size()
    assert per_day.to_dict() == {"2026-10-25": 1440, "2026-10-26": 30}
    assert timeline["minute_of_day"].between(0, 1439).all()
    first_day = timeline[timeline["date"] == "2026-10-25"].set_index("minute_of_day")
    assert (first_day.loc[:119, "activity"] == NON_WEAR_LABEL).all()
    assert (first_day.loc[120:, "activity"] == "sitting").all()
    # The repeated hour (02:00-02:59 twice) holds twice the windows of an ordinary hour.
    assert first_day.loc[150, "windows"] > 1.8 * first_day.loc[600, "windows"]
    assert list(timeline.columns) == [
        "subject_id",
        "recording_id",
        "date",
        "minute_of_day",
        "activity",
        "windows",
    ]
    assert timeline["minute_of_day"].dtype == np.int16


def test_minute_timeline_takes_the_dominant_activity_of_each_minute():
    activity = np.array(["walking"] * 40 + ["sitting"] * 20 + ["lying"] * 30 + ["sitting"] * 30)
    windows = _windows(0.0, 120, hop_s=1.0, activity=activity)
    non_wear = np.zeros(120, bool)
    non_wear[90:120] = True
    timeline = minute_timeline(windows, non_wear, "UTC")
    assert timeline["activity"].tolist() == ["walking", NON_WEAR_LABEL]
    assert timeline["windows"].tolist() == [60, 60]
    assert minute_timeline(windows.iloc[:0], non_wear[:0], "UTC").empty
