"""Shared serving fixtures: the shipped model as a predictor, a sample recording as a table."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import pytest

from har_mlops.datasets import WearableExportDataset
from har_mlops.serving.loading import LoadedModel, ServingSettings, load_local
from har_mlops.serving.predictor import export_to_table
from tests.conftest import PROJECT_ROOT

# No prediction log unless a test configures one: the default path is in the project's data
# folder, which tests must not write to (uvicorn subprocesses inherit this too).
os.environ.setdefault("HAR_PREDICTION_LOG", "")

PRETRAINED = PROJECT_ROOT / "data" / "06_models" / "pretrained"
SAMPLE_RECORDING = "sample_exp03_user02"
SAMPLE_SECONDS = 60
SI_UNITS = {"accelerometer_unit": "m/s^2", "gyroscope_unit": "rad/s"}


# The committed parameters only: the service's default environment is ``local``, which is
# untracked, so a developer's conf/local would otherwise change what the tests see.
CONF_SOURCE = str(PROJECT_ROOT / "conf")
CONF_ENV = "base"


@pytest.fixture(scope="session")
def settings() -> ServingSettings:
    """Settings reading the project's conf/base for the shipped bundle's parameters."""
    return ServingSettings(
        model_uri=None,
        model_path=str(PRETRAINED),
        conf_source=CONF_SOURCE,
        conf_env=CONF_ENV,
    )


@pytest.fixture(scope="session")
def loaded(settings) -> LoadedModel:
    """The shipped pretrained model, behind an ActivityPredictor."""
    return load_local(PRETRAINED, settings)


@pytest.fixture(scope="session")
def sample_table() -> pd.DataFrame:
    """The first minute of a shipped sample recording (UCI test subject 2), in SI units."""
    folder = PROJECT_ROOT / "data" / "01_raw" / "inference"
    record = WearableExportDataset(str(folder)).load()[SAMPLE_RECORDING]
    table = export_to_table(record)
    start = table["timestamp_ms"].iloc[0]
    return table[table["timestamp_ms"] < start + SAMPLE_SECONDS * 1000].reset_index(drop=True)


def request_body(table: pd.DataFrame, **overrides: Any) -> dict[str, Any]:
    """A /predict body from a sample table (SI units unless overridden)."""
    body: dict[str, Any] = {"recording_id": "rec-1", **SI_UNITS}
    body.update({c: table[c].tolist() for c in table.columns if c != "recording_id"})
    body.update(overrides)
    return body
