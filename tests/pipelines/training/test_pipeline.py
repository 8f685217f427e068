"""End to end: data_processing + training through a Kedro session in the `test` environment.

The run is ``kedro run`` in a subprocess (training turns TensorFlow's op determinism on for
the rest of its process, and kedro-mlflow leaves runs and variables behind); the tests read
its outputs through a Kedro session of their own.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog

from har_mlops.pipelines.training import create_pipeline
from tests.conftest import make_project_copy

# The test environment's two epochs leave the network near chance (macro-F1 0.21-0.32 over
# seeds 7, 42, 123); eight epochs (~25 s more) reach 0.61-0.72 (accuracy 0.67-0.76).
EPOCHS = 8
# Far above chance (1/6) and out of reach of any constant-class model (<= 1/6 on 6 classes,
# ~0.055 on these test windows), with room for other machines and seeds.
MIN_NETWORK_MACRO_F1 = 0.4
MIN_NETWORK_ACCURACY = 0.45
# The random forest (fixed seed) scores 0.636 macro-F1 on these windows.
MIN_BASELINE_MACRO_F1 = 0.45

BASIC_CLASSES = [
    "WALKING",
    "WALKING_UPSTAIRS",
    "WALKING_DOWNSTAIRS",
    "SITTING",
    "STANDING",
    "LAYING",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        project = make_project_copy(tmp_path_factory.mktemp("training"), monkeypatch)
        kedro = Path(sys.executable).with_name("kedro")
        command = [str(kedro), "run", "--env", "test", "--pipelines", "data_processing,training"]
        result = subprocess.run(
            [*command, "--params", f"training.epochs={EPOCHS}"],
            check=False,
            cwd=project,
            env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
        bootstrap_project(project)
        with KedroSession.create(project_path=project, env="test") as session:
            config = session.load_context().config_loader
            # Not context.catalog: the checks below read the files the run wrote, without the
            # project's hooks.
            yield {
                "catalog": DataCatalog.from_config(config["catalog"]),
                "params": config["parameters"],
                "project": project,
                "tracking_uri": f"sqlite:///{project / 'mlflow-test.db'}",
            }


def test_metrics_are_probabilities(trained):
    catalog = trained["catalog"]
    for name in ("evaluation_report", "baseline_report"):
        report = catalog.load(name)
        for key in ("accuracy", "macro_f1", "weighted_f1"):
            assert 0.0 <= report[key] <= 1.0
        for scores in report["per_class"].values():
            assert all(0.0 <= scores[k] <= 1.0 for k in ("precision", "recall", "f1"))
        assert report["throughput_windows_per_s"] > 0


def test_network_learned_far_above_chance(trained):
    report = trained["catalog"].load("evaluation_report")
    matrix = np.asarray(report["confusion_matrix"]["matrix"])
    shares = matrix.sum(axis=1) / matrix.sum()
    # A model always predicting class c scores accuracy shares[c] and macro-F1
    # 2 shares[c] / (1 + shares[c]) / classes: the floors are out of its reach.
    assert max(2 * shares / (1 + shares)) / len(shares) < MIN_NETWORK_MACRO_F1 / 2
    assert shares.max() < MIN_NETWORK_ACCURACY - 0.1
    assert report["macro_f1"] >= MIN_NETWORK_MACRO_F1
    assert report["accuracy"] >= MIN_NETWORK_ACCURACY
    f1 = np.array([scores["f1"] for scores in report["per_class"].values()])
    assert list(report["per_class"]) == BASIC_CLASSES
    assert (f1 > 0).sum() > 1  # not one class predicted for everything
    assert (f1 >= 0.3).sum() >= 3
    # At least three classes are ever predicted, and every class is the truth for some window.
    assert (matrix.sum(axis=0) > 0).sum() >= 3
    assert (matrix.sum(axis=1) > 0).all()


def test_baseline_learned_far_above_chance(trained):
    report = trained["catalog"].load("baseline_report")
    assert report["macro_f1"] >= MIN_BASELINE_MACRO_F1
    assert sum(scores["f1"] > 0 for scores in report["per_class"].values()) > 1


def test_confusion_matrix_sums_to_test_windows(trained):
    catalog = trained["catalog"]
    n_test = catalog.load("windows_test")["label"].size
    report = catalog.load("evaluation_report")
    assert np.asarray(report["confusion_matrix"]["matrix"]).sum() == n_test == report["windows"]
    assert report["test_subjects"] == ["2"]


def test_evaluation_report_measures_smoothing(trained):
    catalog = trained["catalog"]
    evaluation = catalog.load("evaluation_report")
    smoothing = evaluation["smoothing"]
    for key in ("window_macro_f1", "smoothed_macro_f1", "window_accuracy", "smoothed_accuracy"):
        assert 0.0 <= smoothing[key] <= 1.0
    # Every test window is predicted and smoothed in time order; the class-labelled ones are
    # scored, which are exactly windows_test.
    n_test = catalog.load("windows_test")["label"].size
    assert smoothing["windows"] == catalog.load("all_windows_test")["label"].size > n_test
    assert smoothing["windows_scored"] == n_test
    assert smoothing["runs"] >= 1
    # Window-level, the same model scores the same windows as evaluate_model does (batching may
    # move a borderline window).
    assert smoothing["window_accuracy"] == pytest.approx(evaluation["accuracy"], abs=2 / n_test)
    transitions = catalog.load("activity_transitions")
    assert transitions["classes"] == BASIC_CLASSES
    np.testing.assert_allclose(np.sum(transitions["transition"], axis=1), 1.0)
    assert transitions["transitions_counted"] > 0


def test_contract_round_trips_and_matches_parameters(trained):
    catalog, params = trained["catalog"], trained["params"]
    bundle = catalog.load("model_bundle")
    contract = bundle["contract"]
    scaler = catalog.load("scaler")
    assert scaler["channels"] == ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    assert len(scaler["mean"]) == len(scaler["std"]) == 6
    assert all(std > 0 for std in scaler["std"])
    # Literal values of conf/base (the test environment does not override them): channels in
    # order, SI units, 50 Hz, 128-sample windows at 50 % overlap, the six basic activities,
    # and the scaler fitted on the training windows.
    assert sorted(contract.pop("class_gravity")) == sorted(BASIC_CLASSES)
    assert contract == {
        "class_names": BASIC_CLASSES,
        "channels": ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"],
        "units": {"acc": "m/s^2", "gyro": "rad/s"},
        "target_rate_hz": 50.0,
        "window_size": 128,
        "overlap": 0.5,
        "scaler": {"mean": scaler["mean"], "std": scaler["std"]},
    }
    assert isinstance(contract["target_rate_hz"], float)
    assert isinstance(contract["window_size"], int)
    # ...and those are the parameters this environment runs with.
    assert params["windowing"]["window_size"] == contract["window_size"]
    assert params["windowing"]["overlap"] == contract["overlap"]
    assert params["resampling"]["target_rate_hz"] == contract["target_rate_hz"]
    assert params["labels"]["class_sets"][params["labels"]["class_set"]] == BASIC_CLASSES
    model = bundle["model"]
    assert model.input_shape == (None, 128, 6)
    assert model.output_shape == (None, 6)


def test_model_is_registered_with_an_alias(trained):
    import mlflow
    from mlflow.tracking import MlflowClient

    registration = trained["catalog"].load("model_registration")
    assert registration["registered"] is True
    # A few epochs on two training subjects cannot pass the test floor (macro-F1 0.9).
    assert registration["alias"] == "challenger"
    assert "below the floor" in registration["reasons"][0]
    assert registration["versus_baseline"]["subjects"] == ["2"]
    assert registration["versus_champion"] is None
    mlflow.set_tracking_uri(trained["tracking_uri"])
    client = MlflowClient(tracking_uri=trained["tracking_uri"])
    version = client.get_model_version_by_alias(registration["model_name"], "challenger")
    assert int(version.version) == registration["version"]
    assert version.tags["test_subjects"] == "2"
    run = client.get_run(registration["run_id"])
    assert "test.network_macro_f1" in run.data.metrics
    assert run.data.params["training.seed"] == "42"
    assert run.data.params["training.epochs"] == str(EPOCHS)
    # What the next run's gate compares with, window by window, and this run's decision.
    artifacts = {a.path for a in client.list_artifacts(registration["run_id"])}
    assert {"network_test_predictions.npz", "gate.json"} <= artifacts
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
    mlflow.set_tracking_uri(trained["tracking_uri"])
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

    mlflow.set_tracking_uri(trained["tracking_uri"])
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
