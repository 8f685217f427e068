"""Non-wear detection and per-participant local-day summaries of per-window predictions.

Everything here works on ONE recording's per-window table at a time (a cohort worker's unit),
and what it returns per day is additive, so that :func:`combine_daily` can sum the partials of
several recordings of one participant. See ``docs/daily_outputs.md`` for the columns and the
rules (non-wear, local day, coverage) and why they are what they are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from har_mlops.parameters import NonWear
from har_mlops.units import STANDARD_GRAVITY

logger = logging.getLogger(__name__)

NON_WEAR_LABEL = "non-wear"
ACC_STD_COLUMNS = ["acc_std_x", "acc_std_y", "acc_std_z"]
DEFAULT_TIMEZONE = "UTC"
UNKNOWN_SUBJECT = "unknown"

# Windows per chunk in window_motion: the float64 copy of a chunk stays ~50 MB, where a whole
# week of windows (~470,000) at once would need more than a gigabyte.
_MOTION_CHUNK = 16_384
_MS_PER_MINUTE = 60_000.0

_PARTIAL_HEAD = [
    "subject_id",
    "date",
    "timezone",
    "day_minutes",
    "recordings",
    "windows",
    "wear_windows",
    "low_confidence_windows",
    "recorded_minutes",
    "wear_minutes",
    "non_wear_minutes",
]
_DERIVED = ["coverage", "wear_coverage", "low_confidence_share"]
_COUNT_COLUMNS = ["recordings", "windows", "wear_windows", "low_confidence_windows"]
_MINUTE_COLUMNS = ["recorded_minutes", "wear_minutes", "non_wear_minutes"]
_TEXT_COLUMNS = ["subject_id", "date", "timezone"]


def window_motion(signals: np.ndarray, accelerometer_channels: slice | list[int]) -> np.ndarray:
    """Per-window sample standard deviation of each accelerometer axis, ``[n, axes]`` float32."""
    signals = np.asarray(signals)
    if signals.ndim != 3:
        raise ValueError(f"signals must be [windows, samples, channels], got shape {signals.shape}")
    channels = (
        accelerometer_channels
        if isinstance(accelerometer_channels, slice)
        else np.asarray(accelerometer_channels, dtype=np.intp)
    )
    n_axes = len(np.arange(signals.shape[2])[channels])
    motion = np.empty((signals.shape[0], n_axes), dtype=np.float32)
    if signals.shape[1] < 2:
        motion.fill(np.nan)
        return motion
    # Two-pass standard deviation in float64 (a still axis carries ~9.81 m/s² of gravity and
    # milli-g of noise: float32 sums would lose the noise), chunk by chunk to bound memory.
    for start in range(0, signals.shape[0], _MOTION_CHUNK):
        chunk = signals[start : start + _MOTION_CHUNK][:, :, channels]
        motion[start : start + _MOTION_CHUNK] = chunk.std(axis=1, ddof=1, dtype=np.float64)
    return motion


def flag_non_wear(windows: pd.DataFrame, non_wear: NonWear) -> np.ndarray:
    """True for the windows inside a still stretch long enough to mean nobody wore the device."""
    n = len(windows)
    if n == 0:
        return np.zeros(0, dtype=bool)
    start = windows["window_start_ms"].to_numpy(np.float64)
    end = windows["window_end_ms"].to_numpy(np.float64)
    order = np.argsort(start, kind="stable") if np.any(np.diff(start) < 0) else np.arange(n)
    start, end = start[order], end[order]
    motion = windows[ACC_STD_COLUMNS].to_numpy(np.float64)[order]
    threshold_ms2 = float(non_wear["std_threshold_mg"]) * STANDARD_GRAVITY / 1000.0
    # NaN compares False: a window without motion statistics is never still.
    still = (motion < threshold_ms2).sum(axis=1) >= non_wear["axes_required"]
    # A gap in the recording (next window starts after this one's last sample + tolerance)
    # ends a stretch: what happened in the gap is unknown.
    tolerance_ms = float(non_wear["gap_tolerance_s"]) * 1000.0
    gap_before = np.r_[True, start[1:] - end[:-1] > tolerance_ms]
    run_start = still & (gap_before | np.r_[True, ~still[:-1]])
    run_end = still & np.r_[gap_before[1:] | ~still[1:], True]
    first, last = np.flatnonzero(run_start), np.flatnonzero(run_end)
    flags = np.zeros(n, dtype=bool)
    if first.size:
        duration_ms = end[last] - start[first]
        long_run = duration_ms >= float(non_wear["min_minutes"]) * _MS_PER_MINUTE
        run_id = np.cumsum(run_start) - 1
        flags[order] = still & long_run[np.maximum(run_id, 0)]
        logger.debug(
            "%d of %d still stretches are non-wear (%.1f min)",
            int(long_run.sum()),
            first.size,
            float(duration_ms[long_run].sum()) / _MS_PER_MINUTE,
        )
    return flags


def local_day_parts(windows: pd.DataFrame, timezone: str | None, hop_s: float) -> pd.DataFrame:
    """Per window: local date of its start, wall-clock minute of day, and its hop in minutes."""
    day, minute_of_day = _local_clock(windows["window_start_ms"].to_numpy(np.float64), timezone)
    return pd.DataFrame(
        {
            "date": pd.array(_date_strings(day), dtype="string"),
            "minute_of_day": minute_of_day,
            "minutes": np.full(len(windows), float(hop_s) / 60.0),
        },
        index=windows.index,
    )


def local_day_minutes(dates: Sequence[str] | np.ndarray, timezone: str | None) -> np.ndarray:
    """Minutes from each date's local midnight to the next: 1440, or e.g. 1380/1500 on DST days."""
    days = np.asarray(dates, dtype="datetime64[D]")
    zone = _zone(timezone)
    return (_local_midnight_ms(days + 1, zone) - _local_midnight_ms(days, zone)) / _MS_PER_MINUTE


def daily_partials(
    windows: pd.DataFrame,
    non_wear_flags: np.ndarray,
    timezone: str | None,
    classes: list[str],
    hop_s: float,
) -> pd.DataFrame:
    """One recording's additive minutes and counts per (participant, local date)."""
    classes = list(classes)
    n = len(windows)
    if n == 0:
        return _empty_frame(_partial_columns(classes))
    non_wear = np.asarray(non_wear_flags, dtype=bool)
    if non_wear.shape != (n,):
        raise ValueError(f"non_wear_flags has shape {non_wear.shape}, windows has {n} rows")
    day, _ = _local_clock(windows["window_start_ms"].to_numpy(np.float64), timezone)
    key_codes, (subjects, days) = _group_codes(_subjects(windows), day)
    n_keys = len(days)
    wear = ~non_wear
    hop_minutes = float(hop_s) / 60.0
    low = windows["low_confidence"].fillna(False).to_numpy(bool) & wear
    counts = {
        "windows": np.bincount(key_codes, minlength=n_keys),
        "wear_windows": np.bincount(key_codes, wear, n_keys),
        "low_confidence_windows": np.bincount(key_codes, low, n_keys),
    }
    non_wear_windows = np.bincount(key_codes, non_wear, n_keys)
    day_dates = _date_strings(days)
    columns: dict[str, object] = {
        "subject_id": pd.array(subjects, dtype="string"),
        "date": pd.array(day_dates, dtype="string"),
        "timezone": pd.array([_zone_name(timezone)] * n_keys, dtype="string"),
        "day_minutes": local_day_minutes(day_dates, timezone),
        "recordings": np.ones(n_keys, dtype=np.int64),
        **{name: values.astype(np.int64) for name, values in counts.items()},
        "recorded_minutes": counts["windows"] * hop_minutes,
        "wear_minutes": counts["wear_windows"] * hop_minutes,
        "non_wear_minutes": non_wear_windows * hop_minutes,
    }
    for prefix, column in (("minutes_", "activity_smoothed"), ("raw_minutes_", "activity")):
        per_class = _class_counts(windows[column], classes, key_codes, wear, n_keys)
        for i, name in enumerate(classes):
            columns[f"{prefix}{name}"] = per_class[:, i] * hop_minutes
    return pd.DataFrame(columns)


def combine_daily(
    partials: Iterable[pd.DataFrame] | pd.DataFrame, classes: list[str] | None = None
) -> pd.DataFrame:
    """Sum partials per (participant, local date) and add coverage and low-confidence share."""
    frames = [partials] if isinstance(partials, pd.DataFrame) else list(partials)
    frames = [frame for frame in frames if frame is not None and len(frame)]
    if classes is None:
        classes = _classes_of(frames)
    if not frames:
        return _empty_frame(_daily_columns(classes))
    table = pd.concat(frames, ignore_index=True)
    additive = _COUNT_COLUMNS + _MINUTE_COLUMNS + _class_columns(classes)
    for column in additive:
        if column not in table:
            table[column] = 0
    table[additive] = table[additive].fillna(0)
    grouped = table.groupby(["subject_id", "date"], sort=True, observed=True)
    summed = grouped[additive].sum()
    timezones = grouped["timezone"].agg(lambda zones: ",".join(sorted(set(zones.dropna()))))
    # A participant-day seen in two timezones (travel) is reported against the longer day.
    day_minutes = grouped["day_minutes"].max()
    if (timezones.str.contains(",")).any():
        logger.warning(
            "%d participant-days have recordings in more than one timezone",
            int(timezones.str.contains(",").sum()),
        )
    daily = summed.assign(timezone=timezones, day_minutes=day_minutes).reset_index()
    daily["coverage"] = np.minimum(daily["recorded_minutes"] / daily["day_minutes"], 1.0)
    daily["wear_coverage"] = np.minimum(daily["wear_minutes"] / daily["day_minutes"], 1.0)
    wear_windows = daily["wear_windows"].to_numpy(np.float64)
    daily["low_confidence_share"] = np.divide(
        daily["low_confidence_windows"].to_numpy(np.float64),
        wear_windows,
        out=np.full(len(daily), np.nan),
        where=wear_windows > 0,
    )
    return _typed(daily[_daily_columns(classes)])


def minute_timeline(
    windows: pd.DataFrame, non_wear_flags: np.ndarray, timezone: str | None
) -> pd.DataFrame:
    """Per local wall-clock minute: the dominant smoothed activity, or non-wear (actogram input)."""
    columns = ["subject_id", "recording_id", "date", "minute_of_day", "activity", "windows"]
    n = len(windows)
    if n == 0:
        return _typed(_empty_frame(columns))
    non_wear = np.asarray(non_wear_flags, dtype=bool)
    if non_wear.shape != (n,):
        raise ValueError(f"non_wear_flags has shape {non_wear.shape}, windows has {n} rows")
    day, minute_of_day = _local_clock(windows["window_start_ms"].to_numpy(np.float64), timezone)
    key_codes, (subjects, recordings, days, minutes) = _group_codes(
        _subjects(windows),
        windows["recording_id"].astype("string").fillna(UNKNOWN_SUBJECT),
        day,
        minute_of_day,
    )
    n_keys = len(days)
    label_codes, labels = pd.factorize(windows["activity_smoothed"], sort=True)
    n_labels = max(len(labels), 1)
    counted = (label_codes >= 0) & ~non_wear
    per_label = np.bincount(
        key_codes[counted] * n_labels + label_codes[counted], minlength=n_keys * n_labels
    ).reshape(n_keys, n_labels)
    total = np.bincount(key_codes, minlength=n_keys)
    non_wear_count = np.bincount(key_codes, non_wear, n_keys)
    # Non-wear wins a minute when it holds at least half of the minute's windows; otherwise the
    # most frequent smoothed activity among the worn windows (ties: alphabetical).
    names = np.asarray([*map(str, labels), NON_WEAR_LABEL, ""], dtype=object)
    choice = np.where(per_label.any(axis=1), per_label.argmax(axis=1), len(labels) + 1)
    choice = np.where(2 * non_wear_count >= total, len(labels), choice)
    activity = pd.array(names[choice], dtype="string")
    activity[choice == len(labels) + 1] = pd.NA
    timeline = pd.DataFrame(
        {
            "subject_id": subjects,
            "recording_id": recordings,
            "date": _date_strings(days),
            "minute_of_day": minutes,
            "activity": activity,
            "windows": total,
        }
    )
    return _typed(timeline)


# ------------------------------------------------------------------------------ helpers


def _zone(timezone: str | None) -> ZoneInfo:
    """The IANA zone (UTC when none is given); an unknown name fails here, naming it."""
    name = _zone_name(timezone)
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as error:
        raise ValueError(f"Unknown IANA timezone {name!r}") from error


def _zone_name(timezone: str | None) -> str:
    """The timezone name, UTC when none is given."""
    return str(timezone).strip() if timezone and str(timezone).strip() else DEFAULT_TIMEZONE


def _local_clock(start_ms: np.ndarray, timezone: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Local calendar day (days since 1970-01-01) and wall-clock minute of day of UTC epoch ms."""
    if np.isnan(start_ms).any():
        raise ValueError("window_start_ms has missing values")
    utc = pd.to_datetime(start_ms, unit="ms", utc=True)
    wall = utc.tz_convert(_zone(timezone)).tz_localize(None).to_numpy().astype("datetime64[ms]")
    day = wall.astype("datetime64[D]")
    minute_of_day = ((wall - day) // np.timedelta64(1, "m")).astype(np.int16)
    return day.astype(np.int64), minute_of_day


def _date_strings(days: np.ndarray) -> np.ndarray:
    """YYYY-MM-DD strings of days since 1970-01-01."""
    return np.datetime_as_string(np.asarray(days, dtype=np.int64).astype("datetime64[D]"), "D")


def _group_codes(*keys: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """Group code of each row over several key columns (sorted), and each key's value per group."""
    combined = np.zeros(len(keys[0]), dtype=np.int64)
    levels = []
    for key in keys:
        codes, uniques = pd.factorize(key, sort=True)
        combined = combined * len(uniques) + codes
        levels.append(np.asarray(uniques))
    groups, group_codes = np.unique(combined, return_inverse=True)
    values = []
    for uniques in reversed(levels):
        values.append(uniques[groups % len(uniques)])
        groups = groups // len(uniques)
    return group_codes, values[::-1]


def _local_midnight_ms(days: np.ndarray, zone: ZoneInfo) -> np.ndarray:
    """UTC epoch ms of each day's first local midnight (a skipped midnight: the next instant)."""
    midnight = pd.DatetimeIndex(days.astype("datetime64[ns]")).tz_localize(
        zone, ambiguous=np.ones(len(days), dtype=bool), nonexistent="shift_forward"
    )
    return midnight.as_unit("ms").asi8.astype(np.float64)


def _subjects(windows: pd.DataFrame) -> pd.Series:
    """Participant ids as strings; a missing id becomes 'unknown' rather than dropping time."""
    return windows["subject_id"].astype("string").fillna(UNKNOWN_SUBJECT)


def _class_counts(
    activity: pd.Series, classes: list[str], key_codes: np.ndarray, wear: np.ndarray, n_keys: int
) -> np.ndarray:
    """Worn windows per (key, class): ``[n_keys, len(classes)]``; unknown labels are not counted."""
    codes = label_codes(activity, classes)
    counted = wear & (codes >= 0)
    unknown = int((wear & (codes < 0)).sum())
    if unknown:
        logger.warning("%d worn windows carry a label outside the classes", unknown)
    k = max(len(classes), 1)
    return np.bincount(key_codes[counted] * k + codes[counted], minlength=n_keys * k).reshape(
        n_keys, k
    )[:, : len(classes)]


def label_codes(labels: pd.Series | np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Index of each label in ``names`` (int64), -1 for a missing or unknown label."""
    codes, uniques = pd.factorize(labels)
    position = {name: i for i, name in enumerate(names)}
    # A lookup over the few distinct labels, not a string search per window.
    lookup = np.asarray([position.get(str(value), -1) for value in uniques] + [-1], dtype=np.int64)
    return lookup[codes]


def _class_columns(classes: list[str]) -> list[str]:
    """The per-class minute columns, smoothed then raw."""
    return [f"minutes_{name}" for name in classes] + [f"raw_minutes_{name}" for name in classes]


def _partial_columns(classes: list[str]) -> list[str]:
    """Column order of daily_partials."""
    return _PARTIAL_HEAD + _class_columns(classes)


def _daily_columns(classes: list[str]) -> list[str]:
    """Column order of combine_daily."""
    return _PARTIAL_HEAD + _DERIVED + _class_columns(classes)


def _classes_of(frames: list[pd.DataFrame]) -> list[str]:
    """Class names from the partials' minutes_<class> columns, in order of appearance."""
    seen: dict[str, None] = {}
    for frame in frames:
        for column in frame.columns:
            if column.startswith("minutes_"):
                seen.setdefault(column.removeprefix("minutes_"), None)
    return list(seen)


def _empty_frame(columns: list[str]) -> pd.DataFrame:
    """An empty table with the given columns, typed like a full one."""
    return _typed(pd.DataFrame({column: [] for column in columns}))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Explicit dtypes: strings, int64 counts, int16 minute of day, float64 minutes and shares."""
    dtypes: dict[str, str] = {}
    for column in frame.columns:
        if column in _TEXT_COLUMNS or column in ("recording_id", "activity"):
            dtypes[column] = "string"
        elif column in _COUNT_COLUMNS or column == "windows":
            dtypes[column] = "int64"
        elif column == "minute_of_day":
            dtypes[column] = "int16"
        else:
            dtypes[column] = "float64"
    return frame.astype(dtypes).reset_index(drop=True)
