"""A folder of watch exports as an index of recordings, read later one time chunk at a time.

Loading lists the recordings (files, sizes, modification times, participant, time zone) and
reads no samples: a study folder holds weeks of 50 Hz data, more than fits in memory. The
samples are read by :func:`iter_raw_chunks` on whichever process (a Dask worker) handles the
recording, one chunk of time at a time.
"""

from __future__ import annotations

import json
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from kedro.io import AbstractDataset

from .fit_recordings import FIT_PREFIX, FIT_UNITS, FitStreams, fit_files
from .wearable_export_dataset import METADATA_FILE, STREAM_FILES, _read_csv

DEFAULT_TIMEZONE = "UTC"
SENSOR_STREAMS = ("accelerometer", "gyroscope")
NUMERIC_COLUMNS = ("timestamp", "x", "y", "z")


class ChunkReadError(ValueError):
    """A recording cannot be read in time order; the message names the file."""


def _file_facts(path: Path) -> dict[str, Any] | None:
    """Size and modification time: what decides whether a recording changed since last run."""
    if not path.is_file():
        return None
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _metadata(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """``metadata.json`` as a dict, and the problems found in it."""
    path = folder / METADATA_FILE
    if not path.is_file():
        return {}, []
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {}, [f"unreadable {METADATA_FILE}: {exc}"]
    if not isinstance(meta, dict):
        return {}, [f"{METADATA_FILE} is not a JSON object"]
    return meta, []


def _timezone(meta: dict[str, Any]) -> tuple[str, list[str]]:
    """The recording's IANA time zone (UTC when not given); an unknown name is a problem."""
    name = str(meta.get("timezone") or DEFAULT_TIMEZONE)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return name, [f"unknown IANA time zone {name!r} in {METADATA_FILE}"]
    return name, []


class RecordingIndexDataset(AbstractDataset[None, dict[str, dict[str, Any]]]):
    """``<path>/<recording_id>/{accelerometer,gyroscope,labels}.csv`` (+ ``metadata.json``).

    Instead of the sensor CSVs a folder may hold Garmin ``.fit`` files (``files`` then has one
    ``fit:<file name>`` entry each); ``labels.csv`` and ``metadata.json`` work the same.

    Each recording maps to ``{"folder", "subject_id", "timezone", "files": {stream: {"name",
    "size", "mtime_ns"} | None}, "problems": [...]}``. ``metadata.json`` may carry
    ``subject_id`` (default: the folder name) and ``timezone`` (IANA name, default UTC).
    """

    def __init__(self, path: str, metadata: dict | None = None):
        self._path = Path(path)
        self.metadata = metadata

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self._path.is_dir():
            return {}
        return {
            folder.name: self._index(folder)
            for folder in sorted(p for p in self._path.iterdir() if p.is_dir())
        }

    @staticmethod
    def _index(folder: Path) -> dict[str, Any]:
        meta, problems = _metadata(folder)
        timezone, tz_problems = _timezone(meta)
        files = {}
        for stream, filename in STREAM_FILES.items():
            facts = _file_facts(folder / filename)
            files[stream] = (
                None if facts is None else {"name": f"{folder.name}/{filename}", **facts}
            )
        # Garmin .FIT files: their facts make a changed file a changed recording.
        for path in fit_files(folder):
            files[FIT_PREFIX + path.name] = {
                "name": f"{folder.name}/{path.name}",
                **_file_facts(path),
            }
        return {
            # Absolute: workers of a remote cluster may start elsewhere (same path on every host).
            "folder": str(folder.resolve()),
            "subject_id": str(meta.get("subject_id", folder.name)),
            "timezone": timezone,
            "files": files,
            "problems": problems + tz_problems,
        }

    def _save(self, data: None) -> None:
        raise NotImplementedError("RecordingIndexDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}

    def _exists(self) -> bool:
        return self._path.is_dir()


@dataclass
class _StreamBuffer:
    """Rows of one time-sorted CSV read block by block; keeps only what later chunks need."""

    path: Path
    block_bytes: int
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    done: bool = False
    unusable: bool = False
    unparsable_rows: int = 0
    rows_read: int = 0
    typed: bool = True
    _reader: Any = None

    def __post_init__(self) -> None:
        self._open()

    def _open(self) -> None:
        """Opens the CSV reader at the first row not read yet."""
        # Declared float columns parse ~2x faster than inferred ones; a file with values that
        # are not numbers is re-read untyped from where it failed, and validation reports them.
        convert = pacsv.ConvertOptions(
            column_types=dict.fromkeys(NUMERIC_COLUMNS, pa.float64()) if self.typed else None
        )
        try:
            self._reader = pacsv.open_csv(
                self.path,
                read_options=pacsv.ReadOptions(
                    block_size=self.block_bytes, skip_rows_after_names=self.rows_read
                ),
                convert_options=convert,
                memory_pool=pa.system_memory_pool(),
            )
        except pa.ArrowInvalid:
            if self.typed:
                self.typed = False
                self._open()
                return
            # Empty or unparsable as a whole: read it eagerly so validation names the problem.
            self.frame = self._read_whole()
            self.done = True

    def _read_whole(self) -> pd.DataFrame:
        try:
            return _read_csv(self.path)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()

    def last_time(self) -> float:
        """The latest timestamp buffered so far (-inf when empty)."""
        if self.frame.empty or "timestamp" not in self.frame:
            return -np.inf
        return float(self.frame["timestamp"].iloc[-1])

    def fill_until(self, t_ms: float) -> None:
        """Reads blocks until a row at or after ``t_ms`` is buffered or the file ends."""
        parts = [self.frame] if not self.frame.empty else []
        last = self.last_time()
        while not self.done and (not parts or last < t_ms):
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                self.done = True
                break
            except pa.ArrowInvalid as exc:
                if not self.typed:
                    raise ChunkReadError(f"{self.path.name}: {exc}") from exc
                self.typed = False
                self._open()
                continue
            self.rows_read += batch.num_rows
            part = batch.to_pandas().rename(columns=lambda name: str(name).strip())
            if "timestamp" not in part:
                # Validation names the missing column on the whole file.
                self.unusable = True
                self.done = True
                break
            timestamps = pd.to_numeric(part["timestamp"], errors="coerce")
            unparsable = timestamps.isna().to_numpy()
            if unparsable.any():
                # Cut by time, a row without a time has no chunk: counted, reported, left out.
                self.unparsable_rows += int(unparsable.sum())
                part = part.loc[~unparsable]
            part = part.assign(timestamp=timestamps[~unparsable].astype(np.float64))
            if part.empty:
                continue
            t = part["timestamp"].to_numpy(dtype=np.float64)
            # Chunks are cut by time, so rows must arrive in time order (across blocks too).
            if np.any(np.diff(t) < 0) or t[0] < last:
                raise ChunkReadError(
                    f"{self.path.name}: timestamps are not in time order, which reading in "
                    "time chunks needs; sort the file or set inference.cohort.chunk_minutes: null"
                )
            parts.append(part)
            last = float(t[-1])
        self.frame = (
            pd.concat(parts, ignore_index=True)
            if len(parts) > 1
            else (parts[0] if parts else self.frame)
        )

    def take(self, start_ms: float, end_ms: float) -> pd.DataFrame:
        """Rows with ``start_ms <= t < end_ms``."""
        if self.frame.empty or "timestamp" not in self.frame:
            return self.frame
        t = self.frame["timestamp"].to_numpy(dtype=np.float64)
        lo, hi = np.searchsorted(t, [start_ms, end_ms], side="left")
        return self.frame.iloc[lo:hi].reset_index(drop=True)

    def drop_before(self, t_ms: float) -> None:
        """Forgets rows no later chunk needs."""
        if self.frame.empty or "timestamp" not in self.frame:
            return
        t = self.frame["timestamp"].to_numpy(dtype=np.float64)
        self.frame = self.frame.iloc[int(np.searchsorted(t, t_ms, side="left")) :]


def _raw_record(entry: dict[str, Any], streams: dict[str, pd.DataFrame | None], labels: Any):
    """One chunk in the record layout ``WearableExportDataset`` loads (what validation reads)."""
    return {
        "files": {
            stream: (entry["files"][stream] or {}).get("name", f"{Path(entry['folder']).name}/{f}")
            for stream, f in STREAM_FILES.items()
        },
        "read_errors": {},
        **streams,
        "labels": labels,
        "subject_id": entry["subject_id"],
    }


def read_whole_recording(entry: dict[str, Any]) -> dict[str, Any]:
    """The recording in one piece, as ``WearableExportDataset`` would load it."""
    from .wearable_export_dataset import WearableExportDataset

    folder = Path(entry["folder"])
    record = WearableExportDataset(str(folder.parent))._load_recording(folder)
    record["subject_id"] = entry["subject_id"]
    return record


class _CsvStreams:
    """Both sensor CSVs behind the interface of :class:`FitStreams` (one chunking loop)."""

    def __init__(self, folder: Path, block_bytes: int):
        self.buffers = {
            s: _StreamBuffer(folder / STREAM_FILES[s], block_bytes) for s in SENSOR_STREAMS
        }

    @property
    def done(self) -> bool:
        return all(b.done for b in self.buffers.values())

    def unreadable(self) -> bool:
        return any(b.unusable or b.frame.empty for b in self.buffers.values())

    def last_time(self, stream: str) -> float:
        return self.buffers[stream].last_time()

    def fill_until(self, t_ms: float) -> None:
        for buffer in self.buffers.values():
            buffer.fill_until(t_ms)

    def take(self, stream: str, start_ms: float, end_ms: float) -> pd.DataFrame:
        return self.buffers[stream].take(start_ms, end_ms)

    def drop_before(self, t_ms: float) -> None:
        for buffer in self.buffers.values():
            buffer.drop_before(t_ms)

    def pop_problems(self) -> list[dict[str, Any]]:
        """Rows the chunk reader left out (no parsable time) since the last call."""
        problems = []
        for stream, buffer in self.buffers.items():
            if buffer.unparsable_rows:
                problems.append(
                    {
                        "file": str(Path(buffer.path.parent.name) / buffer.path.name),
                        "problem": "rows with unparsable timestamps dropped",
                        "rows_affected": buffer.unparsable_rows,
                        "action": "repaired",
                    }
                )
                buffer.unparsable_rows = 0
        return problems


def _fit_paths(entry: dict[str, Any]) -> list[Path]:
    folder = Path(entry["folder"])
    return [folder / key[len(FIT_PREFIX) :] for key in entry["files"] if key.startswith(FIT_PREFIX)]


def iter_raw_chunks(
    entry: dict[str, Any], chunk_ms: float | None, margin_ms: float, block_bytes: int
) -> Iterator[tuple[dict[str, Any], float, float]]:
    """``(record, keep_from_ms, keep_until_ms)`` per time chunk of one recording.

    Each record holds the raw rows of ``[keep_from - margin, keep_until + margin)`` so that
    everything computed for times inside ``[keep_from, keep_until)`` sees the same neighbours as
    in a whole-recording run. A last piece shorter than half a chunk joins the chunk before it.
    ``chunk_ms`` None: the whole recording as one chunk. The streams come from the CSV files or,
    when the folder has ``.fit`` files, from those (``FitStreams``).
    """
    if chunk_ms is None:
        yield read_whole_recording(entry), -np.inf, np.inf
        return
    folder = Path(entry["folder"])
    fit = _fit_paths(entry)
    if fit:
        streams: Any = FitStreams(folder, fit)
        streams.fill_until(-np.inf)
        unreadable = any(streams.last_time(s) == -np.inf for s in SENSOR_STREAMS)
    else:
        if any(entry["files"].get(s) is None for s in SENSOR_STREAMS):
            # Nothing to chunk: validation reports the missing stream against its file.
            yield read_whole_recording(entry), -np.inf, np.inf
            return
        streams = _CsvStreams(folder, block_bytes)
        streams.fill_until(-np.inf)
        unreadable = streams.unreadable()
    if unreadable:
        # Nothing readable in time order: validation names the problem on the whole recording.
        yield read_whole_recording(entry), -np.inf, np.inf
        return
    labels, label_error = read_labels(folder)
    start = float(streams.take("accelerometer", -np.inf, np.inf)["timestamp"].iloc[0])
    keep_from = -np.inf
    boundary = start + chunk_ms
    while True:
        streams.fill_until(boundary + chunk_ms / 2 + margin_ms)
        final = streams.done and all(
            streams.last_time(s) < boundary + chunk_ms / 2 for s in SENSOR_STREAMS
        )
        keep_until = np.inf if final else boundary
        frames = {
            s: streams.take(s, keep_from - margin_ms, keep_until + margin_ms)
            for s in SENSOR_STREAMS
        }
        record = _raw_record(entry, frames, labels)
        if label_error:
            record["read_errors"]["labels"] = label_error
        if fit:
            record["units"] = dict(FIT_UNITS)
            for stream in SENSOR_STREAMS:
                record["files"][stream] = ", ".join(f"{folder.name}/{p.name}" for p in fit)
            if final:
                record["source"] = {"format": "fit", "files": streams.summaries}
        record["reader_problems"] = streams.pop_problems()
        yield record, keep_from, keep_until
        if final:
            return
        streams.drop_before(keep_until - margin_ms)
        keep_from, boundary = keep_until, keep_until + chunk_ms


def read_labels(folder: Path) -> tuple[pd.DataFrame | None, str | None]:
    """``labels.csv`` (small: one row per segment) or None, and the read error if any."""
    path = folder / STREAM_FILES["labels"]
    if not path.is_file():
        return None, None
    try:
        return _read_csv(path), None
    except pd.errors.EmptyDataError:
        return pd.DataFrame(), None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        return None, str(exc).strip().splitlines()[0]
