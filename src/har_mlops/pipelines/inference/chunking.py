"""One recording through the inference chain, one time chunk at a time.

The chain is the pipelines' own node functions (validate, resample, convert units, label,
window, contract check, predict). A long export is read in chunks of ``chunk_minutes`` with a
margin of raw samples on both sides; three things carry over a chunk border so that windows and
predictions equal a whole-recording run:

- the resampling grid's origin (the first merged sample of the whole recording);
- the gap-free segments, recomputed from grid indices (a gap is a missing grid index);
- the samples after the last full window of the chunk's last segment, which start the next
  chunk's first segment at a window-start position.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from har_mlops.parameters import RawSource, Resampling, Validation, Windowing
from har_mlops.pipelines.data_processing.nodes import (
    assign_labels,
    convert_units,
    resample_recordings,
    validate_recordings,
    window_samples,
)
from har_mlops.pipelines.data_processing.validation import NoValidRecordingsError

logger = logging.getLogger(__name__)


def margin_ms(resampling: Resampling) -> float:
    """Raw time a chunk reads beyond its border: what merging and resampling look at."""
    # A grid point needs merged samples within max_gap_ms; a merged sample needs gyroscope
    # samples within max_gap_ms (bracket) and merge_tolerance_ms; a few periods spare.
    period_ms = 1000.0 / resampling["target_rate_hz"]
    return 2.0 * resampling["max_gap_ms"] + resampling["merge_tolerance_ms"] + 4.0 * period_ms


@dataclass
class ChunkState:
    """What one chunk hands to the next, plus the per-chunk validation entries."""

    origin_ms: float | None = None
    carry: pd.DataFrame | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)


def _grid_index(timestamps: np.ndarray, origin_ms: float, period_ms: float) -> np.ndarray:
    """Integer position of each grid time on the recording's grid."""
    return np.rint((timestamps - origin_ms) / period_ms).astype(np.int64)


def _next_carry(samples: pd.DataFrame, windowing: Windowing) -> pd.DataFrame:
    """Samples of the last segment from its first window start that had no full window yet."""
    size = int(windowing["window_size"])
    step = max(1, round(size * (1.0 - float(windowing["overlap"]))))
    if samples.empty:
        return samples
    segment = samples["segment_id"].to_numpy()
    run_start = int(np.flatnonzero(segment == segment[-1])[0])
    run_length = len(samples) - run_start
    # The first window start (a multiple of step from the segment start) that did not fit.
    unfinished = -(-max(run_length - size + 1, 0) // step) * step
    return samples.iloc[run_start + unfinished :]


def _with_carry(samples: pd.DataFrame, state: ChunkState, period_ms: float) -> pd.DataFrame:
    """The chunk's samples after the carried ones, with segments renumbered from grid gaps."""
    if state.carry is not None and not state.carry.empty:
        samples = pd.concat([state.carry, samples], ignore_index=True)
    k = _grid_index(samples["timestamp"].to_numpy(), state.origin_ms, period_ms)
    segment = np.cumsum(np.r_[False, np.diff(k) != 1]).astype("int32")
    return samples.assign(segment_id=segment)


def _resampled_chunk(
    record: dict[str, Any],
    rec_id: str,
    state: ChunkState,
    raw_source: RawSource,
    validation: Validation,
    resampling: Resampling,
    windowing: Windowing,
) -> tuple[pd.DataFrame | None, dict[str, dict[str, Any]]]:
    """Validated and resampled samples of one chunk (None if the chunk has none)."""
    try:
        validated, report = validate_recordings(
            {rec_id: record}, raw_source, validation, resampling, windowing
        )
    except NoValidRecordingsError as exc:
        # A rejected chunk is a gap; validation's reasons stay in the recording's report.
        state.entries.extend(exc.report["recordings"] if exc.report else [])
        return None, {}
    state.entries.extend(report["recordings"])
    if state.origin_ms is not None:
        validated = {rec_id: {**validated[rec_id], "grid_origin_ms": state.origin_ms}}
    try:
        samples = resample_recordings(validated, resampling)
    except ValueError as exc:
        if "overlapping" not in str(exc):
            raise
        return None, validated
    if state.origin_ms is None:
        state.origin_ms = float(samples["timestamp"].iloc[0])
    return samples, validated


def chunk_windows(
    chunks: Iterable[tuple[dict[str, Any], float, float]],
    rec_id: str,
    raw_source: RawSource,
    validation: Validation,
    resampling: Resampling,
    windowing: Windowing,
    state: ChunkState,
) -> Iterable[dict[str, np.ndarray]]:
    """Windows of each chunk, equal to the whole recording's windows cut at chunk borders."""
    period_ms = 1000.0 / resampling["target_rate_hz"]
    for record, keep_from, keep_until in chunks:
        for stream, rows in record.get("unparsable_timestamps", {}).items():
            state.entries.append(
                {
                    "problems": [
                        {
                            "file": record["files"][stream],
                            "problem": "rows with unparsable timestamps dropped",
                            "rows_affected": rows,
                            "action": "repaired",
                        }
                    ]
                }
            )
        samples, validated = _resampled_chunk(
            record, rec_id, state, raw_source, validation, resampling, windowing
        )
        if samples is None:
            state.carry = None
            continue
        t = samples["timestamp"].to_numpy()
        inside = (t >= keep_from) & (t < keep_until)
        if not inside.all():
            samples = samples.iloc[np.flatnonzero(inside)]
        labelled = assign_labels(convert_units(samples, raw_source), validated, raw_source)
        labelled = _with_carry(labelled, state, period_ms)
        state.carry = _next_carry(labelled, windowing)
        yield window_samples(labelled, windowing)
