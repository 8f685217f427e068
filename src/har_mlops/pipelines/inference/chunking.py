"""One recording through the inference chain, one time chunk at a time.

The chain is the registered ``inference_chunk`` pipeline (``pipeline.py``): the data_processing
node functions (validate, resample, convert units, label, window) and the nodes below that
carry a recording across chunk borders; :func:`run_chain` runs it on each chunk. A long export is read in chunks of ``chunk_minutes`` with a
margin of raw samples on both sides; three things carry over a chunk border so that windows and
predictions equal a whole-recording run:

- the resampling grid's origin (the first merged sample of the whole recording);
- the gap-free segments, recomputed from grid indices (a gap is a missing grid index);
- the samples after the last full window of the chunk's last segment, which start the next
  chunk's first segment at a window-start position.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from kedro.pipeline import Pipeline

from har_mlops.parameters import Resampling, Windowing
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
    """The validation entries of a recording's chunks, collected while they run."""

    entries: list[dict[str, Any]] = field(default_factory=list)


def _grid_index(timestamps: np.ndarray, origin_ms: float, period_ms: float) -> np.ndarray:
    """Integer position of each grid time on the recording's grid."""
    return np.rint((timestamps - origin_ms) / period_ms).astype(np.int64)


def place_on_grid(
    validated_chunk: dict[str, dict[str, Any]], chunk_context: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The chunk's recording on the whole recording's resampling grid, once its origin is known."""
    if chunk_context["origin_ms"] is None:
        return validated_chunk
    return {
        rec_id: {**record, "grid_origin_ms": chunk_context["origin_ms"]}
        for rec_id, record in validated_chunk.items()
    }


def keep_chunk_range(resampled_chunk: pd.DataFrame, chunk_context: dict[str, Any]) -> pd.DataFrame:
    """The chunk's own grid points; the margin read around them belongs to its neighbours."""
    t = resampled_chunk["timestamp"].to_numpy()
    inside = (t >= chunk_context["keep_from"]) & (t < chunk_context["keep_until"])
    return resampled_chunk if inside.all() else resampled_chunk.iloc[np.flatnonzero(inside)]


def _origin(samples: pd.DataFrame, chunk_context: dict[str, Any]) -> float | None:
    """The grid's origin: known from an earlier chunk, else this chunk's first grid point."""
    if chunk_context["origin_ms"] is not None:
        return chunk_context["origin_ms"]
    return float(samples["timestamp"].iloc[0]) if len(samples) else None


def continue_segments(
    labelled_chunk: pd.DataFrame, chunk_context: dict[str, Any], resampling: Resampling
) -> pd.DataFrame:
    """The samples carried from the last chunk, then this chunk's, segments cut at grid gaps."""
    carry = chunk_context["carry"]
    samples = (
        pd.concat([carry, labelled_chunk], ignore_index=True)
        if carry is not None and len(carry)
        else labelled_chunk
    )
    origin = _origin(samples, chunk_context)
    if origin is None:
        return samples
    period_ms = 1000.0 / resampling["target_rate_hz"]
    k = _grid_index(samples["timestamp"].to_numpy(), origin, period_ms)
    return samples.assign(segment_id=np.cumsum(np.r_[False, np.diff(k) != 1]).astype("int32"))


def next_chunk_context(
    continued_samples: pd.DataFrame, chunk_context: dict[str, Any], windowing: Windowing
) -> dict[str, Any]:
    """What the next chunk continues: the grid's origin and the samples after the last window."""
    return {
        "origin_ms": _origin(continued_samples, chunk_context),
        "carry": _unfinished_samples(continued_samples, windowing),
    }


def _unfinished_samples(samples: pd.DataFrame, windowing: Windowing) -> pd.DataFrame:
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


def run_chain(pipeline: Pipeline, store: dict[str, Any]) -> None:
    """Runs the nodes in order on ``store`` (datasets by name), adding each node's outputs."""
    # Node.run, not a Kedro runner: a chunk is a few milliseconds of work, and a runner's
    # catalog, hooks and logging per chunk would cost more than the chunk.
    for node in pipeline.nodes:
        store.update(node.run({name: store[name] for name in node.inputs}))


def chunk_windows(
    chunks: Iterable[tuple[dict[str, Any], float, float]],
    rec_id: str,
    chunk_pipeline: Pipeline,
    parameters: dict[str, Any],
    state: ChunkState,
) -> Iterator[dict[str, np.ndarray]]:
    """Windows of each chunk, equal to the whole recording's windows cut at chunk borders.

    ``chunk_pipeline`` is the registered ``inference_chunk`` pipeline; ``parameters`` maps its
    ``params:`` inputs to their typed groups.
    """
    context: dict[str, Any] = {"origin_ms": None, "carry": None}
    for record, keep_from, keep_until in chunks:
        store = {
            **parameters,
            "raw_chunk": {rec_id: record},
            "chunk_context": {**context, "keep_from": keep_from, "keep_until": keep_until},
        }
        try:
            run_chain(chunk_pipeline, store)
        except NoValidRecordingsError as exc:
            # A rejected chunk is a gap; validation's reasons stay in the recording's report.
            state.entries.extend(exc.report["recordings"] if exc.report else [])
            context = {"origin_ms": context["origin_ms"], "carry": None}
            continue
        except ValueError as exc:
            # resample_recordings: nothing in this chunk where both streams overlap.
            if "overlapping" not in str(exc):
                raise
            state.entries.extend(store["chunk_validation_report"]["recordings"])
            context = {"origin_ms": context["origin_ms"], "carry": None}
            continue
        state.entries.extend(store["chunk_validation_report"]["recordings"])
        context = store["next_chunk_context"]
        yield store["chunk_windows"]
