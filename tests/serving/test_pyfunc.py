"""The servable pyfunc round-trips through MLflow, and every loader reads it."""

from __future__ import annotations

import logging

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from har_mlops.datasets import ModelBundleDataset
from har_mlops.serving.loading import ServingSettings, load_model
from har_mlops.serving.pyfunc import log_activity_model
from tests.conftest import make_project_copy
from tests.serving.conftest import CONF_ENV, CONF_SOURCE, PRETRAINED

MODEL_NAME = "har_cnn_bilstm_pyfunc_test"


@pytest.fixture(scope="module")
def logged(tmp_path_factory, loaded):
    """The shipped model logged as the pyfunc into a throw-away sqlite tracking store."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        project = make_project_copy(tmp_path_factory.mktemp("pyfunc"), monkeypatch)
        uri = f"sqlite:///{project / 'mlflow-test.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("pyfunc_test")
        predictor = loaded.predictor
        with mlflow.start_run() as run:
            info = log_activity_model(
                predictor.model,
                predictor.config,
                metadata={"preprocessing_contract": predictor.contract},
            )
        version = mlflow.register_model(info.model_uri, MODEL_NAME)
        MlflowClient().set_registered_model_alias(MODEL_NAME, "challenger", version.version)
        yield {"info": info, "uri": uri, "run": run, "version": int(version.version)}


def test_pyfunc_round_trip_equals_the_in_process_predictor(logged, loaded, sample_table):
    model = mlflow.pyfunc.load_model(logged["info"].model_uri)
    served = model.predict(sample_table)
    expected, _ = loaded.predictor.predict(sample_table)
    pd.testing.assert_frame_equal(
        served.reset_index(drop=True), expected, check_exact=False, atol=1e-5, rtol=0
    )


def test_pyfunc_takes_units_as_params_and_optional_recording_id(logged, loaded, sample_table):
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@challenger")
    table = sample_table.assign(recording_id="watch-7")
    milli_g = table.copy()
    milli_g[["acc_x", "acc_y", "acc_z"]] *= 1000.0 / 9.80665
    served = model.predict(milli_g, params={"accelerometer_unit": "milli_g"})
    expected, _ = loaded.predictor.predict(table)
    assert (served["recording_id"] == "watch-7").all()
    assert served["activity"].tolist() == expected["activity"].tolist()
    pd.testing.assert_frame_equal(
        served.reset_index(drop=True), expected, check_exact=False, atol=1e-4, rtol=0
    )


def test_signature_declares_table_params_and_metadata(logged, loaded):
    info = mlflow.models.get_model_info(logged["info"].model_uri)
    inputs = {spec.name: spec for spec in info.signature.inputs.inputs}
    assert list(inputs)[:7] == [
        "timestamp_ms",
        "acc_x",
        "acc_y",
        "acc_z",
        "gyro_x",
        "gyro_y",
        "gyro_z",
    ]
    assert inputs["recording_id"].required is False
    params = {p.name: p.default for p in info.signature.params.params}
    assert params == {"accelerometer_unit": "m/s^2", "gyroscope_unit": "rad/s"}
    assert info.metadata["preprocessing_contract"] == loaded.predictor.contract


def test_registry_bundle_reads_the_keras_model_from_the_pyfunc(logged, loaded):
    import numpy as np

    bundle = ModelBundleDataset(
        source="registry", model_uri=f"models:/{MODEL_NAME}@challenger"
    ).load()
    assert bundle["contract"] == loaded.predictor.contract
    windows = np.random.default_rng(0).normal(size=(3, 128, 6)).astype(np.float32)
    np.testing.assert_allclose(
        bundle["model"](windows, training=False).numpy(),
        loaded.predictor.model(windows, training=False).numpy(),
        atol=1e-6,
    )


def test_service_loads_the_registered_version(logged):
    settings = ServingSettings(
        model_uri=f"models:/{MODEL_NAME}@challenger",
        tracking_uri=logged["uri"],
        conf_source=CONF_SOURCE,
        conf_env=CONF_ENV,
    )
    served = load_model(settings)
    assert served.source["kind"] == "registry"
    assert served.source["version"] == logged["version"]
    assert served.source["alias"] == "challenger"
    assert served.predictor.config["windowing"]["window_size"] == 128


def test_service_falls_back_to_the_local_bundle_without_champion(logged, caplog, tmp_path):
    settings = ServingSettings(
        model_uri=f"models:/{MODEL_NAME}@champion",
        tracking_uri=logged["uri"],
        fallback_paths=(str(tmp_path / "nothing"), str(PRETRAINED)),
        conf_source=CONF_SOURCE,
        conf_env=CONF_ENV,
    )
    with caplog.at_level(logging.WARNING, logger="har_mlops.serving.loading"):
        served = load_model(settings)
    assert served.source == {"kind": "local", "path": str(PRETRAINED)}
    assert "falling back to the local bundle" in caplog.text
