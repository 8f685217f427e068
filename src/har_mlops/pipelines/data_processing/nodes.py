"""Nodes of the data_processing pipeline: raw recordings to subject-split windows."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from har_mlops.contract import CHANNELS, STREAM_CHANNELS, class_names
from har_mlops.parameters import Labels, RawSource, Resampling, Split, Windowing
from har_mlops.units import SI_UNITS, unit_factor

from .validation import validate_recordings

logger = logging.getLogger(__name__)

__all__ = [
    "assign_labels",
    "convert_units",
    "filter_windows_by_class",
    "fit_scaler",
    "resample_recordings",
    "split_windows",
    "summarise_windows",
    "validate_recordings",
    "window_samples",
]

NO_LABEL = ""


def _bracket_ok(
    source_t: np.ndarray,
    target_t: np.ndarray,
    max_gap_ms: float,
    right: np.ndarray | None = None,
) -> np.ndarray:
    """True where ``target_t`` lies on a source sample or between two no more than max_gap apart.

    ``right``: ``np.searchsorted(source_t, target_t)`` if the caller has it already.
    """
    if right is None:
        right = np.searchsorted(source_t, target_t, side="left")
    inside = (right < source_t.size) & (target_t >= source_t[0])
    right = np.minimum(right, source_t.size - 1)
    left = np.maximum(right - 1, 0)
    exact = source_t[right] == target_t
    return inside & (exact | (source_t[right] - source_t[left] <= max_gap_ms))


def _nearest_distance(source_t: np.ndarray, target_t: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Distance from each target time to the nearest source time (``right`` as in _bracket_ok)."""
    right = np.clip(right, 0, source_t.size - 1)
    left = np.maximum(right - 1, 0)
    return np.minimum(np.abs(source_t[right] - target_t), np.abs(target_t - source_t[left]))


def _resample_recording(
    acc: pd.DataFrame,
    gyro: pd.DataFrame,
    resampling: Resampling,
    grid_origin_ms: float | None = None,
) -> dict[str, np.ndarray] | None:
    """Merges the two streams on the accelerometer clock, then resamples onto a uniform grid.

    The grid starts at the first merged sample, or continues the grid through
    ``grid_origin_ms`` (a time chunk of a long recording keeps the whole recording's grid).
    Returns the ``timestamp``, ``segment_id`` and channel columns, or None if nothing overlaps.
    """
    period_ms = 1000.0 / resampling["target_rate_hz"]
    max_gap_ms = resampling["max_gap_ms"]
    t_acc = acc["timestamp"].to_numpy()
    t_gyro = gyro["timestamp"].to_numpy()
    # Merge: each accelerometer sample takes the gyroscope value at its time (interpolated
    # between the neighbouring gyro samples) if a gyro sample lies within the tolerance.
    # One search serves both tests (a day of samples: ~0.2 s each).
    right = np.searchsorted(t_gyro, t_acc, side="left")
    merged_ok = (_nearest_distance(t_gyro, t_acc, right) <= resampling["merge_tolerance_ms"]) & (
        _bracket_ok(t_gyro, t_acc, max_gap_ms, right)
    )
    t_merged = t_acc[merged_ok]
    if t_merged.size < 2:
        return None
    # Column-major: each channel is contiguous for np.interp.
    merged = np.empty((t_merged.size, len(CHANNELS)), order="F")
    for c, axis in enumerate("xyz"):
        merged[:, c] = acc[axis].to_numpy()[merged_ok]
        merged[:, 3 + c] = np.interp(t_merged, t_gyro, gyro[axis].to_numpy())
    origin = t_merged[0] if grid_origin_ms is None else grid_origin_ms
    first = 0 if grid_origin_ms is None else int(np.ceil((t_merged[0] - origin) / period_ms))
    grid = origin + np.arange(first, int((t_merged[-1] - origin) // period_ms) + 1) * period_ms
    if grid.size == 0:
        return None
    on_grid = _bracket_ok(t_merged, grid, max_gap_ms)
    # A new segment starts after every stretch of grid points that fell into a gap.
    segment_id = np.cumsum(np.r_[True, ~on_grid[:-1]] & on_grid) - 1
    grid = grid[on_grid]
    columns = {"timestamp": grid, "segment_id": segment_id[on_grid].astype("int32")}
    for c, channel in enumerate(CHANNELS):
        columns[channel] = np.interp(grid, t_merged, merged[:, c])
    return columns


def resample_recordings(
    validated_recordings: dict[str, dict[str, Any]], resampling: Resampling
) -> pd.DataFrame:
    """Merges accelerometer and gyroscope and resamples each recording to ``target_rate_hz``."""
    if resampling["max_gap_ms"] < 1000.0 / resampling["target_rate_hz"]:
        raise ValueError("resampling.max_gap_ms must be at least one sample period")
    parts, rec_ids, subjects = [], [], []
    for rec_id, record in validated_recordings.items():
        part = _resample_recording(
            record["accelerometer"], record["gyroscope"], resampling, record.get("grid_origin_ms")
        )
        if part is None:
            logger.warning("Recording %s has no overlapping samples after merging", rec_id)
            continue
        parts.append(part)
        rec_ids.append(str(rec_id))
        subjects.append(str(record["subject_id"]))
    if not parts:
        raise ValueError(
            "No recording has overlapping accelerometer and gyroscope samples within "
            f"merge_tolerance_ms={resampling['merge_tolerance_ms']} and "
            f"max_gap_ms={resampling['max_gap_ms']}: {sorted(validated_recordings)}"
        )
    # Categorical ids: a day of samples shares one id, and a string per row costs seconds.
    of_row = np.repeat(np.arange(len(parts)), [len(part["timestamp"]) for part in parts])
    subject_names, subject_of_rec = np.unique(subjects, return_inverse=True)
    # Codes built here are valid by construction; validating them is a pass over every row.
    columns = {
        "recording_id": pd.Categorical.from_codes(of_row, categories=rec_ids, validate=False),
        "subject_id": pd.Categorical.from_codes(
            subject_of_rec[of_row], categories=list(subject_names), validate=False
        ),
    }
    for name in parts[0]:
        columns[name] = (
            parts[0][name] if len(parts) == 1 else np.concatenate([p[name] for p in parts])
        )
    # One constructor call and no consolidation copy: a day of samples is ~1 GB of columns,
    # and on a served request the DataFrame bookkeeping would cost more than the maths.
    return pd.DataFrame(columns, copy=False)


def convert_units(samples: pd.DataFrame, raw_source: RawSource) -> pd.DataFrame:
    """Removes declared calibration offsets and converts to m/s^2 and rad/s."""
    columns = {}
    for sensor, channels in STREAM_CHANNELS.items():
        factor = unit_factor(sensor, raw_source[f"{sensor}_unit"])
        offset = np.asarray(raw_source.get(f"{sensor}_offset", [0.0, 0.0, 0.0]), dtype=float)
        for channel, channel_offset in zip(channels, offset):
            columns[channel] = (samples[channel].to_numpy() - channel_offset) * factor
    # assign shares the untouched columns with the input instead of copying them.
    converted = samples.assign(**columns)
    logger.info(
        "Converted accelerometer %s -> %s, gyroscope %s -> %s",
        raw_source["accelerometer_unit"],
        SI_UNITS["accelerometer"],
        raw_source["gyroscope_unit"],
        SI_UNITS["gyroscope"],
    )
    return converted


def assign_labels(
    samples: pd.DataFrame,
    validated_recordings: dict[str, dict[str, Any]],
    raw_source: RawSource,
) -> pd.DataFrame:
    """Gives each sample the activity of the label segment containing it (inclusive bounds)."""
    label_map = raw_source.get("label_map") or {}
    # Integer codes into `names` (-1: no label) instead of 4M Python strings for a day of data.
    codes = np.full(len(samples), -1, dtype=np.int32)
    names: list[str] = []
    rec_codes, rec_names = pd.factorize(samples["recording_id"])
    boundaries = np.flatnonzero(np.r_[True, rec_codes[1:] != rec_codes[:-1], True])
    timestamps = samples["timestamp"].to_numpy()
    for start, stop in zip(boundaries[:-1], boundaries[1:]):
        segments = validated_recordings[rec_names[rec_codes[start]]].get("labels")
        if segments is None or segments.empty:
            continue
        t = timestamps[start:stop]
        starts, ends = segments["start"].to_numpy(), segments["end"].to_numpy()
        seg = np.searchsorted(starts, t, side="right") - 1
        # Segments covering t = those started by t minus those ended before t.
        covering = (seg + 1) - np.searchsorted(np.sort(ends), t, side="left")
        covered = (seg >= 0) & (t <= ends[np.maximum(seg, 0)]) & (covering == 1)
        segment_codes = len(names) + np.arange(len(segments), dtype=np.int32)
        names.extend(str(label_map.get(name, name)) for name in segments["activity"])
        codes[start:stop][covered] = segment_codes[seg[covered]]
    # Renamed classes may collide; categories must be unique.
    unique, remap = np.unique(np.asarray(names, dtype=object), return_inverse=True)
    codes = np.where(codes >= 0, remap.astype(np.int32)[np.maximum(codes, 0)] if names else -1, -1)
    label = pd.Categorical.from_codes(codes, categories=list(unique))
    return samples.assign(label=label)


def window_samples(samples: pd.DataFrame, windowing: Windowing) -> dict[str, np.ndarray]:
    """Cuts fixed-size overlapping windows inside each gap-free segment (stride tricks)."""
    size = int(windowing["window_size"])
    step = max(1, round(size * (1.0 - float(windowing["overlap"]))))
    # Integer codes: turning a day of string ids into Python objects costs seconds.
    rec, rec_names = _codes(samples["recording_id"])
    seg = samples["segment_id"].to_numpy()
    new_run = np.r_[True, (rec[1:] != rec[:-1]) | (seg[1:] != seg[:-1])]
    run_starts = np.flatnonzero(new_run)
    run_lengths = np.diff(np.r_[run_starts, len(samples)])
    run_of_row = np.cumsum(new_run) - 1
    position = np.arange(len(samples)) - run_starts[run_of_row]
    starts = np.flatnonzero((position % step == 0) & (position + size <= run_lengths[run_of_row]))

    # Column by column into one float32 block: DataFrame.to_numpy over a column list costs
    # ~0.4 ms of bookkeeping, a third of a served request's windowing.
    values = np.empty((len(samples), len(CHANNELS)), dtype=np.float32)
    for c, channel in enumerate(CHANNELS):
        values[:, c] = samples[channel].to_numpy()
    if len(samples) >= size:
        signals = sliding_window_view(values, size, axis=0)[starts].transpose(0, 2, 1).copy()
    else:
        signals = np.empty((0, size, len(CHANNELS)), dtype=np.float32)

    if "label" in samples:
        codes, names = _codes(samples["label"])
    else:
        codes, names = np.full(len(samples), -1, dtype=np.int8), pd.Index([])
    window_label = _window_labels(codes, names, starts, size, windowing)
    subject, subject_names = _codes(samples["subject_id"])
    timestamps = samples["timestamp"].to_numpy()
    return {
        "signals": np.ascontiguousarray(signals),
        "label": window_label,
        "recording_id": np.asarray(rec_names, dtype=str)[rec[starts]],
        "subject_id": np.asarray(subject_names, dtype=str)[subject[starts]],
        "start_ms": timestamps[starts],
        "end_ms": timestamps[starts + size - 1] if starts.size else timestamps[starts],
    }


def _codes(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes (-1: missing) and the values they index; a categorical's own if it is one."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.array.codes, column.cat.categories
    return pd.factorize(column, use_na_sentinel=True)


def _window_labels(
    codes: np.ndarray, names: pd.Index, starts: np.ndarray, size: int, windowing: Windowing
) -> np.ndarray:
    """One label per window under the configured policy; ``NO_LABEL`` where none applies."""
    if starts.size == 0 or len(names) == 0:
        return np.full(starts.size, NO_LABEL)
    win_codes = sliding_window_view(codes, size)[starts]
    policy = windowing["label_policy"]
    if policy == "single":
        chosen = win_codes[:, 0]
        ok = (win_codes == chosen[:, None]).all(axis=1) & (chosen >= 0)
    elif policy == "majority":
        counts = (win_codes[:, :, None] == np.arange(len(names))).sum(axis=1)
        chosen = counts.argmax(axis=1)
        ok = counts.max(axis=1) >= windowing.get("majority_share", 0.5) * size
    else:
        raise ValueError(f"Unknown windowing.label_policy {policy!r}; use 'single' or 'majority'")
    table = np.asarray([str(n) for n in names])
    return np.where(ok, table[np.maximum(chosen, 0)], NO_LABEL)


def _take(windows: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {name: array[mask] for name, array in windows.items()}


def filter_windows_by_class(
    windows: dict[str, np.ndarray], labels: Labels
) -> dict[str, np.ndarray]:
    """Keeps windows labelled with a class of the configured class set, adding ``label_index``."""
    classes = class_names(labels)
    keep = np.isin(windows["label"], classes)
    selected = _take(windows, keep)
    index_of = {name: i for i, name in enumerate(classes)}
    selected["label_index"] = pd.Series(selected["label"]).map(index_of).to_numpy(np.int64)
    logger.info("Kept %d of %d windows in class set %r", keep.sum(), keep.size, labels["class_set"])
    return selected


def split_windows(
    windows: dict[str, np.ndarray], split: Split
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Splits windows by subject into train, validation and test; no subject is on two sides."""
    subjects = windows["subject_id"]
    test_subjects = {str(s) for s in split["test_subjects"]}
    remaining = sorted(set(subjects) - test_subjects)
    if not remaining:
        raise ValueError(
            f"The train split is empty: every subject present {sorted(set(subjects))} "
            "is a test subject"
        )
    if split.get("validation_subjects"):
        validation_subjects = {str(s) for s in split["validation_subjects"]}
    else:
        rng = np.random.default_rng(split["seed"])
        n_val = max(1, round(split["validation_fraction"] * len(remaining)))
        validation_subjects = set(rng.choice(remaining, size=n_val, replace=False).tolist())
    overlap = validation_subjects & test_subjects
    if overlap:
        raise ValueError(f"Subjects {sorted(overlap)} are both validation and test subjects")
    is_test = np.isin(subjects, list(test_subjects))
    is_val = np.isin(subjects, list(validation_subjects))
    parts = _take(windows, ~is_test & ~is_val), _take(windows, is_val), _take(windows, is_test)
    for name, part in zip(("train", "validation", "test"), parts):
        if part["label"].size == 0:
            raise ValueError(
                f"The {name} split is empty (test subjects {sorted(test_subjects)}, "
                f"validation subjects {sorted(validation_subjects)}, "
                f"subjects present {sorted(set(subjects))})"
            )
    logger.info(
        "Split windows: %d train, %d validation (subjects %s), %d test",
        parts[0]["label"].size,
        parts[1]["label"].size,
        sorted(validation_subjects),
        parts[2]["label"].size,
    )
    return parts


def fit_scaler(windows_train: dict[str, np.ndarray]) -> dict[str, Any]:
    """Fits per-channel mean and standard deviation on the training windows only."""
    flat = windows_train["signals"].reshape(-1, len(CHANNELS)).astype(np.float64)
    std = flat.std(axis=0)
    return {
        "channels": list(CHANNELS),
        "mean": flat.mean(axis=0).tolist(),
        # A constant channel would divide by zero; leave it unscaled instead.
        "std": np.where(std > 0, std, 1.0).tolist(),
        "fitted_on_windows": int(windows_train["signals"].shape[0]),
    }


def summarise_windows(
    windows_train: dict[str, np.ndarray],
    windows_validation: dict[str, np.ndarray],
    windows_test: dict[str, np.ndarray],
    labels: Labels,
) -> dict[str, Any]:
    """Counts windows per class and split, and lists each split's subjects."""
    classes = class_names(labels)
    summary: dict[str, Any] = {"classes": classes, "splits": {}}
    for name, part in (
        ("train", windows_train),
        ("validation", windows_validation),
        ("test", windows_test),
    ):
        counts = pd.Series(part["label"]).value_counts()
        summary["splits"][name] = {
            "windows": int(part["label"].size),
            "per_class": {c: int(counts.get(c, 0)) for c in classes},
            "subjects": sorted(set(part["subject_id"].tolist()), key=_subject_key),
        }
    return summary


def _subject_key(subject: str) -> tuple[int, Any]:
    return (0, int(subject)) if subject.isdigit() else (1, subject)
