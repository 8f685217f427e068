"""A study's recordings through the per-recording chain: in this process or mapped on Dask.

Each recording is one task: read in time chunks (:mod:`.chunking`), predicted, smoothed,
checked for non-wear and summed per local day, in whichever process runs it. Only its small
result (a table per window, per day and per minute) travels back, to be written as the
recording's partition while the other recordings are still running. With ``dask.distributed``
the model is shipped once to every worker by a worker plugin and loaded there once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from distributed import WorkerPlugin

from har_mlops.contract import CHANNELS, STREAM_CHANNELS, ContractMismatchError, contract_scaler
from har_mlops.datasets.recording_index_dataset import ChunkReadError, iter_raw_chunks
from har_mlops.forward import CompiledForward
from har_mlops.parameters import (
    Cohort,
    Labels,
    NonWear,
    Prediction,
    RawSource,
    Resampling,
    Smoothing,
    Validation,
    Windowing,
)
from har_mlops.smoothing import smooth_predictions, window_hop_ms

from .chunking import ChunkState, chunk_windows, margin_ms
from .daily import daily_partials, flag_non_wear, minute_timeline, window_motion
from .nodes import check_contract, window_table

logger = logging.getLogger(__name__)

PLUGIN_NAME = "har-recording-model"
ACCELEROMETER = [CHANNELS.index(c) for c in STREAM_CHANNELS["accelerometer"]]


@dataclass(frozen=True)
class ChainSettings:
    """Every parameter the per-recording chain reads (pickled once per task)."""

    raw_source: RawSource
    validation: Validation
    resampling: Resampling
    windowing: Windowing
    labels: Labels
    prediction: Prediction
    smoothing: Smoothing
    non_wear: NonWear
    cohort: Cohort

    def chunk_parameters(self) -> dict[str, Any]:
        """The chunk pipeline's ``params:`` inputs."""
        return {
            "params:inference.raw_source": self.raw_source,
            "params:validation": self.validation,
            "params:resampling": self.resampling,
            "params:windowing": self.windowing,
        }

    def fingerprint(self) -> str:
        """Hash of every setting that changes a recording's outputs."""
        settings = {
            name: getattr(self, name).to_dict()
            for name in (
                "raw_source",
                "validation",
                "resampling",
                "windowing",
                "labels",
                "prediction",
                "smoothing",
                "non_wear",
            )
        }
        # jit_compile changes how, not what, is computed.
        settings["prediction"].pop("jit_compile", None)
        return _digest(settings)


def _digest(value: Any) -> str:
    """Short SHA-256 of a JSON-able value."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_fingerprint(bundle: Mapping[str, Any], transitions: dict[str, Any]) -> str:
    """Hash of the model (its file, else its weights), contract and smoothing transitions."""
    digest = hashlib.sha256()
    contract = bundle["contract"]
    if "model_file" in bundle:
        with open(bundle["model_file"], "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    else:
        for weights in bundle["model"].get_weights():
            digest.update(np.ascontiguousarray(weights).tobytes())
    digest.update(_digest(contract).encode())
    digest.update(_digest(transitions).encode())
    return digest.hexdigest()[:16]


class RecordingModel:
    """The model as one process uses it: a compiled forward pass, the scaler, the transitions."""

    def __init__(
        self,
        model: Any,
        contract: dict[str, Any],
        transitions: dict[str, Any],
        prediction: Prediction,
    ):
        self.contract = contract
        self.transitions = transitions
        self.scaler = contract_scaler(contract)
        self.batch_size = int(prediction["batch_size"])
        # One batch shape: windows are predicted in full batches (only a recording's last one
        # is padded), so XLA compiles once per worker, at start.
        self.forward = CompiledForward(
            model,
            int(contract["window_size"]),
            len(contract["channels"]),
            [self.batch_size],
            jit_compile=prediction["jit_compile"],
            warm_up=True,
        )

    def probabilities(self, signals: np.ndarray) -> np.ndarray:
        """Class probabilities for windows in SI units."""
        return self.forward.predict_signals(signals, self.scaler)


class WindowBatcher:
    """Collects windows over chunks and releases them in full prediction batches."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.pending: list[dict[str, np.ndarray]] = []

    def add(self, windows: dict[str, np.ndarray], final: bool = False) -> dict[str, np.ndarray]:
        """The windows ready to predict: whole batches, or everything when ``final``."""
        if len(windows["start_ms"]):
            self.pending.append(windows)
        if not self.pending:
            return {}
        merged = (
            self.pending[0]
            if len(self.pending) == 1
            else {k: np.concatenate([p[k] for p in self.pending]) for k in self.pending[0]}
        )
        n = len(merged["start_ms"])
        ready = n if final else n - n % self.batch_size
        self.pending = [{k: v[ready:] for k, v in merged.items()}] if ready < n else []
        return {k: v[:ready] for k, v in merged.items()} if ready else {}


def model_to_bytes(bundle: Mapping[str, Any]) -> bytes:
    """The Keras file's bytes: what a worker plugin carries to each worker."""
    from har_mlops.model_io import save_keras

    if "model_file" in bundle:
        with open(bundle["model_file"], "rb") as file:
            return file.read()
    model = bundle["model"]

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        save_keras(model, path)
        with open(path, "rb") as file:
            return file.read()


def model_from_bytes(data: bytes) -> Any:
    """Loads a Keras model from its file's bytes."""
    from har_mlops.model_io import load_keras

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        with open(path, "wb") as file:
            file.write(data)
        return load_keras(path)


class SignalSample:
    """A bounded, evenly spread sample of a recording's windows (for monitoring).

    Keeps every ``stride``-th window; when more than ``limit`` are kept the stride doubles and
    every other kept window goes, so memory stays bounded however long the recording is.
    """

    def __init__(self, limit: int):
        self.limit = int(limit)
        self.stride = 1
        self.seen = 0
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        """Takes this chunk's windows (arrays of one row per window) that fall on the stride."""
        n = len(arrays["start_ms"])
        keep = np.flatnonzero((self.seen + np.arange(n)) % self.stride == 0)
        self.seen += n
        if keep.size and self.limit:
            self.parts.append({k: np.asarray(v)[keep] for k, v in arrays.items()})
        while self.limit and sum(len(p["start_ms"]) for p in self.parts) > self.limit:
            self._thin()

    def _thin(self) -> None:
        """Doubles the stride: keeps the windows whose index is a multiple of the new one."""
        self.stride *= 2
        merged = self.arrays()
        index = np.rint(
            (merged["start_ms"] - merged["start_ms"][0])
            if False
            else np.arange(len(merged["start_ms"]))
        )
        self.parts = [{k: v[index % 2 == 0] for k, v in merged.items()}]

    def arrays(self) -> dict[str, np.ndarray]:
        """The sampled windows' signals and times."""
        if not self.parts:
            return {}
        return {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}


def _with_last_flag(items: Iterator[Any]) -> Iterator[tuple[Any, bool]]:
    """Each item with whether it is the last one."""
    iterator = iter(items)
    try:
        previous = next(iterator)
    except StopIteration:
        return
    for item in iterator:
        yield previous, False
        previous = item
    yield previous, True


def _predicted_table(
    windows: dict[str, np.ndarray],
    model: RecordingModel,
    classes: list[str],
    settings: ChainSettings,
    sample: SignalSample,
) -> pd.DataFrame:
    """The per-window table of a batch of windows, and its share of the monitoring sample."""
    table = window_table(
        windows,
        model.probabilities(windows["signals"]),
        classes,
        settings.prediction["low_confidence_threshold"],
    )
    motion = window_motion(windows["signals"], ACCELEROMETER)
    sample.add(
        {
            "signals": windows["signals"],
            "start_ms": windows["start_ms"],
            "end_ms": windows["end_ms"],
            "label": windows["label"].astype(str),
            "activity": table["activity"].to_numpy(str),
            "confidence": table["confidence"].to_numpy(np.float64),
        }
    )
    return table.assign(
        label=pd.array(np.where(windows["label"] == "", None, windows["label"]), "string"),
        acc_std_x=motion[:, 0],
        acc_std_y=motion[:, 1],
        acc_std_z=motion[:, 2],
    )


def _recording_windows(
    job: dict[str, Any], model: RecordingModel, settings: ChainSettings
) -> tuple[pd.DataFrame, list[dict[str, Any]], dict[str, np.ndarray]]:
    """Per-window predictions of one recording, chunk by chunk, and its validation entries."""
    cohort = settings.cohort
    chunk_ms = None if cohort.chunk_minutes is None else float(cohort.chunk_minutes) * 60_000.0
    chunks = iter_raw_chunks(
        job["entry"],
        chunk_ms,
        margin_ms(settings.resampling),
        int(float(cohort.read_block_mb) * (1 << 20)),
    )
    state = ChunkState()
    classes = list(model.contract["class_names"])
    tables: list[pd.DataFrame] = []
    sample = SignalSample(cohort.monitoring_windows)
    batcher = WindowBatcher(model.batch_size)
    checked = False
    from .pipeline import create_chunk_pipeline

    per_chunk = chunk_windows(
        chunks,
        job["recording_id"],
        create_chunk_pipeline(),
        settings.chunk_parameters(),
        state,
    )
    for windows, final in _with_last_flag(per_chunk):
        if len(windows["signals"]) and not checked:
            bundle = {"contract": model.contract, "source": job["model_source"]}
            check_contract(
                bundle, windows, settings.windowing, settings.resampling, settings.labels
            )
            checked = True
        ready = batcher.add(windows, final)
        if ready:
            tables.append(_predicted_table(ready, model, classes, settings, sample))
    if not tables:
        return pd.DataFrame(), state.entries, {}
    return pd.concat(tables, ignore_index=True), state.entries, sample.arrays()


def _smoothed(table: pd.DataFrame, model: RecordingModel, settings: ChainSettings) -> pd.DataFrame:
    """Adds the smoothed activity (HMM over each gap-free run) next to the raw one."""
    classes = list(model.contract["class_names"])
    if not settings.smoothing["enabled"]:
        return table.assign(activity_smoothed=table["activity"], run_id=0)
    probabilities = table[[f"p_{c}" for c in classes]].to_numpy(np.float64)
    hop_ms = window_hop_ms(
        settings.windowing["window_size"],
        settings.windowing["overlap"],
        settings.resampling["target_rate_hz"],
    )
    path, runs = smooth_predictions(
        probabilities,
        table["window_start_ms"].to_numpy(np.float64),
        None,
        model.transitions,
        hop_ms,
        settings.smoothing["gap_tolerance_ms"],
        settings.smoothing["probability_floor"],
    )
    return table.assign(
        activity_smoothed=pd.array(np.asarray(classes)[path], dtype="string"),
        run_id=runs.astype(np.int32),
    )


def _stream_totals(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each stream's statistics over all chunks (rows and gaps summed, rate rows-weighted)."""
    totals: dict[str, dict[str, Any]] = {}
    for entry in entries:
        for stream, stats in entry.get("streams", {}).items():
            total = totals.setdefault(stream, {"file": stats.get("file"), "rows": 0, "gaps": 0})
            rows = int(stats.get("rows") or 0)
            total["rows"] += rows
            total["gaps"] += int(stats.get("gaps") or 0)
            total["longest_gap_s"] = max(
                total.get("longest_gap_s", 0.0), float(stats.get("longest_gap_s") or 0.0)
            )
            if stats.get("observed_rate_hz"):
                total["_rate_sum"] = total.get("_rate_sum", 0.0) + rows * stats["observed_rate_hz"]
                total["_rate_rows"] = total.get("_rate_rows", 0) + rows
    for total in totals.values():
        rate_rows = total.pop("_rate_rows", 0)
        rate_sum = total.pop("_rate_sum", 0.0)
        if rate_rows:
            total["observed_rate_hz"] = round(rate_sum / rate_rows, 3)
    return totals


def validation_entry(
    recording_id: str, subject_id: str, entries: list[dict[str, Any]], accepted: bool
) -> dict[str, Any]:
    """The recording's validation-report entry over all its chunks, each problem once."""
    problems: dict[tuple[str, str, str], int] = {}
    for entry in entries:
        for p in entry.get("problems", []):
            key = (p["file"], p["problem"], p["action"])
            problems[key] = problems.get(key, 0) + int(p.get("rows_affected", 0))
    sources = [e["source"] for e in entries if e.get("source")]
    gravity = [e["gravity"] for e in entries if e.get("gravity")]
    return {
        "recording_id": recording_id,
        "subject_id": subject_id,
        "status": "accepted" if accepted else "rejected",
        # The files a reader described (FIT: messages and samples read per file).
        **({"source": sources[-1]} if sources else {}),
        # The unit check of each chunk that reached it, worst first.
        **(
            {"gravity": sorted(gravity, key=lambda g: abs((g["ratio_to_g"] or 1.0) - 1.0))[-1]}
            if gravity
            else {}
        ),
        "chunks": len(entries),
        "chunks_rejected": sum(e.get("status") == "rejected" for e in entries),
        "streams": _stream_totals(entries),
        "problems": [
            {"file": f, "problem": problem, "rows_affected": rows, "action": action}
            for (f, problem, action), rows in problems.items()
        ],
    }


def process_recording(
    job: dict[str, Any], model: RecordingModel, settings: ChainSettings
) -> dict[str, Any]:
    """One recording end to end; a failure is returned as a failed manifest, never raised."""
    started = time.perf_counter()
    manifest = {
        "subject_id": job["subject_id"],
        "recording_id": job["recording_id"],
        "timezone": job["entry"]["timezone"],
        "fingerprint": job["fingerprint"],
        "started_at": time.time(),
    }
    if job["entry"]["problems"]:
        return _failed(manifest, "; ".join(job["entry"]["problems"]), started)
    try:
        table, entries, signals = _recording_windows(job, model, settings)
    except (ChunkReadError, ContractMismatchError) as exc:
        return _failed(manifest, str(exc), started)
    except Exception as exc:  # noqa: BLE001 - one bad recording must not stop a study
        logger.exception("Recording %s failed", job["recording_id"])
        return _failed(manifest, f"{type(exc).__name__}: {exc}", started, traceback.format_exc())
    validation = validation_entry(job["recording_id"], job["subject_id"], entries, not table.empty)
    if table.empty:
        reasons = [
            f"{p['file']}: {p['problem']}"
            for p in validation["problems"]
            if p["action"] == "rejected"
        ]
        return _failed(
            manifest,
            "no window to predict: " + ("; ".join(reasons) or "no gap-free stretch of one window"),
            started,
            validation=validation,
        )
    table = _smoothed(table, model, settings)
    hop_s = (
        window_hop_ms(
            settings.windowing["window_size"],
            settings.windowing["overlap"],
            settings.resampling["target_rate_hz"],
        )
        / 1000.0
    )
    table.insert(0, "subject_id", pd.array([job["subject_id"]] * len(table), "string"))
    non_wear = flag_non_wear(table, settings.non_wear)
    table["non_wear"] = non_wear
    timezone = job["entry"]["timezone"]
    classes = list(model.contract["class_names"])
    return {
        "manifest": {
            **manifest,
            "status": "done",
            "windows": len(table),
            "non_wear_windows": int(non_wear.sum()),
            "first_window_ms": float(table["window_start_ms"].iloc[0]),
            "last_window_ms": float(table["window_end_ms"].iloc[-1]),
            "validation": validation,
            "seconds": round(time.perf_counter() - started, 3),
            "finished_at": time.time(),
        },
        "tables": {
            "windows": table,
            "daily": daily_partials(table, non_wear, timezone, classes, hop_s),
            "minutes": minute_timeline(table, non_wear, timezone),
            "signals": signals,
        },
    }


def _failed(
    manifest: dict[str, Any],
    reason: str,
    started: float,
    detail: str | None = None,
    validation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A failed recording's result: reported, written as such, retried by the next run."""
    logger.warning("Recording %s failed: %s", manifest["recording_id"], reason)
    return {
        "manifest": {
            **manifest,
            "status": "failed",
            "reason": reason,
            **({"traceback": detail} if detail else {}),
            **({"validation": validation} if validation else {}),
            "seconds": round(time.perf_counter() - started, 3),
        },
        "tables": {},
    }


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Discards what C++ code writes to stderr meanwhile (Python exceptions still propagate)."""
    # TensorFlow's start-up notices (oneDNN, CUDA probing) are written by absl before its log
    # level applies; every worker would print them into the user's run log.
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class RecordingModelPlugin(WorkerPlugin):
    """Loads the model once per Dask worker (at worker start, restarts included)."""

    name = PLUGIN_NAME

    def __init__(
        self,
        model_bytes: bytes,
        contract: dict[str, Any],
        transitions: dict[str, Any],
        prediction: Prediction,
        threads: int = 1,
    ):
        self.threads = threads
        self.model_bytes = model_bytes
        self.contract = contract
        self.transitions = transitions
        self.prediction = prediction
        self.model: RecordingModel | None = None

    def setup(self, worker: Any) -> None:
        """Loads the model in the worker process, with TensorFlow on the worker's threads."""
        with _native_stderr_silenced():
            import tensorflow as tf

        # Each worker process gets its share of the cores: TensorFlow would otherwise run as
        # many threads as the machine has cores in every worker.
        try:
            tf.config.threading.set_intra_op_parallelism_threads(self.threads)
            tf.config.threading.set_inter_op_parallelism_threads(self.threads)
        except RuntimeError:
            logger.debug("TensorFlow was initialised before the plugin; threads unchanged")
        self.model = RecordingModel(
            model_from_bytes(self.model_bytes), self.contract, self.transitions, self.prediction
        )


def _process_on_worker(job: dict[str, Any], settings: ChainSettings) -> dict[str, Any]:
    """Task body on a Dask worker: the worker's model, the shared chain."""
    from distributed import get_worker

    plugin = get_worker().plugins[PLUGIN_NAME]
    return process_recording(job, plugin.model, settings)


def _client(cohort: Cohort) -> Any:
    """A client of the configured cluster: an existing one, or a LocalCluster of processes."""
    from distributed import Client, LocalCluster

    if cohort.scheduler_address:
        logger.info("Using the Dask cluster at %s", cohort.scheduler_address)
        return Client(cohort.scheduler_address)
    cluster = LocalCluster(
        n_workers=cohort.n_workers,
        threads_per_worker=cohort.threads_per_worker,
        processes=True,
        memory_limit=cohort.memory_limit,
        dashboard_address=None,
        # Workers log to this run's output: without this, TensorFlow's start-up notices would
        # open it (the project's settings quiet them in this process only).
        env={"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")},
    )
    logger.info("Started a Dask LocalCluster of %d worker process(es)", cohort.n_workers)
    return Client(cluster)


def collect(futures: dict[Any, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Results as tasks finish; a task lost with its worker or raising becomes a failed result."""
    from distributed import as_completed

    for future in as_completed(list(futures)):
        job = futures[future]
        try:
            yield future.result()
        except Exception as exc:  # noqa: BLE001 - KilledWorker, a crash in the task itself
            manifest = {
                "subject_id": job["subject_id"],
                "recording_id": job["recording_id"],
                "timezone": job["entry"]["timezone"],
                "fingerprint": job["fingerprint"],
            }
            yield _failed(manifest, f"{type(exc).__name__}: {exc}", time.perf_counter())
        finally:
            future.release()


def run_jobs(
    jobs: list[dict[str, Any]],
    model_bundle: Mapping[str, Any],
    transitions: dict[str, Any],
    settings: ChainSettings,
) -> Iterator[dict[str, Any]]:
    """Each job's result, in this process (sequential) or from the Dask cluster."""
    if not jobs:
        return
    if settings.cohort.sequential:
        model = RecordingModel(
            model_bundle["model"], model_bundle["contract"], transitions, settings.prediction
        )
        for job in jobs:
            yield process_recording(job, model, settings)
        return
    plugin = RecordingModelPlugin(
        model_to_bytes(model_bundle),
        model_bundle["contract"],
        transitions,
        settings.prediction,
        settings.cohort.threads_per_worker,
    )
    with _client(settings.cohort) as client:
        client.register_plugin(plugin, name=PLUGIN_NAME)
        # Longest first: the last task to start should be a short one.
        ordered = sorted(jobs, key=lambda j: -j["size"])
        run = uuid.uuid4().hex[:8]
        futures = {
            client.submit(_process_on_worker, job, settings, key=f"har-{run}-{i}"): job
            for i, job in enumerate(ordered)
        }
        yield from collect(futures)
        if not settings.cohort.scheduler_address:
            client.cluster.close()
