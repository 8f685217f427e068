"""End to end: data_processing + training through a Kedro session in the `test` environment."""

import json

import numpy as np
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from har_mlops.pipelines.training import create_pipeline
from har_mlops.pipelines.training.nodes import build_contract
from tests.conftest import make_project_copy


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        project = make_project_copy(tmp_path_factory.mktemp("training"), monkeypatch)
        bootstrap_project(project)
        with KedroSession.create(project_path=project, env="test") as session:
            session.run(pipeline_names=["data_processing", "training"])
            context = session.load_context()
            yield {"catalog": context.catalog, "params": context.params, "project": project}


def test_metrics_are_probabilities(trained):
    catalog = trained["catalog"]
    for name in ("evaluation_report", "baseline_report"):
        report = catalog.load(name)
        for key in ("accuracy", "macro_f1", "weighted_f1"):
            assert 0.0 <= report[key] <= 1.0
        for scores in report["per_class"].values():
            assert all(0.0 <= scores[k] <= 1.0 for k in ("precision", "recall", "f1"))
        assert report["throughput_windows_per_s"] > 0


def test_confusion_matrix_sums_to_test_windows(trained):
    catalog = trained["catalog"]
    n_test = catalog.load("windows_test")["label"].size
    report = catalog.load("evaluation_report")
    assert np.asarray(report["confusion_matrix"]["matrix"]).sum() == n_test == report["windows"]
    assert report["test_subjects"] == ["2"]


def test_contract_round_trips_and_matches_parameters(trained):
    catalog, params = trained["catalog"], trained["params"]
    bundle = catalog.load("model_bundle")
    contract = bundle["contract"]
    expected = build_contract(
        catalog.load("scaler"), params["windowing"], params["resampling"], params["labels"]
    )
    assert contract == json.loads(json.dumps(expected))
    model = bundle["model"]
    assert model.input_shape == (None, contract["window_size"], len(contract["channels"]))
    assert model.output_shape == (None, len(contract["class_names"]))


def test_model_is_registered_with_an_alias(trained):
    import mlflow
    from mlflow.tracking import MlflowClient

    registration = trained["catalog"].load("model_registration")
    assert registration["registered"] is True
    # Two epochs on four subjects cannot pass the 0.95 gate.
    assert registration["alias"] == "challenger"
    assert "below the gate" in registration["reasons"][0]
    client = MlflowClient(tracking_uri=f"sqlite:///{trained['project'] / 'mlflow-test.db'}")
    version = client.get_model_version_by_alias(registration["model_name"], "challenger")
    assert int(version.version) == registration["version"]
    assert version.tags["test_subjects"] == "2"
    run = client.get_run(registration["run_id"])
    assert "test.network_macro_f1" in run.data.metrics
    assert run.data.params["training.seed"] == "42"
    logged = mlflow.models.get_model_info(f"models:/{registration['model_name']}/{version.version}")
    contract = trained["catalog"].load("model_bundle")["contract"]
    assert logged.metadata["preprocessing_contract"] == contract


def test_pipeline_outputs_cover_reporting():
    outputs = create_pipeline().all_outputs()
    assert {"model", "evaluation_report", "confusion_matrix_plot", "model_contract"} <= outputs


def test_registry_source_loads_the_registered_model_and_contract(trained):
    import mlflow

    from har_mlops.datasets import ModelBundleDataset

    # What `kedro run --pipelines inference --env registry` does, with the challenger alias.
    mlflow.set_tracking_uri(f"sqlite:///{trained['project'] / 'mlflow-test.db'}")
    registration = trained["catalog"].load("model_registration")
    uri = f"models:/{registration['model_name']}@challenger"
    from_registry = ModelBundleDataset(source="registry", model_uri=uri).load()
    local = trained["catalog"].load("model_bundle")
    assert from_registry["contract"] == local["contract"]
    windows = np.random.default_rng(0).normal(size=(4, 128, 6)).astype(np.float32)
    np.testing.assert_allclose(
        from_registry["model"].predict(windows, verbose=0),
        local["model"].predict(windows, verbose=0),
        atol=1e-5,
    )


def test_registered_model_is_the_servable_pyfunc(trained):
    import mlflow

    from har_mlops.serving.pyfunc import example_samples

    registration = trained["catalog"].load("model_registration")
    uri = f"models:/{registration['model_name']}/{registration['version']}"
    info = mlflow.models.get_model_info(uri)
    assert info.flavors["python_function"]["loader_module"] == "mlflow.pyfunc.model"
    served = mlflow.pyfunc.load_model(uri)
    config = served.unwrap_python_model().predictor.config
    params = trained["params"]
    for group in ("validation", "resampling", "windowing", "labels", "serving"):
        assert config[group] == params[group]
    threshold = params["inference"]["prediction"]["low_confidence_threshold"]
    assert config["prediction"]["low_confidence_threshold"] == threshold
    contract = config["contract"]
    predictions = served.predict(example_samples(contract, seconds=10.0))
    assert len(predictions) == 6  # (501 samples - 128) // 64 + 1
    assert predictions["activity"].isin(contract["class_names"]).all()
