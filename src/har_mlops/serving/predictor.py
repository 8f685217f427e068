"""The inference pipeline's node functions, in order, on one in-memory sample table.

Online requests and the MLflow pyfunc both go through :class:`ActivityPredictor`, which calls
the same functions as ``kedro run --pipelines inference`` (validate, resample, convert units,
label, window, contract check, summary), so serving has no preprocessing code of its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from har_mlops.contract import CHANNELS, contract_scaler, scale_signals
from har_mlops.forward import CompiledForward, power_of_two_buckets
from har_mlops.parameters import PredictorConfig
from har_mlops.pipelines.data_processing.nodes import (
    assign_labels,
    convert_units,
    resample_recordings,
    validate_recordings,
    window_samples,
)
from har_mlops.pipelines.data_processing.validation import NoValidRecordingsError
from har_mlops.pipelines.inference.nodes import (
    check_contract,
    summarise_recordings,
    window_table,
)

logger = logging.getLogger(__name__)

TIMESTAMP_COLUMN = "timestamp_ms"
RECORDING_COLUMN = "recording_id"
SAMPLE_COLUMNS = [TIMESTAMP_COLUMN, *CHANNELS]
UNIT_KEYS = ("accelerometer_unit", "gyroscope_unit")
DEFAULT_RECORDING_ID = "recording"
_AXES = "xyz"


class RecordingRejectedError(ValueError):
    """The project's validation left nothing to predict; the message says why."""


@dataclass
class PredictionResult:
    """Per-window predictions, per-recording summary and the validation report behind them."""

    windows: pd.DataFrame
    summary: pd.DataFrame
    report: dict[str, Any]
    # The windows as window_samples made them (signals [n, T, 6] in SI units, unscaled;
    # label, start_ms, ...): the prediction log computes the monitoring's per-window
    # features and gate values from them.
    arrays: dict[str, np.ndarray] | None = None


def _recording_codes(ids: pd.Series, default: str) -> tuple[np.ndarray, list[str]]:
    """Integer code per row into sorted recording names; missing ids become ``default``."""
    # Factorise first and stringify only the distinct ids: a string per row costs more than
    # the rest of a served request's preprocessing.
    codes, uniques = pd.factorize(ids, use_na_sentinel=True)
    as_text = [str(u) for u in uniques]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(as_text), codes)
        as_text.append(default)
    # Distinct ids may share a string (1 and "1"): merge them, as their files would be.
    names, remap = np.unique(np.asarray(as_text, dtype=object), return_inverse=True)
    return remap[codes], [str(n) for n in names]


def samples_to_recordings(
    samples: pd.DataFrame, default_recording_id: str = DEFAULT_RECORDING_ID
) -> dict[str, dict[str, Any]]:
    """The sample table as the recording dict ``WearableExportDataset`` loads (both streams)."""
    present = set(samples.columns)
    missing = [c for c in SAMPLE_COLUMNS if c not in present]
    if missing:
        raise ValueError(f"Sample table lacks column(s) {missing}; expected {SAMPLE_COLUMNS}")
    columns = {c: samples[c].to_numpy() for c in SAMPLE_COLUMNS}
    if RECORDING_COLUMN in present:
        codes, names = _recording_codes(samples[RECORDING_COLUMN], default_recording_id)
    else:
        codes, names = np.zeros(len(samples), dtype=np.intp), [default_recording_id]
    # Rows of each recording, in table order (a stable sort keeps it within a recording).
    if len(names) == 1:
        rows_of = {str(names[0]): slice(None)}
    else:
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        rows_of = {str(n): order[bounds[i] : bounds[i + 1]] for i, n in enumerate(names)}
    recordings = {}
    for rec_id, rows in rows_of.items():
        timestamp = columns[TIMESTAMP_COLUMN][rows]
        streams = {
            stream: pd.DataFrame(
                {"timestamp": timestamp}
                | {axis: columns[f"{prefix}_{axis}"][rows] for axis in _AXES},
                copy=False,
            )
            for stream, prefix in (("accelerometer", "acc"), ("gyroscope", "gyro"))
        }
        recordings[rec_id] = {
            # Problems are reported against these names, as against an export's files.
            "files": {s: f"{rec_id}/{s}" for s in ("accelerometer", "gyroscope", "labels")},
            "read_errors": {},
            **streams,
            "labels": None,
            "subject_id": rec_id,
        }
    return recordings


def export_to_table(record: dict[str, Any], recording_id: str | None = None) -> pd.DataFrame:
    """A wearable export (two clocks) as a sample table, for building requests from exports."""
    # One clock: the gyroscope interpolated at accelerometer times both streams cover.
    acc, gyro = record["accelerometer"], record["gyroscope"]
    t_acc = acc["timestamp"].to_numpy(dtype=np.float64)
    t_gyro = gyro["timestamp"].to_numpy(dtype=np.float64)
    inside = (t_acc >= t_gyro[0]) & (t_acc <= t_gyro[-1])
    t = t_acc[inside]
    table = pd.DataFrame({TIMESTAMP_COLUMN: t})
    for axis in _AXES:
        table[f"acc_{axis}"] = acc[axis].to_numpy(dtype=np.float64)[inside]
    for axis in _AXES:
        table[f"gyro_{axis}"] = np.interp(t, t_gyro, gyro[axis].to_numpy(dtype=np.float64))
    if recording_id is not None:
        table.insert(0, RECORDING_COLUMN, recording_id)
    return table


class ActivityPredictor:
    """Sample table + declared units -> per-window activities and per-recording summary."""

    def __init__(self, model: Any, config: PredictorConfig, source: dict[str, Any] | None = None):
        self.model = model
        self.settings = config
        self.contract = config.contract
        self.validation = config.validation
        self.resampling = config.resampling
        self.windowing = config.windowing
        self.labels = config.labels
        self.prediction = config.prediction
        self.serving = config.serving
        self.source = source or {"kind": "in-process"}
        self.raw_source = config.serving.raw_source.to_dict()
        self._scaler = contract_scaler(self.contract)
        max_bucket = min(self.prediction.batch_size, self.serving.max_bucket)
        self.forward = CompiledForward(
            model,
            self.contract["window_size"],
            len(self.contract["channels"]),
            power_of_two_buckets(self.serving.min_bucket, max_bucket),
            jit_compile=self.serving.jit_compile,
        )

    @classmethod
    def from_config(
        cls, model: Any, config: dict[str, Any], source: dict[str, Any] | None = None
    ) -> ActivityPredictor:
        """From the JSON the pyfunc carries (see :attr:`config`)."""
        return cls(model, PredictorConfig.model_validate(config), source)

    @property
    def config(self) -> dict[str, Any]:
        """Contract and every parameter the preprocessing and prediction use (JSON-able)."""
        return self.settings.to_dict()

    @property
    def window_size(self) -> int:
        """Samples per window (at the contract's rate)."""
        return int(self.contract["window_size"])

    def predict(
        self, samples: pd.DataFrame, units: dict[str, str] | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Per-window table (as ``predict_activities``) and summary (``summarise_recordings``)."""
        result = self.predict_detailed(samples, units)
        return result.windows, result.summary

    def predict_detailed(
        self, samples: pd.DataFrame, units: dict[str, str] | None = None
    ) -> PredictionResult:
        """Like :meth:`predict`, plus the validation report; rejects what validation rejects."""
        raw_source = {**self.raw_source, **{k: v for k, v in (units or {}).items() if v}}
        recordings = samples_to_recordings(samples)
        try:
            validated, report = validate_recordings(
                recordings, raw_source, self.validation, self.resampling, self.windowing
            )
            resampled = resample_recordings(validated, self.resampling)
        except NoValidRecordingsError as exc:
            raise RecordingRejectedError(str(exc)) from exc
        except ValueError as exc:
            # resample_recordings says so when no recording has both streams overlapping;
            # its other ValueError (max_gap_ms below one period) is a configuration bug.
            if "overlapping" not in str(exc):
                raise
            raise RecordingRejectedError(str(exc)) from exc
        converted = convert_units(resampled, raw_source)
        labelled = assign_labels(converted, validated, raw_source)
        windows = window_samples(labelled, self.windowing)
        if len(windows["signals"]) == 0:
            raise RecordingRejectedError(
                f"No gap-free stretch as long as one window ({self.window_size} samples at "
                f"{self.resampling['target_rate_hz']} Hz, gaps over "
                f"{self.resampling['max_gap_ms']} ms split the recording)"
            )
        bundle = {"model": self.model, "contract": self.contract, "source": self.source}
        contract = check_contract(bundle, windows, self.windowing, self.resampling, self.labels)
        probabilities = self.forward(scale_signals(windows["signals"], self._scaler))
        table = window_table(
            windows,
            probabilities,
            contract["class_names"],
            self.prediction["low_confidence_threshold"],
        )
        summary = summarise_recordings(table, report, contract)
        return PredictionResult(table, summary, report, windows)
