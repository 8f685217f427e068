"""Turns HAPT recordings into smartwatch-style exports, for demos and end-to-end tests."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from har_mlops.units import unit_factor

logger = logging.getLogger(__name__)

__all__ = ["HAPT_UNITS", "to_wearable_export"]

# The units HaptZipDataset returns (as published: the phone's accelerometer in g).
HAPT_UNITS = {"accelerometer": "g", "gyroscope": "rad/s"}
SENSOR_COLUMNS = ["timestamp", "x", "y", "z"]
LABEL_COLUMNS = ["start", "end", "activity"]


def _crop_labels(labels: pd.DataFrame, low_ms: float, high_ms: float) -> pd.DataFrame:
    """Keeps the segments overlapping ``[low_ms, high_ms]``, clipped to it."""
    overlapping = (labels["end"] >= low_ms) & (labels["start"] <= high_ms)
    kept = labels.loc[overlapping, LABEL_COLUMNS].reset_index(drop=True)
    kept["start"] = kept["start"].clip(lower=low_ms)
    kept["end"] = kept["end"].clip(upper=high_ms)
    return kept


def _resample(frame: pd.DataFrame, rate_hz: float) -> pd.DataFrame:
    """Linearly interpolates a stream onto a uniform ``rate_hz`` grid from its first sample."""
    t = frame["timestamp"].to_numpy(dtype=np.float64)
    period_ms = 1000.0 / rate_hz
    # The tolerance keeps the last sample when the span is an exact multiple of the period.
    n = int(np.floor((t[-1] - t[0]) / period_ms + 1e-9)) + 1
    grid = t[0] + np.arange(n) * period_ms
    return pd.DataFrame(
        {"timestamp": grid}
        | {axis: np.interp(grid, t, frame[axis].to_numpy(dtype=np.float64)) for axis in "xyz"}
    )


def _export_stream(
    frame: pd.DataFrame,
    factor: float,
    shift_ms: float,
    jitter_ms: float,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Scales the axes by ``factor`` and moves timestamps by ``shift_ms`` plus uniform jitter."""
    timestamps = frame["timestamp"].to_numpy(dtype=np.float64) + shift_ms
    if jitter_ms > 0:
        timestamps = timestamps + rng.uniform(-jitter_ms, jitter_ms, size=timestamps.size)
    return pd.DataFrame(
        {"timestamp": timestamps}
        | {axis: frame[axis].to_numpy(dtype=np.float64) * factor for axis in "xyz"}
    )


def to_wearable_export(
    recording: dict[str, Any],
    start_epoch_ms: float,
    accelerometer_unit: str,
    gyroscope_unit: str,
    rng: np.random.Generator,
    jitter_ms: float = 0.0,
    gyroscope_rate_hz: float | None = None,
    crop_s: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Re-expresses one HAPT recording as a watch export: epoch clock, chosen units, jitter.

    ``recording`` is in HaptZipDataset's form (timestamps in ms from 0, g and rad/s). The
    result has the keys WearableExportDataset.load() gives for one folder (``accelerometer``,
    ``gyroscope``, ``labels``, ``subject_id``, ``read_errors``) except ``files``, which only a
    saved folder has; pass it to WearableExportDataset.save under a recording id.

    - ``crop_s=(a, b)`` keeps the samples with ``a <= t <= b`` seconds (HAPT clock) and the
      label segments overlapping that span, clipped to it.
    - The export's clock starts at ``start_epoch_ms`` at the recording's origin (``a`` when
      cropped, else 0): each timestamp and label bound moves by the same shift.
    - ``gyroscope_rate_hz`` resamples the gyroscope onto a uniform grid at that rate from its
      first sample (``np.interp``), as a watch whose streams run at different rates.
    - ``jitter_ms`` adds independent uniform noise in ``[-jitter_ms, jitter_ms]`` to each
      stream's timestamps (after resampling), never to labels; below half a sample period it
      keeps the samples in order.
    """
    if jitter_ms < 0:
        raise ValueError(f"jitter_ms must be >= 0, got {jitter_ms}")
    if gyroscope_rate_hz is not None and gyroscope_rate_hz <= 0:
        raise ValueError(f"gyroscope_rate_hz must be > 0, got {gyroscope_rate_hz}")
    factors = {
        sensor: unit_factor(sensor, HAPT_UNITS[sensor]) / unit_factor(sensor, unit)
        for sensor, unit in (("accelerometer", accelerometer_unit), ("gyroscope", gyroscope_unit))
    }
    streams = {sensor: recording[sensor][SENSOR_COLUMNS] for sensor in factors}
    labels = recording.get("labels")
    origin_ms = 0.0
    if crop_s is not None:
        low_ms, high_ms = 1000.0 * float(crop_s[0]), 1000.0 * float(crop_s[1])
        if not low_ms < high_ms:
            raise ValueError(f"crop_s must be (start, end) with start < end, got {crop_s}")
        streams = {
            sensor: frame[frame["timestamp"].between(low_ms, high_ms)]
            for sensor, frame in streams.items()
        }
        if labels is not None:
            labels = _crop_labels(labels, low_ms, high_ms)
        origin_ms = low_ms
    empty = [sensor for sensor, frame in streams.items() if len(frame) < 2]
    if empty:
        raise ValueError(f"Fewer than 2 samples left in {empty} (crop_s={crop_s})")
    if gyroscope_rate_hz is not None:
        streams["gyroscope"] = _resample(streams["gyroscope"], gyroscope_rate_hz)

    shift_ms = float(start_epoch_ms) - origin_ms
    export: dict[str, Any] = {
        sensor: _export_stream(streams[sensor], factors[sensor], shift_ms, jitter_ms, rng)
        for sensor in ("accelerometer", "gyroscope")
    }
    if labels is not None:
        labels = labels[LABEL_COLUMNS].reset_index(drop=True)
        labels = labels.assign(
            start=labels["start"].astype(np.float64) + shift_ms,
            end=labels["end"].astype(np.float64) + shift_ms,
        )
    export["labels"] = labels
    export["subject_id"] = recording["subject_id"]
    export["read_errors"] = {}
    logger.debug(
        "Exported subject %s: %d accelerometer (%s), %d gyroscope (%s) samples",
        export["subject_id"],
        len(export["accelerometer"]),
        accelerometer_unit,
        len(export["gyroscope"]),
        gyroscope_unit,
    )
    return export
