"""Reads the UCI HAPT ``RawData`` recordings straight from the published zip."""

from __future__ import annotations

import re
import zipfile
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError

_SIGNAL_FILE = re.compile(r"(acc|gyro)_exp(\d+)_user(\d+)\.txt$")
_STREAMS = {"acc": "accelerometer", "gyro": "gyroscope"}


class HaptZipDataset(AbstractDataset[None, dict[str, dict[str, Any]]]):
    """Loads HAPT as recordings in the project's common raw form.

    Each experiment becomes one recording ``expEE_userUU`` holding the same structure the
    wearable-export reader produces, so every later node handles both sources alike:
    ``{"accelerometer": DataFrame[timestamp, x, y, z], "gyroscope": ..., "labels":
    DataFrame[start, end, activity] | None, "subject_id": str, "files": {...}}``.
    HAPT has no clock, so timestamps are sample index / ``sampling_rate_hz`` in milliseconds;
    label segments (0-based inclusive sample indices) are mapped to the same clock.
    Units stay as published (g, rad/s); conversion is a node driven by parameters.
    """

    def __init__(
        self,
        filepath: str,
        sampling_rate_hz: float = 50.0,
        subjects: list[int] | None = None,
        metadata: dict | None = None,
    ):
        """``subjects`` restricts loading to those users (tests and quick runs)."""
        self._filepath = str(filepath)
        self._sampling_rate_hz = float(sampling_rate_hz)
        self._subjects = None if subjects is None else {int(s) for s in subjects}
        self.metadata = metadata

    def _load(self) -> dict[str, dict[str, Any]]:
        period_ms = 1000.0 / self._sampling_rate_hz
        try:
            archive = zipfile.ZipFile(self._filepath)
        except (OSError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"Cannot open HAPT archive {self._filepath}: {exc}") from exc
        with archive:
            names = archive.namelist()
            activity_names = self._read_activity_names(archive, names)
            recordings: dict[str, dict[str, Any]] = {}
            for name in sorted(names):
                match = _SIGNAL_FILE.search(name)
                if not match:
                    continue
                kind, exp, user = match.groups()
                if self._subjects is not None and int(user) not in self._subjects:
                    continue
                rec_id = f"exp{int(exp):02d}_user{int(user):02d}"
                with archive.open(name) as handle:
                    values = pd.read_csv(handle, sep=" ", header=None, names=["x", "y", "z"])
                values.insert(0, "timestamp", np.arange(len(values)) * period_ms)
                rec = recordings.setdefault(
                    rec_id, {"subject_id": str(int(user)), "labels": None, "files": {}}
                )
                rec[_STREAMS[kind]] = values
                rec["files"][_STREAMS[kind]] = name
            labels_name = self._find(names, "labels.txt")
            with archive.open(labels_name) as handle:
                segments = pd.read_csv(
                    handle, sep=" ", header=None, names=["exp", "user", "activity", "start", "end"]
                )
        segments["rec_id"] = [
            f"exp{e:02d}_user{u:02d}" for e, u in zip(segments["exp"], segments["user"])
        ]
        segments["activity"] = segments["activity"].map(activity_names)
        for rec_id, group in segments.groupby("rec_id", sort=False):
            if rec_id in recordings:
                recordings[rec_id]["labels"] = pd.DataFrame(
                    {
                        "start": group["start"].to_numpy() * period_ms,
                        "end": group["end"].to_numpy() * period_ms,
                        "activity": group["activity"].to_numpy(),
                    }
                )
                recordings[rec_id]["files"]["labels"] = labels_name
        return recordings

    @staticmethod
    def _find(names: list[str], basename: str) -> str:
        for name in names:
            if PurePosixPath(name).name == basename:
                return name
        raise DatasetError(f"HAPT archive has no {basename}")

    def _read_activity_names(self, archive: zipfile.ZipFile, names: list[str]) -> dict[int, str]:
        with archive.open(self._find(names, "activity_labels.txt")) as handle:
            table = pd.read_csv(handle, sep=r"\s+", header=None, names=["id", "name"])
        return dict(zip(table["id"].astype(int), table["name"].astype(str)))

    def _save(self, data: None) -> None:
        raise DatasetError("HaptZipDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": self._filepath,
            "sampling_rate_hz": self._sampling_rate_hz,
            "subjects": sorted(self._subjects) if self._subjects is not None else None,
        }

    def _exists(self) -> bool:
        return zipfile.is_zipfile(self._filepath)
