"""The prediction log: what the API predicted, per window, for ``kedro run --env served``.

One SQLite row per predicted window: request time (UTC), a pseudonymous recording id, window
start/end, activity, confidence, probabilities, the model, and what the monitoring run needs to
judge drift and sensor faults without the samples: the monitoring features
(:func:`har_mlops.features.window_features`) and the sensor-gate values
(:func:`har_mlops.pipelines.monitoring.quality.window_gates`) of each window. Raw
(preprocessed) window signals only with ``HAR_PREDICTION_LOG_SIGNALS=true``.

Settings (environment, parsed in serving/settings.py): ``HAR_PREDICTION_LOG`` (path; empty disables the log),
``HAR_PREDICTION_LOG_MAX_ROWS``, ``HAR_PREDICTION_LOG_MAX_DAYS``, ``HAR_PREDICTION_LOG_SIGNALS``,
``HAR_PREDICTION_LOG_RECORDING_ID`` (``hash`` | ``raw`` | ``none``), ``HAR_PREDICTION_LOG_SALT``.
Names, defaults and the privacy choices are in docs/monitoring.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from prometheus_client import CollectorRegistry, Counter

from har_mlops.features import window_features
from har_mlops.pipelines.monitoring.quality import GATE_KEYS, window_gates

from .settings import DEFAULT_PREDICTION_LOG as DEFAULT_PATH
from .settings import DEFAULT_PREDICTION_LOG_MAX_DAYS as DEFAULT_MAX_DAYS
from .settings import DEFAULT_PREDICTION_LOG_MAX_ROWS as DEFAULT_MAX_ROWS

logger = logging.getLogger(__name__)

RECORDING_ID_MODES = ("hash", "raw", "none")
# Fixed width, so that ISO strings sort and compare as the times they name.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_time TEXT NOT NULL,
    request_id TEXT NOT NULL,
    recording TEXT NOT NULL,
    window_start_ms REAL NOT NULL,
    window_end_ms REAL NOT NULL,
    activity TEXT NOT NULL,
    confidence REAL NOT NULL,
    low_confidence INTEGER NOT NULL,
    probabilities TEXT NOT NULL,
    model TEXT NOT NULL,
    model_source TEXT NOT NULL,
    label TEXT NOT NULL,
    non_finite INTEGER NOT NULL,
    flat_line INTEGER NOT NULL,
    flat_channels INTEGER NOT NULL,
    clipping INTEGER NOT NULL,
    still INTEGER NOT NULL,
    acc_magnitude REAL NOT NULL,
    features BLOB NOT NULL,
    signals BLOB
);
CREATE INDEX IF NOT EXISTS windows_request_time ON windows (request_time);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
COLUMNS = (
    "request_time",
    "request_id",
    "recording",
    "window_start_ms",
    "window_end_ms",
    "activity",
    "confidence",
    "low_confidence",
    "probabilities",
    "model",
    "model_source",
    "label",
    *GATE_KEYS,
    "features",
    "signals",
)
INSERT = f"INSERT INTO windows ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def format_time(moment: datetime) -> str:
    """``moment`` as the log's UTC text; a naive time is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def connect(path: str | Path, timeout_s: float = 5.0) -> sqlite3.Connection:
    """A connection in WAL mode (concurrent appends from several workers), schema created."""
    connection = sqlite3.connect(str(path), timeout=timeout_s, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL loses at most the last transactions on power loss, never corrupts.
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(SCHEMA)
    return connection


def model_label(source: dict[str, Any]) -> str:
    """A short model id for filtering: ``name/version`` of a registered model, else its path."""
    if source.get("name") and source.get("version") is not None:
        return f"{source['name']}/{source['version']}"
    return str(source.get("uri") or source.get("path") or source.get("kind", "unknown"))


def _quality_parameters(conf_source: str, conf_env: str) -> dict[str, Any]:
    """``monitoring.quality`` of the project configuration (the gates' thresholds)."""
    from har_mlops import config

    return dict(config.project_parameters(conf_source, conf_env)["monitoring"]["quality"])


@dataclass
class PredictionLog:
    """Appends served windows to the SQLite log; a failure is logged and counted, not raised."""

    path: str | None = DEFAULT_PATH
    max_rows: int = DEFAULT_MAX_ROWS
    max_days: float | None = DEFAULT_MAX_DAYS
    log_signals: bool = False
    recording_id: str = "hash"
    salt: str | None = None
    # monitoring.quality; None: read from the project configuration at the first request.
    quality: dict[str, Any] | None = None
    conf_source: str = "conf"
    conf_env: str = "local"
    _connection: sqlite3.Connection | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _limiter: anyio.CapacityLimiter | None = field(default=None, init=False, repr=False)
    _counters: dict[int, tuple[Counter, Counter]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.recording_id not in RECORDING_ID_MODES:
            raise ValueError(
                f"HAR_PREDICTION_LOG_RECORDING_ID must be one of {RECORDING_ID_MODES}: "
                f"{self.recording_id!r}"
            )

    @classmethod
    def from_settings(cls, settings: Any) -> PredictionLog:
        """The log the ``HAR_PREDICTION_LOG*`` settings describe (serving/settings.py)."""
        salt = settings.prediction_log_salt
        return cls(
            path=settings.prediction_log,
            max_rows=settings.prediction_log_max_rows,
            max_days=settings.prediction_log_max_days or None,
            log_signals=settings.prediction_log_signals,
            recording_id=settings.prediction_log_recording_id,
            salt=None if salt is None else salt.get_secret_value(),
            conf_source=settings.conf_source,
            conf_env=settings.conf_env,
        )

    @property
    def enabled(self) -> bool:
        """Whether requests are logged (``HAR_PREDICTION_LOG`` not empty)."""
        return bool(self.path)

    def _counters_for(self, registry: CollectorRegistry | None) -> tuple[Counter, Counter] | None:
        """This registry's written/failed counters, registered on first use."""
        if registry is None:
            return None
        if id(registry) not in self._counters:
            self._counters[id(registry)] = (
                Counter(
                    "har_prediction_log_windows",
                    "Windows appended to the prediction log",
                    registry=registry,
                ),
                Counter(
                    "har_prediction_log_failures",
                    "Requests whose windows could not be appended to the prediction log",
                    registry=registry,
                ),
            )
        return self._counters[id(registry)]

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            connection = connect(self.path)
            if self.quality is None:
                self.quality = _quality_parameters(self.conf_source, self.conf_env)
            if self.recording_id == "hash" and self.salt is None:
                # No secret salt configured: one random salt per log file, kept in it, so
                # that every worker hashes a recording id alike (see docs: privacy).
                with connection:
                    connection.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('salt', ?)",
                        (secrets.token_hex(16),),
                    )
                (self.salt,) = connection.execute(
                    "SELECT value FROM meta WHERE key = 'salt'"
                ).fetchone()
            self._connection = connection
        return self._connection

    def pseudonym(self, recording_id: str, request_id: str) -> str:
        """The recording id as stored: keyed hash (default), as sent, or the request's id."""
        if self.recording_id == "raw":
            return recording_id
        if self.recording_id == "none":
            return request_id
        digest = hmac.new(self.salt.encode(), recording_id.encode(), hashlib.sha256)
        return digest.hexdigest()[:24]

    def rows(
        self,
        recording_id: str,
        result: Any,
        source: dict[str, Any],
        classes: list[str],
        rate_hz: float,
        now: datetime,
    ) -> list[tuple]:
        """The rows of one request's windows (``result``: a PredictionResult with signals)."""
        windows, signals = result.windows, result.arrays["signals"]
        request_id = uuid.uuid4().hex
        recording = self.pseudonym(recording_id, request_id)
        gates = window_gates(signals, self.quality)
        features = window_features(signals, rate_hz).astype(np.float64)
        flat_bits = (gates["flat_channels"] * (1 << np.arange(6))).sum(axis=1)
        probabilities = np.column_stack([windows[f"p_{c}"].to_numpy(np.float64) for c in classes])
        time_text, model, source_text = format_time(now), model_label(source), json.dumps(source)
        return [
            (
                time_text,
                request_id,
                recording,
                float(start),
                float(end),
                str(activity),
                float(confidence),
                int(low),
                json.dumps(dict(zip(classes, p.tolist()))),
                model,
                source_text,
                str(label),
                int(gates["non_finite"][i]),
                int(gates["flat_line"][i]),
                int(flat_bits[i]),
                int(gates["clipping"][i]),
                int(gates["still"][i]),
                float(gates["acc_magnitude"][i]),
                features[i].tobytes(),
                np.ascontiguousarray(signals[i], dtype=np.float32).tobytes()
                if self.log_signals
                else None,
            )
            for i, (start, end, activity, confidence, low, label, p) in enumerate(
                zip(
                    windows["window_start_ms"].to_numpy(),
                    windows["window_end_ms"].to_numpy(),
                    windows["activity"].to_numpy(dtype=object),
                    windows["confidence"].to_numpy(dtype=np.float64),
                    windows["low_confidence"].to_numpy(),
                    result.arrays["label"],
                    probabilities,
                )
            )
        ]

    def append(
        self,
        recording_id: str,
        result: Any,
        source: dict[str, Any],
        classes: list[str],
        rate_hz: float,
        now: datetime | None = None,
    ) -> int:
        """Writes one request's windows in one transaction, then enforces retention."""
        now = now or datetime.now(UTC)
        with self._lock:
            connection = self._open()
            rows = self.rows(recording_id, result, source, classes, rate_hz, now)
            with connection:
                connection.executemany(INSERT, rows)
                if self.max_rows:
                    # Ids only grow: everything max_rows below the newest is the oldest.
                    connection.execute(
                        "DELETE FROM windows WHERE id <= (SELECT MAX(id) FROM windows) - ?",
                        (self.max_rows,),
                    )
                if self.max_days:
                    cutoff = format_time(now - timedelta(days=self.max_days))
                    connection.execute("DELETE FROM windows WHERE request_time < ?", (cutoff,))
        return len(rows)

    async def record(
        self, request: Any, result: Any, loaded: Any, registry: CollectorRegistry | None = None
    ) -> None:
        """Logs one /predict request's windows off the event loop; never raises."""
        if not self.enabled or result.arrays is None:
            return
        counters = self._counters_for(registry)
        if self._limiter is None:
            # One writer thread per process: SQLite serialises writers anyway.
            self._limiter = anyio.CapacityLimiter(1)
        try:
            written = await anyio.to_thread.run_sync(
                self.append,
                request.recording_id,
                result,
                loaded.source,
                list(loaded.predictor.contract["class_names"]),
                float(loaded.predictor.resampling["target_rate_hz"]),
                limiter=self._limiter,
            )
        except Exception as exc:  # noqa: BLE001  (a log failure must never fail the request)
            logger.warning("Prediction log %s: windows not written (%s)", self.path, exc)
            if counters:
                counters[1].inc()
            return
        if counters:
            counters[0].inc(written)

    def close(self) -> None:
        """Closes the connection (tests; the service keeps it for its lifetime)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
