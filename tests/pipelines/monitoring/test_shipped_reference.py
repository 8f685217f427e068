"""The reference profile shipped with the pretrained model, as a fresh clone uses it.

A fresh clone has no trained model, so monitoring falls back to
data/06_models/pretrained/reference_profile.json: it must still fit the pretrained model and
today's feature code, and judge the shipped inference samples like the documented run does.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest
from kedro.framework.project import settings
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import AbstractDataset, DataCatalog

from har_mlops.datasets import ReferenceProfileDataset
from har_mlops.features import feature_names
from tests.conftest import PROJECT_ROOT, make_project_copy

PRETRAINED = Path("data") / "06_models" / "pretrained"
SAMPLES = Path("data") / "01_raw" / "inference"


def _catalog_entry(project: Path, name: str) -> AbstractDataset:
    """Dataset ``name`` as the project's catalog configures it (default environment)."""
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(project / settings.CONF_SOURCE), **settings.CONFIG_LOADER_ARGS
    )
    return DataCatalog.from_config({name: loader["catalog"][name]}).get(name)


def _session_run(project: Path, pipelines: list[str]) -> None:
    # The default environment, as `kedro run` in a fresh clone.
    with KedroSession.create(project_path=project) as session:
        session.run(pipeline_names=pipelines)
    # kedro-mlflow 2.0.3 leaves the run on MLflow's stack (see tests/conftest.py).
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch) -> Path:
    """A project copy with what git ships: the pretrained model, its profile, the samples."""
    project = make_project_copy(tmp_path, monkeypatch)
    shutil.copytree(PROJECT_ROOT / PRETRAINED, project / PRETRAINED)
    shutil.copytree(PROJECT_ROOT / SAMPLES, project / SAMPLES)
    bootstrap_project(project)
    return project


def test_shipped_profile_fits_the_pretrained_model_and_the_features():
    profile = ReferenceProfileDataset(paths=[str(PROJECT_ROOT / PRETRAINED)]).load()
    contract = json.loads((PROJECT_ROOT / PRETRAINED / "model_contract.json").read_text())
    assert profile["class_names"] == contract["class_names"]
    assert profile["target_rate_hz"] == contract["target_rate_hz"]
    assert profile["features"] == feature_names()
    assert set(profile["sketch"]["classes"]) == set(contract["class_names"])
    calibration = profile["calibration"]
    assert calibration["min_batch_windows"] in calibration["batch_sizes"]
    assert set(calibration["dataset"]) == {str(s) for s in calibration["batch_sizes"]}


def test_monitoring_the_shipped_samples_with_the_shipped_profile(fresh_clone):
    _session_run(fresh_clone, ["inference"])
    _session_run(fresh_clone, ["monitoring"])
    profile = _catalog_entry(fresh_clone, "reference_profile").load()
    report = json.loads(
        (fresh_clone / "data" / "08_reporting" / "monitoring_report.json").read_text()
    )
    assert not (fresh_clone / "data" / "06_models" / "reference_profile.json").exists()
    assert report["reference"]["model_source"] == profile["model_source"]
    # Three clean sample recordings of subjects the model never saw: no sensor fault and no
    # drift, but fewer windows than the shipped profile's valid batch size (1000), so the
    # verdict warns about that and nothing else.
    assert report["quality"]["quarantined"] == 0
    assert report["verdict"] == "warn", report["reasons"]
    (reason,) = report["reasons"]
    assert (reason["code"], reason["severity"]) == ("batch_too_small", "warn")
    assert reason["threshold"] == profile["calibration"]["min_batch_windows"] == 1000
    assert reason["value"] == report["batch"]["passed_quality"] == report["batch"]["windows"]
    assert 300 <= reason["value"] < 1000
    assert report["batch"]["calibrated_batch"] == 300
    assert not any(a.get("judged") is None for a in report["data_drift"]["activities"].values())
    assert "feature_drift" not in [r["code"] for r in report["reasons"]]
