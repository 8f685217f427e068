"""Garmin .FIT files of a recording folder as the records validation reads.

A recording folder may hold ``*.fit`` files instead of (or besides) the CSV exports; several
files of one recording are joined in time order. The values come in the units the file fixes
(accelerometer g, gyroscope deg/s: :mod:`har_mlops.fit`), carried as the record's ``units`` so
validation re-expresses them in the declared ones and the user declares nothing for FIT data.
Each file's report (messages and samples read, and its problems) goes into the record, so the
validation report lists them per file like the problems of a CSV.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from har_mlops.fit import STREAMS, UNITS, FitImuReader, FitReport

FIT_PREFIX = "fit:"
FIT_UNITS = {stream: UNITS[stream] for stream in STREAMS}
# Samples decoded per block: ~2 MB of frames per stream, whatever the file's length.
BLOCK_SAMPLES = 50_000
# The first samples of a file tell its start (files are ordered by it) at little decoding.
PEEK_SAMPLES = 30


class FitOrderError(ValueError):
    """The FIT files of a recording overlap in time, so they cannot be read in time order."""


def fit_files(folder: Path) -> list[Path]:
    """The folder's ``.fit`` files (any case of the suffix), by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".fit")


def _problem_action(problem: str) -> tuple[str, int]:
    """How a FIT reader problem affected the data: (validation action, rows affected)."""
    left_out = re.search(r"(\d+) left out", problem)
    if problem == "no IMU messages":
        return "ignored", 0
    if left_out:
        return "repaired", int(left_out.group(1))
    # A truncated file or a CRC error: the samples decoded before it are kept.
    return "repaired", 0


def report_entries(report: FitReport, name: str) -> list[dict[str, Any]]:
    """Validation-report problems of one FIT file (``name`` as the report shows files)."""
    return [
        {"file": name, "problem": problem, "rows_affected": rows, "action": action}
        for problem in report.problems
        for action, rows in [_problem_action(problem)]
    ]


def report_summary(report: FitReport, name: str) -> dict[str, Any]:
    """What was read from one FIT file: messages, samples, time span and base."""
    return {
        "file": name,
        "messages": dict(report.messages),
        "samples": dict(report.samples),
        "first_ms": report.first_ms,
        "last_ms": report.last_ms,
        "time_base": report.time_base,
        "units": dict(FIT_UNITS),
        "complete": report.complete,
    }


def _name(folder: Path, path: Path) -> str:
    return f"{folder.name}/{path.name}"


def _first_ms(path: Path) -> float:
    """The first sample time of a file (inf when it has none): files are joined by it."""
    reader = FitImuReader(path, PEEK_SAMPLES)
    blocks = reader.blocks()
    try:
        block = next(blocks)
    except StopIteration:
        return float("inf")
    finally:
        blocks.close()
    times = [f["timestamp"].iloc[0] for f in (block.accelerometer, block.gyroscope) if len(f)]
    return float(min(times)) if times else float("inf")


def ordered(paths: list[Path]) -> list[Path]:
    """The files of a recording in time order (by their first sample; empty files last)."""
    return sorted(paths, key=lambda p: (_first_ms(p), p.name))


def read_fit_folder(folder: Path, paths: list[Path]) -> dict[str, Any]:
    """The whole recording from its FIT files: frames, units, per-file problems and summary."""
    frames: dict[str, list[pd.DataFrame]] = {s: [] for s in STREAMS}
    problems, summaries = [], []
    for path in ordered(paths):
        reader = FitImuReader(path, BLOCK_SAMPLES)
        for block in reader.blocks():
            frames["accelerometer"].append(block.accelerometer)
            frames["gyroscope"].append(block.gyroscope)
        problems += report_entries(reader.report, _name(folder, path))
        summaries.append(report_summary(reader.report, _name(folder, path)))
    record: dict[str, Any] = {"units": dict(FIT_UNITS), "reader_problems": problems}
    record["source"] = {"format": "fit", "files": summaries}
    for stream in STREAMS:
        parts = [f for f in frames[stream] if len(f)]
        # A stream no file carries is missing, as a missing CSV is.
        record[stream] = (
            pd.concat(parts, ignore_index=True).sort_values(
                "timestamp", kind="stable", ignore_index=True
            )
            if parts
            else None
        )
    return record


class FitStreams:
    """Both sensor streams of a recording's FIT files, decoded block by block in time order.

    ``fill_until(t)`` decodes until both streams reach ``t`` (or the files end); ``take`` and
    ``drop_before`` work on what is buffered, so memory is a chunk plus a decoding block.
    Problems and summaries of each file become available once it has been read to its end
    (``pop_problems``).
    """

    def __init__(self, folder: Path, paths: list[Path], block_samples: int | None = None):
        self.folder = folder
        self.paths = ordered(paths)
        self.block_samples = block_samples or BLOCK_SAMPLES
        self.frames = {s: pd.DataFrame({"timestamp": np.empty(0)}) for s in STREAMS}
        self.done = False
        self.summaries: list[dict[str, Any]] = []
        self._problems: list[dict[str, Any]] = []
        self._blocks = self._decode()

    def _decode(self) -> Iterator[dict[str, pd.DataFrame]]:
        for path in self.paths:
            reader = FitImuReader(path, self.block_samples)
            for block in reader.blocks():
                yield {"accelerometer": block.accelerometer, "gyroscope": block.gyroscope}
            self._problems += report_entries(reader.report, _name(self.folder, path))
            self.summaries.append(report_summary(reader.report, _name(self.folder, path)))

    def last_time(self, stream: str) -> float:
        frame = self.frames[stream]
        return float(frame["timestamp"].iloc[-1]) if len(frame) else -np.inf

    def fill_until(self, t_ms: float) -> None:
        """Decodes blocks until both streams hold a sample at or after ``t_ms``, or the end.

        At least until both streams have a sample: a file without one of them is decoded to
        its end to find that out (validation then rejects the recording for it).
        """
        while not self.done and (
            min(self.last_time(s) for s in STREAMS) < t_ms
            or min(self.last_time(s) for s in STREAMS) == -np.inf
        ):
            try:
                block = next(self._blocks)
            except StopIteration:
                self.done = True
                break
            for stream in STREAMS:
                part = block[stream]
                if not len(part):
                    continue
                t = part["timestamp"].to_numpy()
                if np.any(np.diff(t) < 0) or t[0] < self.last_time(stream):
                    raise FitOrderError(
                        f"{self.folder.name}: the {stream} samples of its FIT files are not in "
                        "time order (overlapping files?), which reading in time chunks needs; "
                        "set inference.cohort.chunk_minutes: null to read them whole"
                    )
                frame = self.frames[stream]
                self.frames[stream] = (
                    pd.concat([frame, part], ignore_index=True) if len(frame) else part
                )

    def take(self, stream: str, start_ms: float, end_ms: float) -> pd.DataFrame:
        """Buffered rows of ``stream`` with ``start_ms <= t < end_ms``."""
        frame = self.frames[stream]
        t = frame["timestamp"].to_numpy(dtype=np.float64)
        lo, hi = np.searchsorted(t, [start_ms, end_ms], side="left")
        return frame.iloc[lo:hi].reset_index(drop=True)

    def drop_before(self, t_ms: float) -> None:
        """Forgets rows no later chunk needs."""
        for stream in STREAMS:
            t = self.frames[stream]["timestamp"].to_numpy(dtype=np.float64)
            self.frames[stream] = self.frames[stream].iloc[
                int(np.searchsorted(t, t_ms, side="left")) :
            ]

    def pop_problems(self) -> list[dict[str, Any]]:
        """Problems of the files read to their end since the last call."""
        problems, self._problems = self._problems, []
        return problems
