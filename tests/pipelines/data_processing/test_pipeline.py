"""The data_processing pipeline end to end: in memory, through a Kedro session, in the registry."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import ParquetDataset

from har_mlops.contract import CHANNELS
from har_mlops.datasets import NpzDataset
from har_mlops.pipelines.data_processing import create_pipeline
from har_mlops.units import STANDARD_GRAVITY
from tests.conftest import EPOCH_MS, HAPT_ZIP, make_recording

PARAMETER_GROUPS = ["raw_source", "validation", "resampling", "windowing", "labels", "split"]


def test_pipeline_wiring(parameters):
    pipeline = create_pipeline()

    assert {n.name for n in pipeline.nodes} == {
        "validate_recordings",
        "resample_recordings",
        "convert_units",
        "assign_labels",
        "window_samples",
        "filter_windows_by_class",
        "split_windows",
        "split_all_windows",
        "fit_scaler",
        "summarise_windows",
    }
    assert pipeline.inputs() == {"raw_recordings", *(f"params:{g}" for g in PARAMETER_GROUPS)}
    assert pipeline.outputs() == {
        "validation_report",
        "scaler",
        "window_counts",
        *(f"all_windows_{s}" for s in ("train", "validation", "test")),
    }
    # Every parameter group the pipeline reads exists in conf/base.
    assert set(PARAMETER_GROUPS) <= set(parameters)
    # The scaler sees the training windows only.
    (fit,) = [n for n in pipeline.nodes if n.name == "fit_scaler"]
    assert fit.inputs == ["windows_train"]


# --------------------------------------------------------------------------- in-memory run


def _raw_recording(rec_id: str, subject: str, k: int) -> dict:
    """One labelled 10 s recording as WearableExportDataset returns it (units g and rad/s)."""
    acc, gyro = make_recording(duration_s=10.0)
    acc[["x", "y", "z"]] /= STANDARD_GRAVITY  # declared in g (conf/base raw_source)
    acc["x"] += 0.1 * k  # subject-specific, so the scaler depends on which subjects train
    labels = pd.DataFrame(
        {
            "start": [EPOCH_MS, EPOCH_MS + 5020],
            "end": [EPOCH_MS + 5000, EPOCH_MS + 10_000],
            "activity": ["WALKING", "SITTING"],
        }
    )
    return {
        "files": {
            "accelerometer": f"{rec_id}/accelerometer.csv",
            "gyroscope": f"{rec_id}/gyroscope.csv",
            "labels": f"{rec_id}/labels.csv",
        },
        "read_errors": {},
        "accelerometer": acc,
        "gyroscope": gyro,
        "labels": labels,
        "subject_id": subject,
    }


@pytest.fixture
def in_memory_run(parameters, tmp_path):
    raw = {f"rec_s{k}": _raw_recording(f"rec_s{k}", f"s{k}", k) for k in range(1, 5)}
    # A broken export alongside: reported, left out, nothing raises.
    raw["rec_broken"] = {
        "files": {"accelerometer": "rec_broken/accelerometer.csv"},
        "read_errors": {},
        "accelerometer": pd.DataFrame(),
        "gyroscope": raw["rec_s1"]["gyroscope"],
        "labels": None,
        "subject_id": "s9",
    }
    parameters["split"].update(test_subjects=["s4"], validation_subjects=["s3"])
    catalog = DataCatalog()
    catalog["raw_recordings"] = raw
    for group in PARAMETER_GROUPS:
        catalog[f"params:{group}"] = parameters[group]
    # Intermediate MemoryDatasets are released once consumed; persist what the tests inspect,
    # as the project catalog does.
    for split in ("train", "validation", "test"):
        catalog[f"windows_{split}"] = NpzDataset(filepath=str(tmp_path / f"windows_{split}.npz"))
    catalog["samples"] = ParquetDataset(filepath=str(tmp_path / "samples.parquet"))

    outputs = SequentialRunner().run(create_pipeline(), catalog)

    return outputs, catalog


def test_in_memory_run_returns_free_outputs(in_memory_run):
    outputs, _ = in_memory_run
    assert set(outputs) == {
        "validation_report",
        "scaler",
        "window_counts",
        *(f"all_windows_{s}" for s in ("train", "validation", "test")),
    }


def test_all_windows_keep_the_mixed_ones_on_the_same_subjects(in_memory_run):
    _, catalog = in_memory_run
    train = catalog.load("all_windows_train")
    # All 6 windows per recording, the 2 spanning the label change included (label "").
    assert train["subject_id"].tolist() == ["s1"] * 6 + ["s2"] * 6
    assert (train["label"] == "").sum() == 4
    assert set(catalog.load("all_windows_validation")["subject_id"]) == {"s3"}
    assert set(catalog.load("all_windows_test")["subject_id"]) == {"s4"}


def test_in_memory_run_splits_windows_by_subject(in_memory_run):
    _, catalog = in_memory_run
    train, val, test = (catalog.load(f"windows_{s}") for s in ("train", "validation", "test"))

    # Per recording: 6 windows of 128 (stride 64) over 501 samples; 2 are all WALKING,
    # 2 all SITTING, 2 span the label change and are dropped by the single-label policy.
    per_recording = ["WALKING", "WALKING", "SITTING", "SITTING"]
    assert train["label"].tolist() == per_recording * 2
    assert train["subject_id"].tolist() == ["s1"] * 4 + ["s2"] * 4
    assert train["recording_id"].tolist() == ["rec_s1"] * 4 + ["rec_s2"] * 4
    assert train["label_index"].tolist() == [0, 0, 3, 3] * 2
    assert train["start_ms"].tolist() == [EPOCH_MS + d for d in (0, 1280, 5120, 6400)] * 2
    assert train["end_ms"].tolist() == [EPOCH_MS + d + 2540 for d in (0, 1280, 5120, 6400)] * 2
    assert val["subject_id"].tolist() == ["s3"] * 4
    assert val["label"].tolist() == per_recording
    assert test["subject_id"].tolist() == ["s4"] * 4
    for part in (train, val, test):
        assert part["signals"].dtype == np.float32
        assert part["signals"].shape == (part["label"].size, 128, 6)

    # Units converted to m/s^2: acc x = sin(2 pi t) m/s^2 + 0.1 k g, acc z = 1 g; gyro untouched.
    t = np.arange(128) * 0.02
    np.testing.assert_allclose(
        train["signals"][0, :, 0], np.sin(2 * np.pi * t) + 0.1 * STANDARD_GRAVITY, atol=1e-5
    )
    np.testing.assert_allclose(
        train["signals"][4, :, 0] - train["signals"][0, :, 0], 0.1 * 9.80665, atol=1e-5
    )
    np.testing.assert_allclose(train["signals"][:, :, 2], np.float32(STANDARD_GRAVITY))
    np.testing.assert_allclose(train["signals"][0, :, 4], -0.1 * t, atol=1e-7)


def test_in_memory_run_scaler_and_reports(in_memory_run):
    _, catalog = in_memory_run
    train = catalog.load("windows_train")
    scaler = catalog.load("scaler")

    assert scaler["channels"] == CHANNELS
    assert len(scaler["mean"]) == len(scaler["std"]) == 6
    assert scaler["fitted_on_windows"] == 8
    flat = train["signals"].reshape(-1, 6).astype(np.float64)
    np.testing.assert_allclose(scaler["mean"], flat.mean(axis=0), rtol=1e-12)
    assert scaler["std"][2] == 1.0  # acc z constant at 1 g
    assert scaler["std"][5] == 1.0  # gyro z constant
    assert scaler["mean"][2] == pytest.approx(STANDARD_GRAVITY, rel=1e-7)

    counts = catalog.load("window_counts")
    assert {k: (v["windows"], v["subjects"]) for k, v in counts["splits"].items()} == {
        "train": (8, ["s1", "s2"]),
        "validation": (4, ["s3"]),
        "test": (4, ["s4"]),
    }
    assert counts["splits"]["train"]["per_class"]["WALKING"] == 4
    assert counts["splits"]["train"]["per_class"]["SITTING"] == 4

    report = catalog.load("validation_report")
    assert report["summary"]["accepted"] == 4
    assert report["summary"]["rejected"] == 1
    (broken,) = [e for e in report["recordings"] if e["recording_id"] == "rec_broken"]
    assert broken["problems"][0]["file"] == "rec_broken/accelerometer.csv"
    assert broken["problems"][0]["problem"] == "empty file"

    samples = catalog.load("samples")
    assert list(samples.columns) == [
        "recording_id",
        "subject_id",
        "timestamp",
        "segment_id",
        *CHANNELS,
        "label",
    ]
    assert len(samples) == 4 * 501
    assert samples["label"].value_counts().to_dict() == {"WALKING": 4 * 251, "SITTING": 4 * 250}


# --------------------------------------------------------------------------- Kedro session


def _hapt_row(name: str, index: int) -> list[float]:
    with zipfile.ZipFile(HAPT_ZIP) as archive, archive.open(name) as handle:
        lines = io.TextIOWrapper(handle).read().splitlines()
    return [float(v) for v in lines[index].split()]


def test_kedro_session_run_on_hapt_test_env(project_copy):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, env="test") as session:
        session.run(pipeline_names=["data_processing"])

    data = project_copy / "data"
    parts = {
        s: NpzDataset(filepath=str(data / "05_model_input" / f"windows_{s}.npz")).load()
        for s in ("train", "validation", "test")
    }
    classes = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"]
    # conf/test: HAPT subjects 1, 2, 3, 5; test subject 2, validation subject 3.
    assert set(parts["train"]["subject_id"]) == {"1", "5"}
    assert set(parts["validation"]["subject_id"]) == {"3"}
    assert set(parts["test"]["subject_id"]) == {"2"}
    for part in parts.values():
        n = part["label"].size
        assert n > 0
        assert part["signals"].shape == (n, 128, 6)
        assert part["signals"].dtype == np.float32
        assert set(part["label"]) <= set(classes)
        np.testing.assert_array_equal(np.asarray(classes)[part["label_index"]], part["label"])
        assert np.all(part["end_ms"] - part["start_ms"] == 127 * 20.0)

    # The first training window: exp01_user01, first segment "1 1 5 250 1232" (STANDING);
    # the first 64-sample stride start inside it is sample 256 -> 5120 ms.
    first = parts["train"]
    assert first["recording_id"][0] == "exp01_user01"
    assert first["label"][0] == "STANDING"
    assert first["start_ms"][0] == 5120.0
    acc = np.asarray(_hapt_row("RawData/acc_exp01_user01.txt", 256)) * STANDARD_GRAVITY
    gyro = np.asarray(_hapt_row("RawData/gyro_exp01_user01.txt", 256))
    np.testing.assert_allclose(first["signals"][0, 0], np.r_[acc, gyro], rtol=1e-6)

    counts = json.loads((data / "08_reporting" / "window_counts.json").read_text())
    assert counts["classes"] == classes
    for split, part in zip(("train", "validation", "test"), parts.values()):
        assert counts["splits"][split]["windows"] == part["label"].size
    assert {k: v["subjects"] for k, v in counts["splits"].items()} == {
        "train": ["1", "5"],
        "validation": ["3"],
        "test": ["2"],
    }

    report = json.loads((data / "08_reporting" / "validation_report.json").read_text())
    assert report["summary"] == {
        "recordings": 8,  # experiments 1-2 (user 1), 3-4 (2), 5-6 (3), 9-10 (5)
        "accepted": 8,
        "rejected": 0,
        "rows_repaired_or_dropped": 0,
        "units": {"accelerometer": "g", "gyroscope": "rad/s"},
    }
    assert {e["subject_id"] for e in report["recordings"]} == {"1", "2", "3", "5"}

    scaler = json.loads((data / "06_models" / "scaler.json").read_text())
    assert scaler["channels"] == CHANNELS
    assert scaler["fitted_on_windows"] == parts["train"]["label"].size
    flat = parts["train"]["signals"].reshape(-1, 6).astype(np.float64)
    np.testing.assert_allclose(scaler["mean"], flat.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(scaler["std"], flat.std(axis=0), rtol=1e-9)

    samples = pd.read_parquet(data / "02_intermediate" / "samples.parquet")
    assert set(samples["subject_id"]) == {"1", "2", "3", "5"}
    assert list(samples.columns[-1:]) == ["label"]


# --------------------------------------------------------------------------- registry


def test_pipeline_registry_exposes_data_processing_in_default():
    from har_mlops.pipeline_registry import register_pipelines

    pipelines = register_pipelines()

    assert {"data_processing", "__default__"} <= set(pipelines)
    assert all(isinstance(p, Pipeline) for p in pipelines.values())
    data_processing = {n.name for n in pipelines["data_processing"].nodes}
    assert data_processing == {n.name for n in create_pipeline().nodes}
    assert data_processing <= {n.name for n in pipelines["__default__"].nodes}
