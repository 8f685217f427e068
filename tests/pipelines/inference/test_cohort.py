"""Cohort inference: chunks equal whole recordings, Dask equals sequential, re-runs skip, faults are
reported, partitions are atomic, monitoring reads a bounded sample."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import dask
import keras
import numpy as np
import pandas as pd
import pytest

from har_mlops.config import project_parameters
from har_mlops.contract import CHANNELS
from har_mlops.datasets import (
    MonitoringWindowsDataset,
    RecordingIndexDataset,
    RecordingOutputsDataset,
)
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
from har_mlops.pipelines.inference.cohort import (
    ChainSettings,
    RecordingModel,
    SignalSample,
    collect,
    process_recording,
    run_jobs,
)
from har_mlops.pipelines.inference.study import plan_recordings
from har_mlops.pipelines.training.model import build_cnn_bilstm
from har_mlops.pipelines.training.nodes import build_contract
from tests.conftest import PROJECT_ROOT, TINY_ARCHITECTURE

SAMPLES = PROJECT_ROOT / "data" / "01_raw" / "inference"
TRANSITIONS = PROJECT_ROOT / "data" / "06_models" / "pretrained" / "activity_transitions.json"


def _settings(**cohort) -> ChainSettings:
    params = project_parameters()
    inference = params["inference"]
    return ChainSettings(
        RawSource.model_validate(inference["raw_source"]),
        Validation.model_validate(params["validation"]),
        Resampling.model_validate(params["resampling"]),
        Windowing.model_validate(params["windowing"]),
        Labels.model_validate(params["labels"]),
        Prediction.model_validate({**inference["prediction"], "jit_compile": False}),
        Smoothing.model_validate(params["smoothing"]),
        NonWear.model_validate(inference["non_wear"]),
        Cohort.model_validate({**inference["cohort"], **cohort}),
    )


@pytest.fixture(scope="module")
def bundle():
    params = project_parameters()
    keras.utils.set_random_seed(0)
    model = build_cnn_bilstm(128, 6, 6, TINY_ARCHITECTURE)
    scaler = {"channels": CHANNELS, "mean": [0.0, 0.0, 9.8, 0.0, 0.0, 0.0], "std": [3.0] * 6}
    contract = build_contract(
        scaler,
        Windowing.model_validate(params["windowing"]),
        Resampling.model_validate(params["resampling"]),
        Labels.model_validate(params["labels"]),
    )
    return {"model": model, "contract": contract, "source": "tiny test model"}


@pytest.fixture(scope="module")
def transitions():
    return json.loads(TRANSITIONS.read_text())


@pytest.fixture
def study(tmp_path) -> Path:
    """The three shipped sample recordings, two of them one participant's, plus a broken one."""
    folder = tmp_path / "study"
    for recording in sorted(p for p in SAMPLES.iterdir() if p.is_dir()):
        shutil.copytree(recording, folder / recording.name)
    # Two recordings of one participant (so per-participant days combine two partitions).
    (folder / "sample_exp17_user09" / "metadata.json").write_text(
        json.dumps({"subject_id": "2", "timezone": "Europe/Berlin"})
    )
    broken = folder / "broken"
    broken.mkdir()
    (broken / "accelerometer.csv").write_text("timestamp,x,y,z\nnot,a,number,row\n")
    (broken / "gyroscope.csv").write_text("timestamp,x,y,z\n")
    return folder


def _jobs(folder: Path) -> list[dict]:
    return [
        {
            "recording_id": rec,
            "subject_id": entry["subject_id"],
            "entry": entry,
            "fingerprint": {},
            "size": 1,
            "model_source": "test",
        }
        for rec, entry in RecordingIndexDataset(str(folder)).load().items()
    ]


def _by_recording(results) -> dict[str, dict]:
    return {r["manifest"]["recording_id"]: r for r in results}


def test_chunked_recording_equals_the_whole_recording(study, bundle, transitions):
    model = RecordingModel(bundle["model"], bundle["contract"], transitions, _settings().prediction)
    (job,) = [j for j in _jobs(study) if j["recording_id"] == "sample_exp48_user24"]
    whole = process_recording(job, model, _settings(chunk_minutes=None))
    # 12-s chunks: a 6-minute recording crosses ~30 chunk borders, several inside windows.
    for minutes in (0.2, 1.0):
        chunked = process_recording(job, model, _settings(chunk_minutes=minutes))
        assert chunked["manifest"]["validation"]["chunks"] > 1
        for table in ("windows", "daily", "minutes"):
            pd.testing.assert_frame_equal(
                chunked["tables"][table], whole["tables"][table], check_exact=True
            )


def test_dask_equals_sequential_and_a_bad_recording_is_reported(study, bundle, transitions):
    jobs = _jobs(study)
    sequential = _by_recording(
        run_jobs(jobs, bundle, transitions, _settings(sequential=True, chunk_minutes=1))
    )
    distributed = _by_recording(
        run_jobs(jobs, bundle, transitions, _settings(n_workers=2, chunk_minutes=1))
    )
    assert set(distributed) == set(sequential) == {r["recording_id"] for r in jobs}
    failed = distributed.pop("broken")
    assert failed["manifest"]["status"] == "failed"
    assert "broken/accelerometer.csv" in failed["manifest"]["reason"]
    assert sequential.pop("broken")["manifest"]["reason"] == failed["manifest"]["reason"]
    for rec, result in distributed.items():
        assert result["manifest"]["status"] == "done"
        for table in ("windows", "daily", "minutes"):
            pd.testing.assert_frame_equal(
                result["tables"][table], sequential[rec]["tables"][table], check_exact=True
            )


def _dies() -> None:
    os._exit(1)


def _raises() -> None:
    raise RuntimeError("task crashed")


def _fine(x: int) -> dict:
    return {"manifest": {"recording_id": str(x), "status": "done"}}


def test_a_killed_worker_and_a_raising_task_are_reported_not_fatal():
    from distributed import Client, LocalCluster

    job = {"subject_id": "s", "entry": {"timezone": "UTC"}, "fingerprint": {}}
    # No retries: a task that kills its worker fails at once instead of killing three.
    # No retries: a task that kills its worker fails at once instead of killing three.
    # (With retries, tasks that shared the dead worker are rescheduled; without, they would
    # fail with it, so the killer runs alone first.)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
            with Client(cluster) as client:
                killer = {client.submit(_dies, pure=False): {**job, "recording_id": "killed"}}
                results = _by_recording(collect(killer))
                # The nanny restarts the worker; the run goes on.
                futures = {
                    client.submit(_raises, pure=False): {**job, "recording_id": "raised"},
                    client.submit(_fine, 1, pure=False): {**job, "recording_id": "1"},
                }
                results |= _by_recording(collect(futures))
    assert results["killed"]["manifest"]["status"] == "failed"
    assert "KilledWorker" in results["killed"]["manifest"]["reason"]
    assert results["raised"]["manifest"]["reason"] == "RuntimeError: task crashed"
    assert results["1"]["manifest"]["status"] == "done"


def _plan(study: Path, outputs: Path, bundle, transitions, **cohort) -> dict:
    return plan_recordings(
        RecordingIndexDataset(str(study)).load(),
        RecordingOutputsDataset(str(outputs)).load(),
        bundle,
        transitions,
        _settings(**cohort),
    )


def test_rerun_skips_unchanged_adds_new_and_recomputes_changed(
    study, bundle, transitions, tmp_path
):
    outputs = tmp_path / "outputs"
    dataset = RecordingOutputsDataset(str(outputs))
    first = _plan(study, outputs, bundle, transitions)
    assert len(first["jobs"]) == 4 and first["skipped"] == []
    for result in run_jobs(first["jobs"], bundle, transitions, _settings(sequential=True)):
        dataset.save(result)
    again = _plan(study, outputs, bundle, transitions)
    # The failed recording is retried; the three good ones are current.
    assert [j["recording_id"] for j in again["jobs"]] == ["broken"]
    assert len(again["skipped"]) == 3

    shutil.copytree(study / "sample_exp03_user02", study / "new_recording")
    touched = study / "sample_exp48_user24" / "gyroscope.csv"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    changed = _plan(study, outputs, bundle, transitions)
    assert {j["recording_id"] for j in changed["jobs"]} == {
        "broken",
        "new_recording",
        "sample_exp48_user24",
    }
    forced = _plan(study, outputs, bundle, transitions, force=True)
    assert len(forced["jobs"]) == 5
    # Another setting that changes outputs (the non-wear rule) recomputes everything too.
    other = _settings()
    other = ChainSettings(
        **{**other.__dict__, "non_wear": other.non_wear.model_copy(update={"min_minutes": 30})}
    )
    replanned = plan_recordings(
        RecordingIndexDataset(str(study)).load(), dataset.load(), bundle, transitions, other
    )
    assert len(replanned["jobs"]) == 5


def test_a_partition_counts_only_once_its_manifest_is_written(tmp_path):
    dataset = RecordingOutputsDataset(str(tmp_path))
    windows = pd.DataFrame({"window_start_ms": [1.0, 2.0], "activity": ["SITTING", "LAYING"]})
    manifest = {"subject_id": "p/1", "recording_id": "r 1", "status": "done"}
    dataset.save({"manifest": manifest, "tables": {"windows": windows}})
    outputs = dataset.load()
    assert outputs.keys() == [("p/1", "r 1")]
    ((key, frame),) = outputs.read("windows")
    assert list(frame["recording_id"]) == ["r 1", "r 1"] and key == ("p/1", "r 1")
    # A save that dies while writing a table leaves no manifest: the partition is not there.
    unwritable = pd.DataFrame({"window_start_ms": [1.0], "activity": [object()]})
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever pyarrow raises
        dataset.save({"manifest": manifest, "tables": {"windows": unwritable}})
    assert dataset.load().keys() == []
    assert not list(tmp_path.rglob("*.tmp"))


def test_signal_sample_stays_bounded_and_evenly_spread():
    sample = SignalSample(limit=100)
    for start in range(0, 1000, 37):
        n = min(37, 1000 - start)
        index = np.arange(start, start + n)
        sample.add({"start_ms": index.astype(float), "signals": np.zeros((n, 2, 1))})
    kept = sample.arrays()["start_ms"]
    assert len(kept) <= 100
    np.testing.assert_array_equal(kept, np.arange(0, 1000, sample.stride))


def test_monitoring_reads_a_bounded_aligned_sample(study, bundle, transitions, tmp_path):
    outputs = tmp_path / "outputs"
    dataset = RecordingOutputsDataset(str(outputs))
    settings = _settings(sequential=True, monitoring_windows=50)
    for result in run_jobs(_jobs(study), bundle, transitions, settings):
        dataset.save(result)
    windows = MonitoringWindowsDataset(str(outputs), "windows", max_windows=120).load()
    predictions = MonitoringWindowsDataset(str(outputs), "predictions", max_windows=120).load()
    assert len(windows["signals"]) == len(predictions) <= 120
    assert windows["signals"].shape[1:] == (128, 6)
    np.testing.assert_array_equal(windows["start_ms"], predictions["window_start_ms"])
    np.testing.assert_array_equal(
        windows["recording_id"], predictions["recording_id"].to_numpy(str)
    )
