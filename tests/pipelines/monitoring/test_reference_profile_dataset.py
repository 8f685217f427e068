"""ReferenceProfileDataset: the last trained model's profile, else the shipped one."""

from __future__ import annotations

import json

import pytest
from kedro.io import DatasetError

from har_mlops.datasets import ReferenceProfileDataset


def test_falls_back_to_the_shipped_profile_and_saves_to_the_first_folder(tmp_path):
    trained, shipped = tmp_path / "06_models", tmp_path / "06_models" / "pretrained"
    shipped.mkdir(parents=True)
    (shipped / "reference_profile.json").write_text(json.dumps({"model_source": "shipped"}))
    dataset = ReferenceProfileDataset(paths=[str(trained), str(shipped)])

    assert dataset.exists()
    assert dataset.load() == {"model_source": "shipped"}
    dataset.save({"model_source": "trained"})
    assert json.loads((trained / "reference_profile.json").read_text())["model_source"] == "trained"
    assert dataset.load() == {"model_source": "trained"}


def test_missing_profile_names_the_folders_and_the_fix(tmp_path):
    dataset = ReferenceProfileDataset(paths=[str(tmp_path / "a"), str(tmp_path / "b")])
    assert not dataset.exists()
    with pytest.raises(DatasetError, match=r"monitoring_reference"):
        dataset.load()


def test_nan_is_refused_on_save(tmp_path):
    with pytest.raises(DatasetError):
        ReferenceProfileDataset(paths=[str(tmp_path)]).save({"x": float("nan")})
