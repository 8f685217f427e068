"""Per-recording inference outputs as partitioned Parquet, written atomically as they arrive.

Layout under ``path`` (Hive partitioning, so ``pd.read_parquet(path / "windows")`` reads a
whole study with ``subject_id`` and ``recording_id`` as columns)::

    windows/subject_id=<s>/recording_id=<r>/part.parquet   one row per window
    daily/subject_id=<s>/recording_id=<r>/part.parquet     additive per-local-day sums
    minutes/subject_id=<s>/recording_id=<r>/part.parquet   one row per local minute (actogram)
    signals/subject_id=<s>/recording_id=<r>/part.npz       a bounded sample of windows (monitoring)
    manifests/subject_id=<s>/recording_id=<r>.json         status, fingerprint, report

A partition counts only once its manifest is written, and the manifest is written last and
removed first: a run killed half-way leaves no partition that a reader or the next
incremental run would take for complete.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError

TABLES = ("windows", "daily", "minutes")
KEYS = ("subject_id", "recording_id")
MANIFESTS = "manifests"
PART_FILE = "part.parquet"
SIGNALS = "signals"
SIGNALS_FILE = "part.npz"


def _partition(subject_id: str, recording_id: str) -> Path:
    """Relative partition folder; ids are quoted so any string is a safe path segment."""
    return Path(f"subject_id={quote(subject_id, safe='')}") / (
        f"recording_id={quote(recording_id, safe='')}"
    )


def _replace_atomically(target: Path, write: Any) -> None:
    """Writes through a temporary file in the same folder, then renames it over ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Uncompressed npz to an open file, so numpy does not append ``.npz`` to the name."""
    with open(path, "wb") as file:
        np.savez(file, **arrays)


class RecordingOutputs:
    """Read access to the partitions, one recording at a time (what the dataset loads)."""

    def __init__(self, path: Path):
        self.path = path

    def manifests(self) -> dict[tuple[str, str], dict[str, Any]]:
        """``(subject_id, recording_id)`` -> manifest, for every complete partition."""
        found = {}
        for file in sorted((self.path / MANIFESTS).glob("subject_id=*/recording_id=*.json")):
            try:
                manifest = json.loads(file.read_text())
            except (json.JSONDecodeError, OSError):
                continue
            found[(manifest["subject_id"], manifest["recording_id"])] = manifest
        return found

    def keys(self, status: str = "done") -> list[tuple[str, str]]:
        """Partitions whose manifest has ``status``."""
        return [k for k, m in self.manifests().items() if m.get("status") == status]

    def read(
        self, table: str, columns: list[str] | None = None, keys: Iterable | None = None
    ) -> Iterator[tuple[tuple[str, str], pd.DataFrame]]:
        """One partition of ``table`` at a time, with its subject and recording as columns."""
        for subject_id, recording_id in keys if keys is not None else self.keys():
            file = self.path / table / _partition(subject_id, recording_id) / PART_FILE
            if not file.is_file():
                continue
            frame = pd.read_parquet(file, columns=columns)
            frame.insert(0, "recording_id", pd.array([recording_id] * len(frame), "string"))
            frame.insert(0, "subject_id", pd.array([subject_id] * len(frame), "string"))
            yield (subject_id, recording_id), frame

    def read_signals(self, keys: Iterable | None = None) -> Iterator[tuple[tuple[str, str], dict]]:
        """The sampled windows (signals, start_ms, end_ms) of one partition at a time."""
        for subject_id, recording_id in keys if keys is not None else self.keys():
            file = self.path / SIGNALS / _partition(subject_id, recording_id) / SIGNALS_FILE
            if file.is_file():
                with np.load(file) as arrays:
                    yield (subject_id, recording_id), dict(arrays)

    def read_all(self, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Every partition of a small table (daily sums, minute timelines) in one frame."""
        frames = [frame for _, frame in self.read(table, columns)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


class RecordingOutputsDataset(AbstractDataset[dict[str, Any], RecordingOutputs]):
    """Saves one recording's result per ``save`` (a Kedro generator node yields them)."""

    def __init__(self, path: str, metadata: dict | None = None):
        self._path = Path(path)
        self.metadata = metadata

    def _load(self) -> RecordingOutputs:
        return RecordingOutputs(self._path)

    def _save(self, data: dict[str, Any]) -> None:
        """``{"manifest": {...subject_id, recording_id, status...}, "tables": {name: frame}}``."""
        manifest = data["manifest"]
        partition = _partition(manifest["subject_id"], manifest["recording_id"])
        manifest_file = self._path / MANIFESTS / partition.with_suffix(".json")
        # Removed first: until the new manifest lands the partition is incomplete.
        manifest_file.unlink(missing_ok=True)
        tables = data.get("tables", {})
        for table in TABLES:
            file = self._path / table / partition / PART_FILE
            frame = tables.get(table)
            if frame is None:
                file.unlink(missing_ok=True)
                continue
            body = frame.drop(columns=[k for k in KEYS if k in frame.columns])
            _replace_atomically(file, lambda tmp, body=body: body.to_parquet(tmp, index=False))
        signals_file = self._path / SIGNALS / partition / SIGNALS_FILE
        if tables.get(SIGNALS):
            _replace_atomically(signals_file, lambda tmp: _save_npz(tmp, tables[SIGNALS]))
        else:
            signals_file.unlink(missing_ok=True)
        _replace_atomically(
            manifest_file,
            lambda tmp: tmp.write_text(json.dumps(manifest, indent=2, default=str)),
        )

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}

    def _exists(self) -> bool:
        return (self._path / MANIFESTS).is_dir()


class MonitoringWindowsDataset(AbstractDataset[None, Any]):
    """The windows an inference run kept for monitoring, from every complete partition.

    ``part: windows`` loads the dict of arrays the windows ``NpzDataset`` holds (``signals``,
    ``label``, ``recording_id``, ``subject_id``, ``start_ms``, ``end_ms``); ``part:
    predictions`` the matching rows of the per-window predictions (``recording_id``,
    ``window_start_ms``, ``activity``, ``confidence``). At most ``max_windows``: each
    recording's sample is already bounded, and an evenly spaced subset bounds the total however
    many recordings a study has.
    """

    def __init__(
        self,
        path: str,
        part: str = "windows",
        max_windows: int = 100_000,
        metadata: dict | None = None,
    ):
        if part not in {"windows", "predictions"}:
            raise ValueError(
                f"MonitoringWindowsDataset part must be windows or predictions: {part}"
            )
        self._path = Path(path)
        self._part = part
        self._max_windows = int(max_windows)
        self.metadata = metadata

    def _sampled(self) -> dict[str, np.ndarray]:
        outputs = RecordingOutputs(self._path)
        counts = {key: len(arrays["start_ms"]) for key, arrays in outputs.read_signals()}
        total = sum(counts.values())
        stride = max(1, -(-total // self._max_windows)) if self._max_windows else 1
        parts = []
        for (subject_id, recording_id), arrays in outputs.read_signals(list(counts)):
            taken = {k: v[::stride] for k, v in arrays.items()}
            n = len(taken["start_ms"])
            taken["recording_id"] = np.full(n, recording_id)
            taken["subject_id"] = np.full(n, subject_id)
            parts.append(taken)
        if not parts:
            raise DatasetError(
                f"No inference outputs in {self._path}: run `kedro run --pipelines inference`"
            )
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _load(self) -> Any:
        sampled = self._sampled()
        if self._part == "predictions":
            return pd.DataFrame(
                {
                    "recording_id": pd.array(sampled["recording_id"], "string"),
                    "window_start_ms": sampled["start_ms"],
                    "activity": pd.array(sampled["activity"], "string"),
                    "confidence": sampled["confidence"],
                }
            )
        return {
            k: sampled[k]
            for k in ("signals", "label", "recording_id", "subject_id", "start_ms", "end_ms")
        }

    def _save(self, data: None) -> None:
        raise NotImplementedError("MonitoringWindowsDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "part": self._part, "max_windows": self._max_windows}

    def _exists(self) -> bool:
        return (self._path / MANIFESTS).is_dir()
