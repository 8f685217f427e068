"""Validation of raw recordings: repair what is recoverable, reject the rest, report both."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from har_mlops.parameters import RawSource, Resampling, Validation, Windowing
from har_mlops.units import STANDARD_GRAVITY, likely_unit_mistake, stream_gravity, unit_factor

logger = logging.getLogger(__name__)

SENSOR_STREAMS = ("accelerometer", "gyroscope")
SENSOR_COLUMNS = ["timestamp", "x", "y", "z"]
LABEL_COLUMNS = ["start", "end", "activity"]


class NoValidRecordingsError(ValueError):
    """Raised when validation leaves nothing to process; ``report`` says why, per file."""

    def __init__(self, message: str, report: dict[str, Any] | None = None):
        super().__init__(message)
        self.report = report


def _problem(file: str, problem: str, rows: int, action: str) -> dict[str, Any]:
    return {"file": file, "problem": problem, "rows_affected": int(rows), "action": action}


def _numeric(frame: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
    """Columns as float arrays; anything unparsable becomes NaN (and is counted by the caller)."""
    # Columns the CSV reader already parsed as numbers skip the (slow) coercion.
    return {
        c: frame[c].to_numpy(dtype="float64", na_value=np.nan)
        if pd.api.types.is_numeric_dtype(frame[c])
        else pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype="float64")
        for c in columns
    }


def _take_rows(columns: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {c: values[rows] for c, values in columns.items()}


def _stream_stats(timestamps: np.ndarray, max_gap_ms: float) -> tuple[dict[str, Any], float]:
    """Report figures of a sorted stream, and its median sample interval (ms)."""
    diffs = np.diff(timestamps)
    gaps = diffs[diffs > max_gap_ms]
    median = float(np.median(diffs)) if diffs.size else float("nan")
    stats = {
        "duration_s": round(float(timestamps[-1] - timestamps[0]) / 1000.0, 3),
        "observed_rate_hz": round(1000.0 / median, 3) if median > 0 else None,
        "gaps": int(gaps.size),
        "longest_gap_s": round(float(gaps.max()) / 1000.0, 3) if gaps.size else 0.0,
    }
    return stats, median


def _structural_problem(frame: pd.DataFrame | None, read_error: str | None) -> str | None:
    """Why a stream cannot be read as sensor data at all, or None."""
    if read_error is not None:
        return f"unreadable CSV: {read_error}"
    if frame is None:
        return "missing stream (file not found)"
    if frame.shape[1] == 0:
        return "empty file"
    missing = [c for c in SENSOR_COLUMNS if c not in frame.columns]
    if missing:
        return f"missing column(s) {missing}; expected header {','.join(SENSOR_COLUMNS)}"
    if len(frame) == 0:
        return "header only, no data rows"
    return None


def _drop_bad_rows(
    columns: dict[str, np.ndarray],
    file: str,
    limit: float,
    max_bad_row_fraction: float,
    stats: dict[str, Any],
) -> tuple[dict[str, np.ndarray] | None, list[dict[str, Any]]]:
    """Drops NaN, non-numeric and out-of-range rows; None (rejected) if there are too many."""
    rows = len(columns["timestamp"])
    finite = np.logical_and.reduce([np.isfinite(v) for v in columns.values()])
    in_range = np.logical_and.reduce([np.abs(columns[c]) <= limit for c in SENSOR_COLUMNS[1:]])
    in_range |= ~finite
    bad_counts = {
        "NaN or non-numeric values": int((~finite).sum()),
        f"values beyond the plausible sensor range (|v| > {limit:g} in declared units)": int(
            (~in_range).sum()
        ),
    }
    stats["non_numeric_rows"] = bad_counts["NaN or non-numeric values"]
    stats["out_of_range_rows"] = int((~in_range).sum())
    keep = finite & in_range
    n_bad = rows - int(keep.sum())
    if n_bad > max_bad_row_fraction * rows:
        problem = (
            f"{n_bad} of {rows} rows unusable "
            f"({', '.join(f'{n} {k}' for k, n in bad_counts.items() if n)}), "
            f"more than max_bad_row_fraction={max_bad_row_fraction}"
        )
        return None, [_problem(file, problem, n_bad, "rejected")]
    problems = [
        _problem(file, f"rows with {kind} dropped", count, "repaired")
        for kind, count in bad_counts.items()
        if count
    ]
    return (_take_rows(columns, keep) if n_bad else columns), problems


def _order_timestamps(
    columns: dict[str, np.ndarray], file: str, stats: dict[str, Any]
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Sorts timestamps out of order and drops duplicated ones (the first is kept)."""
    problems = []
    unsorted = int((np.diff(columns["timestamp"]) < 0).sum())
    stats["unsorted_timestamps"] = unsorted
    if unsorted:
        columns = _take_rows(columns, np.argsort(columns["timestamp"], kind="stable"))
        problems.append(_problem(file, "timestamps out of order, sorted", unsorted, "repaired"))
    # Sorted by now, so a duplicate equals its predecessor (hashing 4M floats is 10x slower).
    duplicated = np.r_[False, np.diff(columns["timestamp"]) == 0]
    stats["duplicated_timestamps"] = int(duplicated.sum())
    if duplicated.any():
        columns = _take_rows(columns, ~duplicated)
        problems.append(
            _problem(file, "duplicated timestamps, first kept", int(duplicated.sum()), "repaired")
        )
    return columns, problems


def clock_problem(
    observed_rate_hz: float | None, plausible_rate_hz: tuple[float, float]
) -> str | None:
    """Why an observed sampling rate no wearable has points at a timestamp unit mix-up."""
    low, high = plausible_rate_hz
    if observed_rate_hz is None or low <= observed_rate_hz <= high:
        return None
    # Seconds read as milliseconds make the rate 1000x too high; micro- and nanoseconds too low.
    for factor, unit in ((1e3, "seconds"), (1e-3, "microseconds"), (1e-6, "nanoseconds")):
        if low <= observed_rate_hz / factor <= high:
            return (
                f"timestamps look like {unit}, not milliseconds: observed rate "
                f"{observed_rate_hz:g} Hz, which would be {observed_rate_hz / factor:g} Hz in "
                f"{unit} (plausible {low:g}-{high:g} Hz); write the timestamps in milliseconds"
            )
    return (
        f"implausible sampling rate {observed_rate_hz:g} Hz (plausible {low:g}-{high:g} Hz): "
        "check the timestamp column"
    )


def _timing_problems(
    timestamps: np.ndarray,
    file: str,
    max_gap_ms: float,
    stats: dict[str, Any],
    plausible_rate_hz: tuple[float, float],
) -> list[dict[str, Any]]:
    """A clock in the wrong unit or a stream too sparse to interpolate (rejected), or its gaps."""
    stream_stats, median_interval = _stream_stats(timestamps, max_gap_ms)
    stats.update(stream_stats)
    # Before the sparse and too-short checks: a clock in seconds makes a day look 86 s long.
    clock = clock_problem(
        1000.0 / median_interval if median_interval > 0 else None, plausible_rate_hz
    )
    if clock is not None:
        return [_problem(file, clock, len(timestamps), "rejected")]
    if median_interval > max_gap_ms:
        problem = (
            f"too sparse: median sample interval {median_interval:g} ms exceeds "
            f"max_gap_ms={max_gap_ms:g}, so nothing could be interpolated"
        )
        return [_problem(file, problem, len(timestamps), "rejected")]
    if stats["gaps"]:
        problem = (
            f"{stats['gaps']} gap(s) longer than {max_gap_ms:g} ms "
            f"(longest {stats['longest_gap_s']} s), not interpolated across"
        )
        return [_problem(file, problem, 0, "split")]
    return []


def _validate_stream(
    frame: pd.DataFrame | None,
    file: str,
    read_error: str | None,
    limit: float,
    validation: Validation,
    max_gap_ms: float,
) -> tuple[pd.DataFrame | None, dict[str, Any], list[dict[str, Any]]]:
    """Checks one sensor stream; returns the repaired frame (None if unusable), stats, problems."""
    stats: dict[str, Any] = {"file": file}
    if frame is not None and read_error is None:
        stats["rows"] = len(frame)
    unusable = _structural_problem(frame, read_error)
    if unusable is not None:
        rows = 0 if frame is None or frame.shape[1] == 0 else len(frame)
        return None, stats, [_problem(file, unusable, rows, "rejected")]
    # Column arrays until the end: a request-sized stream would otherwise spend more time in
    # DataFrame bookkeeping than in the checks themselves.
    columns, problems = _drop_bad_rows(
        _numeric(frame, SENSOR_COLUMNS), file, limit, validation["max_bad_row_fraction"], stats
    )
    if columns is None:
        return None, stats, problems
    columns, reordered = _order_timestamps(columns, file, stats)
    problems += reordered
    if len(columns["timestamp"]) < 2:
        problems.append(_problem(file, "fewer than 2 usable rows", len(frame), "rejected"))
        return None, stats, problems
    timing = _timing_problems(
        columns["timestamp"], file, max_gap_ms, stats, validation["plausible_rate_hz"]
    )
    problems += timing
    if any(p["action"] == "rejected" for p in timing):
        return None, stats, problems
    return pd.DataFrame(columns, copy=False), stats, problems


def _validate_labels(
    frame: pd.DataFrame | None, file: str, read_error: str | None
) -> tuple[pd.DataFrame | None, list[dict[str, Any]]]:
    """Checks the optional label segments; unusable labels leave the recording unlabelled."""
    if read_error is not None:
        return None, [_problem(file, f"unreadable CSV: {read_error}", 0, "ignored")]
    if frame is None:
        return None, []
    missing = [c for c in LABEL_COLUMNS if c not in frame.columns]
    if frame.shape[1] == 0 or missing:
        problem = f"missing column(s) {missing or LABEL_COLUMNS}; recording treated as unlabelled"
        return None, [_problem(file, problem, len(frame), "ignored")]
    bounds = _numeric(frame, ["start", "end"])
    activity = frame["activity"].astype("string").str.strip()
    ok = np.isfinite(bounds["start"]) & np.isfinite(bounds["end"])
    ok &= bounds["end"] >= bounds["start"]
    ok &= activity.notna().to_numpy() & (activity.str.len() > 0).fillna(False).to_numpy()
    problems = []
    if (~ok).sum():
        problems.append(
            _problem(
                file, "label rows with bad start/end/activity dropped", (~ok).sum(), "repaired"
            )
        )
    labels = pd.DataFrame(
        {"start": bounds["start"][ok], "end": bounds["end"][ok], "activity": activity[ok].array}
    )
    labels = labels.sort_values("start", kind="stable").reset_index(drop=True)
    ends_so_far = labels["end"].cummax().to_numpy()
    overlapping = int((labels["start"].to_numpy()[1:] <= ends_so_far[:-1]).sum())
    if overlapping:
        problem = "overlapping label segments: samples covered by more than one are left unlabelled"
        problems.append(_problem(file, problem, overlapping, "ignored"))
    return labels, problems


def _check_gravity(
    accelerometer: pd.DataFrame,
    files: dict[str, str],
    rec_id: str,
    units: dict[str, str],
    validation: Validation,
    entry: dict[str, Any],
) -> bool:
    """Whether the accelerometer reads 1 g at rest in its declared unit; reports it if not."""
    check = validation["unit_check"]
    rate = entry["streams"]["accelerometer"].get("observed_rate_hz") or 1.0
    acc = accelerometer[["x", "y", "z"]].to_numpy(dtype=np.float64)
    gravity = stream_gravity(
        acc * unit_factor("accelerometer", units["accelerometer"]),
        round(check["window_s"] * rate),
        check,
    )
    entry["gravity"] = gravity
    if gravity["ok"]:
        return True
    reject = check["on_mismatch"] == "reject"
    entry["problems"].append(
        _problem(
            files.get("accelerometer", f"{rec_id}/accelerometer"),
            f"acceleration at rest reads {gravity['ratio_to_g']:g} g, not 1 g (median |a| "
            f"{gravity['median_magnitude_ms2']:g} m/s^2 over {gravity['windows_used']} "
            f"{gravity['from']}, declared unit {units['accelerometer']}): {gravity['hint']}",
            len(accelerometer),
            "rejected" if reject else "kept",
        )
    )
    return not reject


def _with_unit_hint(
    problems: list[dict[str, Any]], accelerometer: pd.DataFrame, unit: str
) -> list[dict[str, Any]]:
    """Adds the likely unit mix-up to an accelerometer rejected for out-of-range values."""
    values = _numeric(accelerometer, SENSOR_COLUMNS)
    acc = np.column_stack([values[c] for c in SENSOR_COLUMNS[1:]])
    magnitude = np.sqrt((acc[np.isfinite(acc).all(axis=1)] ** 2).sum(axis=1))
    if magnitude.size == 0:
        return problems
    ratio = float(np.median(magnitude)) * unit_factor("accelerometer", unit) / STANDARD_GRAVITY
    hint = likely_unit_mistake(ratio)
    if hint == "no unit mix-up fits":
        return problems
    *earlier, last = problems
    return [
        *earlier,
        {**last, "problem": f"{last['problem']}: median |a| reads {ratio:.4g} g, {hint}"},
    ]


def _validate_recording(
    rec_id: str,
    record: dict[str, Any],
    limits: dict[str, float],
    validation: Validation,
    max_gap_ms: float,
    min_duration_s: float,
    units: dict[str, str],
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    files = record.get("files", {})
    read_errors = record.get("read_errors", {})
    entry: dict[str, Any] = {
        "recording_id": rec_id,
        "subject_id": record.get("subject_id"),
        "streams": {},
        # What a reader found in the files themselves (a truncated FIT file, ...).
        "problems": list(record.get("reader_problems", [])),
    }
    if record.get("source"):
        entry["source"] = record["source"]
    if "metadata" in read_errors:
        entry["problems"].append(
            _problem(f"{rec_id}/metadata.json", read_errors["metadata"], 0, "ignored")
        )
    clean: dict[str, Any] = {"subject_id": str(record.get("subject_id", rec_id))}
    for stream in SENSOR_STREAMS:
        file = files.get(stream, f"{rec_id}/{stream}")
        frame, stats, problems = _validate_stream(
            record.get(stream),
            file,
            read_errors.get(stream),
            limits[stream],
            validation,
            max_gap_ms,
        )
        if stream == "accelerometer" and frame is None and stats.get("out_of_range_rows"):
            problems = _with_unit_hint(problems, record[stream], units[stream])
        entry["streams"][stream] = stats
        entry["problems"].extend(problems)
        clean[stream] = frame
    labels_file = files.get("labels", f"{rec_id}/labels")
    clean["labels"], label_problems = _validate_labels(
        record.get("labels"), labels_file, read_errors.get("labels")
    )
    entry["problems"].extend(label_problems)
    entry["labelled"] = clean["labels"] is not None

    usable = all(clean[s] is not None for s in SENSOR_STREAMS)
    if usable:
        usable = _check_gravity(clean["accelerometer"], files, rec_id, units, validation, entry)
    if usable:
        timestamps = [clean[s]["timestamp"].to_numpy() for s in SENSOR_STREAMS]
        start = max(t[0] for t in timestamps)
        end = min(t[-1] for t in timestamps)
        overlap_s = max(0.0, (end - start) / 1000.0)
        entry["overlap_duration_s"] = round(overlap_s, 3)
        if overlap_s < min_duration_s:
            entry["problems"].append(
                _problem(
                    rec_id,
                    f"shorter than one window: {overlap_s:.2f} s of overlapping "
                    f"accelerometer and gyroscope data < {min_duration_s:.2f} s",
                    min(len(clean[s]) for s in SENSOR_STREAMS),
                    "rejected",
                )
            )
            usable = False
    entry["status"] = "accepted" if usable else "rejected"
    return (clean if usable else None), entry


def in_declared_units(record: dict[str, Any], raw_source: RawSource) -> dict[str, Any]:
    """A record whose reader fixed its own units (FIT: g, deg/s), in the declared ones.

    Everything downstream converts from the declared units with the declared offsets; values
    re-expressed in them come out of that conversion unchanged, so one code path serves both.
    """
    own = record.get("units")
    if not own:
        return record
    converted = dict(record)
    for stream in SENSOR_STREAMS:
        frame = record.get(stream)
        if frame is None or stream not in own:
            continue
        factor = unit_factor(stream, own[stream]) / unit_factor(
            stream, raw_source[f"{stream}_unit"]
        )
        offset = np.asarray(raw_source.get(f"{stream}_offset", [0.0, 0.0, 0.0]), dtype=float)
        converted[stream] = frame.assign(
            **{c: frame[c].to_numpy() * factor + o for c, o in zip(("x", "y", "z"), offset)}
        )
    return converted


def _raw_limits(raw_source: RawSource, validation: Validation) -> dict[str, float]:
    """The sensor limits in the recordings' own units."""
    return {
        "accelerometer": validation["accelerometer_limit_ms2"]
        / unit_factor("accelerometer", raw_source["accelerometer_unit"]),
        "gyroscope": validation["gyroscope_limit_rads"]
        / unit_factor("gyroscope", raw_source["gyroscope_unit"]),
    }


def _rejections(entries: list[dict[str, Any]], indent: str = "") -> list[str]:
    """One ``file: problem`` line per problem that rejected a recording."""
    return [
        f"{indent}{p['file']}: {p['problem']}"
        for e in entries
        for p in e["problems"]
        if p["action"] == "rejected"
    ]


def _report(entries: list[dict[str, Any]], accepted: int, raw_source: RawSource) -> dict[str, Any]:
    """The validation report: a summary, then one entry per recording."""
    repaired = sum(
        p["rows_affected"] for e in entries for p in e["problems"] if p["action"] == "repaired"
    )
    logger.info(
        "Validation: %d recordings, %d accepted, %d rejected, %d rows repaired or dropped",
        len(entries),
        accepted,
        len(entries) - accepted,
        repaired,
    )
    return {
        "summary": {
            "recordings": len(entries),
            "accepted": accepted,
            "rejected": len(entries) - accepted,
            "rows_repaired_or_dropped": int(repaired),
            "units": {
                "accelerometer": raw_source["accelerometer_unit"],
                "gyroscope": raw_source["gyroscope_unit"],
            },
        },
        "recordings": entries,
    }


def validate_recordings(
    raw_recordings: dict[str, dict[str, Any]],
    raw_source: RawSource,
    validation: Validation,
    resampling: Resampling,
    windowing: Windowing,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Validates and repairs raw recordings; returns the usable ones and a validation report."""
    limits = _raw_limits(raw_source, validation)
    # One window of N samples spans N - 1 sample periods.
    min_duration_s = (windowing["window_size"] - 1) / resampling["target_rate_hz"]
    valid: dict[str, dict[str, Any]] = {}
    entries = []
    units = {s: raw_source[f"{s}_unit"] for s in SENSOR_STREAMS}
    for rec_id in sorted(raw_recordings):
        clean, entry = _validate_recording(
            rec_id,
            in_declared_units(raw_recordings[rec_id], raw_source),
            limits,
            validation,
            resampling["max_gap_ms"],
            min_duration_s,
            units,
        )
        entries.append(entry)
        if clean is not None:
            valid[rec_id] = clean
        else:
            logger.warning("Recording %s left out: %s", rec_id, "; ".join(_rejections([entry])))
    report = _report(entries, len(valid), raw_source)
    if not valid:
        raise NoValidRecordingsError(
            f"No valid recording remains out of {len(entries)}:\n"
            + "\n".join(_rejections(entries, "  ") or ["  (none found)"]),
            report,
        )
    return valid, report
