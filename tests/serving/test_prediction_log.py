"""The prediction log: served windows written by the API, read back for monitoring.

The last test is the one that matters for monitoring: a run on the log gives the same verdict
and drift figures as a run on the same windows' signals (the logic is shared, not copied).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.runner import SequentialRunner

from har_mlops.config import project_parameters
from har_mlops.datasets import PredictionLogDataset, ReferenceProfileDataset
from har_mlops.pipelines.monitoring import create_pipeline
from har_mlops.serving.app import create_app
from har_mlops.serving.prediction_log import DEFAULT_PATH, PredictionLog
from har_mlops.serving.settings import ServingSettings
from tests.conftest import PROJECT_ROOT
from tests.serving.conftest import CONF_ENV, CONF_SOURCE, PRETRAINED, request_body


@pytest.fixture(scope="module")
def monitoring_params() -> dict:
    return project_parameters(CONF_SOURCE, CONF_ENV)["monitoring"]


@pytest.fixture
def make_log(tmp_path, monitoring_params):
    def make(**overrides) -> PredictionLog:
        options = {
            "path": str(tmp_path / "log" / "prediction_log.sqlite"),
            "quality": monitoring_params["quality"],
            "max_days": None,
        }
        return PredictionLog(**{**options, **overrides})

    return make


def _client(loaded, settings, log: PredictionLog) -> TestClient:
    app = create_app(loaded, settings.model_copy(update={"max_body_bytes": 4_000_000}))
    app.state.service.prediction_log = log
    return TestClient(app)


def _post(client, table, recording_id="rec-1"):
    response = client.post("/predict", json=request_body(table, recording_id=recording_id))
    assert response.status_code == 200, response.text
    return response.json()


def _rows(path, columns="*") -> list[sqlite3.Row]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(f"SELECT {columns} FROM windows ORDER BY id").fetchall()
    finally:
        connection.close()


def test_default_path_is_the_catalog_global():
    globals_yml = (PROJECT_ROOT / "conf" / "base" / "globals.yml").read_text()
    assert f"prediction_log: {DEFAULT_PATH}" in globals_yml


def test_requests_are_logged_pseudonymised_and_read_back_by_time_range(
    loaded, settings, sample_table, make_log
):
    log = make_log()
    with _client(loaded, settings, log) as client:
        served = _post(client, sample_table)
        _post(client, sample_table)
        metrics = client.get("/metrics").text
    n = len(served["windows"])
    rows = _rows(log.path)
    assert len(rows) == 2 * n
    assert f"har_prediction_log_windows_total {2.0 * n}" in metrics
    # The client's id is never stored; the same id hashes alike across requests.
    assert {r["recording"] for r in rows} == {log.pseudonym("rec-1", "")}
    assert "rec-1" not in {r["recording"] for r in rows}
    assert all(r["signals"] is None for r in rows)  # no raw samples by default
    first = rows[0]
    assert first["activity"] == served["windows"][0]["activity"]
    assert json.loads(first["probabilities"]) == pytest.approx(
        served["windows"][0]["probabilities"]
    )
    assert first["model"] == str(PRETRAINED)
    datetime.strptime(first["request_time"], "%Y-%m-%dT%H:%M:%S.%fZ")

    # Two more requests' worth at known times: a range selects exactly its own windows.
    result = loaded.predictor.predict_detailed(sample_table)
    classes = loaded.predictor.contract["class_names"]
    for day in (1, 2):
        log.append(
            "rec-2",
            result,
            {"kind": "local", "path": "old"},
            classes,
            50.0,
            now=datetime(2026, 1, day, 12, tzinfo=UTC),
        )
    ranged = PredictionLogDataset(log.path, start="2026-01-01T00:00:00", end="2026-01-02")
    windows = ranged.load()
    assert len(windows["recording_id"]) == len(result.windows)
    assert set(windows["recording_id"]) == {log.pseudonym("rec-2", "")}
    np.testing.assert_array_equal(windows["start_ms"], result.windows["window_start_ms"])
    assert windows["features"].shape[0] == len(result.windows)
    predictions = PredictionLogDataset(
        log.path, part="predictions", start="2026-01-01T00:00:00", end="2026-01-02"
    ).load()
    np.testing.assert_allclose(predictions["confidence"], result.windows["confidence"])
    assert len(PredictionLogDataset(log.path, model="old").load()["start_ms"]) == 2 * n
    with pytest.raises(DatasetError, match="No served windows"):
        PredictionLogDataset(log.path, end="2025-01-01").load()
    log.close()


def test_retention_deletes_the_oldest_windows(loaded, sample_table, make_log):
    result = loaded.predictor.predict_detailed(sample_table)
    n = len(result.windows)
    classes = loaded.predictor.contract["class_names"]
    log = make_log(max_rows=n + 3, max_days=10)
    for day in (1, 2, 3):
        log.append(
            "rec", result, {"kind": "x"}, classes, 50.0, now=datetime(2026, 1, day, tzinfo=UTC)
        )
    rows = _rows(log.path, "id, request_time")
    assert len(rows) == n + 3
    assert [r["id"] for r in rows] == list(range(2 * n - 2, 3 * n + 1))
    # Eleven days after the last, the age limit removes everything older than ten days.
    log.append("rec", result, {"kind": "x"}, classes, 50.0, now=datetime(2026, 1, 14, tzinfo=UTC))
    assert {r["request_time"][:10] for r in _rows(log.path, "request_time")} == {"2026-01-14"}
    log.close()


def test_a_failing_log_does_not_fail_the_request(loaded, settings, sample_table, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    log = PredictionLog(path=str(blocker / "log.sqlite"), quality={})
    with _client(loaded, settings, log) as client:
        _post(client, sample_table)
        metrics = client.get("/metrics").text
    assert "har_prediction_log_failures_total 1.0" in metrics


def test_signals_only_when_asked_and_logging_can_be_off(loaded, settings, sample_table, make_log):
    log = make_log(log_signals=True, recording_id="raw")
    with _client(loaded, settings, log) as client:
        _post(client, sample_table, recording_id="participant-7")
    result = loaded.predictor.predict_detailed(sample_table)
    rows = _rows(log.path)
    assert {r["recording"] for r in rows} == {"participant-7"}
    stored = np.frombuffer(rows[0]["signals"], dtype=np.float32).reshape(-1, 6)
    np.testing.assert_array_equal(stored, result.arrays["signals"][0])
    off = PredictionLog(path=None)
    assert not off.enabled
    # The serving tests' conftest turns it off with an empty HAR_PREDICTION_LOG.
    assert PredictionLog.from_settings(ServingSettings.from_env()).enabled is False


# --------------------------------------------------------------------------- monitoring


class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so the test can read every output after."""

    def _release(self) -> None:
        pass


def _monitor(inputs: dict, params: dict) -> dict:
    pipeline = create_pipeline()
    catalog = DataCatalog(
        {name: KeptDataset() for name in pipeline.all_outputs()}
        | {name: MemoryDataset(data) for name, data in inputs.items()}
        | {"params:monitoring": MemoryDataset(params)}
    )
    SequentialRunner().run(pipeline, catalog)
    return catalog.load("monitoring_report")


def test_monitoring_on_the_log_equals_monitoring_on_the_signals(
    loaded, settings, sample_table, make_log, monitoring_params
):
    profile = ReferenceProfileDataset(paths=[str(PRETRAINED)]).load()
    # Three one-minute requests of the sample recording (UCI test subject 2), one recording.
    recording = sample_table.copy()
    step = recording["timestamp_ms"].iloc[-1] - recording["timestamp_ms"].iloc[0] + 20
    chunks = [recording.assign(timestamp_ms=recording["timestamp_ms"] + k * step) for k in range(3)]
    log = make_log()
    with _client(loaded, settings, log) as client:
        for chunk in chunks:
            _post(client, chunk)
    pseudonym = log.pseudonym("rec-1", "")

    # The normal monitoring path: the same windows with their signals.
    results = [loaded.predictor.predict_detailed(chunk) for chunk in chunks]
    arrays = {
        key: np.concatenate([r.arrays[key] for r in results])
        for key in ("signals", "label", "start_ms", "end_ms")
    }
    n = len(arrays["label"])
    windows = {**arrays, "recording_id": np.full(n, pseudonym), "subject_id": np.full(n, "2")}
    predictions = pd.concat([r.windows for r in results], ignore_index=True)
    predictions["recording_id"] = pd.array(np.full(n, pseudonym), "string")
    classes = list(profile["class_names"])
    batch = _monitor(
        {
            "inference.windows": windows,
            "window_predictions": predictions,
            "inference.validation_report": {"recordings": []},
            "daily_activity": pd.DataFrame(
                columns=["subject_id", "date", "wear_minutes", *(f"minutes_{c}" for c in classes)]
            ),
            "reference_profile": profile,
        },
        monitoring_params,
    )

    # The served path: the catalog entries of conf/served, on the log.
    def part(name):
        return PredictionLogDataset(log.path, part=name).load()

    served = _monitor(
        {
            "inference.windows": part("windows"),
            "window_predictions": part("predictions"),
            "inference.validation_report": part("validation_report"),
            "daily_activity": part("daily_activity"),
            "reference_profile": profile,
        },
        monitoring_params,
    )
    assert served["batch"]["windows"] == n > 100
    assert served["data_drift"]["windows_with_features"] > 0
    assert served["verdict"] == batch["verdict"]
    for section in ("reasons", "batch", "quality", "data_drift", "prediction_drift"):
        assert served[section] == batch[section], section
    assert served["behaviour_change"]["class_mix"] == batch["behaviour_change"]["class_mix"]
    log.close()
