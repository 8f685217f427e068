"""The API's prediction log (SQLite) as the monitoring run's inputs, for a time range."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from har_mlops.pipelines.monitoring.quality import GATE_KEYS
from har_mlops.serving.prediction_log import format_time

PARTS = ("windows", "predictions", "validation_report", "daily_activity")


def _time(value: str | datetime | None) -> str | None:
    """An ISO time (naive = UTC) as the log's text, or None."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return format_time(moment)


class PredictionLogDataset(AbstractDataset[None, Any]):
    """Served windows logged by the API between ``start`` and ``end`` (ISO, UTC), read-only.

    ``part: windows`` loads what ``inference.windows`` holds in a batch run, with the logged
    per-window ``features [n, F]`` and sensor-gate values (``gates``) in place of the signals;
    ``part: predictions`` the matching rows of ``window_predictions``;
    ``part: validation_report`` an empty report (the API validates each request itself) and
    ``part: daily_activity`` an empty table (served requests are not whole days). ``start`` is
    inclusive, ``end`` exclusive, null unbounded; ``model`` keeps one model's windows
    (``name/version`` of a registered model, else its path).
    """

    # Without ``end``, the newest row id seen first in this process bounds every part, so that
    # windows and predictions line up while the API keeps appending.
    _snapshots: ClassVar[dict[tuple, int]] = {}

    def __init__(
        self,
        filepath: str,
        part: str = "windows",
        start: str | None = None,
        end: str | None = None,
        model: str | None = None,
        metadata: dict | None = None,
    ):
        if part not in PARTS:
            raise ValueError(f"PredictionLogDataset part must be one of {PARTS}: {part}")
        self._filepath = Path(filepath)
        self._part = part
        self._start, self._end = _time(start), _time(end)
        self._model = model or None
        self.metadata = metadata

    def _query(self, columns: str) -> pd.DataFrame:
        if not self._filepath.is_file():
            raise DatasetError(
                f"No prediction log at {self._filepath}: serve the API with HAR_PREDICTION_LOG "
                "pointing there (docs/monitoring.md, 'Monitoring served traffic')"
            )
        connection = sqlite3.connect(f"file:{self._filepath}?mode=ro", uri=True)
        try:
            where, args = [], []
            for clause, value in (
                ("request_time >= ?", self._start),
                ("request_time < ?", self._end),
                ("model = ?", self._model),
            ):
                if value is not None:
                    where.append(clause)
                    args.append(value)
            key = (str(self._filepath.resolve()), self._start, self._end, self._model)
            if self._end is None:
                if key not in self._snapshots:
                    (newest,) = connection.execute("SELECT MAX(id) FROM windows").fetchone()
                    self._snapshots[key] = newest or 0
                where.append("id <= ?")
                args.append(self._snapshots[key])
            sql = f"SELECT {columns} FROM windows"
            if where:
                sql += " WHERE " + " AND ".join(where)
            frame = pd.read_sql_query(sql + " ORDER BY id", connection, params=args)
        finally:
            connection.close()
        if frame.empty:
            raise DatasetError(
                f"No served windows in {self._filepath} from {self._start or 'the start'} to "
                f"{self._end or 'now'}" + (f" of model {self._model}" if self._model else "")
            )
        return frame

    def _windows(self) -> dict[str, Any]:
        frame = self._query(
            "recording, window_start_ms, window_end_ms, label, features, " + ", ".join(GATE_KEYS)
        )
        bits = frame["flat_channels"].to_numpy(np.int64)
        recording = frame["recording"].to_numpy(dtype=str)
        return {
            "recording_id": recording,
            "subject_id": recording,
            "label": frame["label"].to_numpy(dtype=str),
            "start_ms": frame["window_start_ms"].to_numpy(np.float64),
            "end_ms": frame["window_end_ms"].to_numpy(np.float64),
            "features": np.stack(
                [np.frombuffer(blob, dtype=np.float64) for blob in frame["features"]]
            ),
            "gates": {
                "non_finite": frame["non_finite"].to_numpy(bool),
                "flat_line": frame["flat_line"].to_numpy(bool),
                "flat_channels": (bits[:, None] >> np.arange(6)) & 1 == 1,
                "clipping": frame["clipping"].to_numpy(bool),
                "still": frame["still"].to_numpy(bool),
                "acc_magnitude": frame["acc_magnitude"].to_numpy(np.float64),
            },
        }

    def _predictions(self) -> pd.DataFrame:
        frame = self._query(
            "request_time, recording, window_start_ms, window_end_ms, activity, confidence, "
            "low_confidence, probabilities, model"
        )
        probabilities = pd.DataFrame([json.loads(p) for p in frame["probabilities"]])
        return pd.concat(
            [
                pd.DataFrame(
                    {
                        "recording_id": pd.array(frame["recording"], "string"),
                        "window_start_ms": frame["window_start_ms"],
                        "window_end_ms": frame["window_end_ms"],
                        "activity": pd.array(frame["activity"], "string"),
                        "confidence": frame["confidence"],
                        "low_confidence": frame["low_confidence"].astype(bool),
                        "request_time": frame["request_time"],
                        "model": frame["model"],
                    }
                ),
                probabilities.add_prefix("p_"),
            ],
            axis=1,
        )

    def _load(self) -> Any:
        if self._part == "windows":
            return self._windows()
        if self._part == "predictions":
            return self._predictions()
        if self._part == "validation_report":
            return {"recordings": []}
        return pd.DataFrame()

    def _save(self, data: None) -> None:
        raise NotImplementedError("PredictionLogDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "part": self._part,
            "start": self._start,
            "end": self._end,
            "model": self._model,
        }

    def _exists(self) -> bool:
        return self._filepath.is_file()
