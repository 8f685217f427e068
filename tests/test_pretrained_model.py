"""The shipped pretrained model must match the current default parameters."""

import json
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from har_mlops.contract import CHANNELS, class_names

PROJECT = Path(__file__).resolve().parents[1]
PRETRAINED = PROJECT / "data" / "06_models" / "pretrained"


@pytest.fixture(scope="module")
def params():
    loader = OmegaConfigLoader(str(PROJECT / "conf"), base_env="base", default_run_env="base")
    return loader["parameters"]


@pytest.fixture(scope="module")
def contract():
    return json.loads((PRETRAINED / "model_contract.json").read_text())


def test_contract_matches_default_parameters(contract, params):
    assert contract["class_names"] == class_names(params["labels"])
    assert contract["channels"] == CHANNELS
    assert contract["units"] == {"acc": "m/s^2", "gyro": "rad/s"}
    assert contract["window_size"] == params["windowing"]["window_size"]
    assert contract["overlap"] == params["windowing"]["overlap"]
    assert contract["target_rate_hz"] == params["resampling"]["target_rate_hz"]
    assert len(contract["scaler"]["mean"]) == len(contract["scaler"]["std"]) == len(CHANNELS)
    assert all(s > 0 for s in contract["scaler"]["std"])


def test_model_shapes_match_contract(contract):
    import keras

    import har_mlops.layers  # noqa: F401  (registers the custom layers)

    model = keras.saving.load_model(PRETRAINED / "har_cnn_bilstm.keras")
    assert model.input_shape == (None, contract["window_size"], len(contract["channels"]))
    assert model.output_shape == (None, len(contract["class_names"]))


def test_shipped_metrics_are_recorded_and_small():
    metrics = json.loads((PRETRAINED / "metrics.json").read_text())
    report = json.loads((PRETRAINED / "evaluation_report.json").read_text())
    # metrics.json summarises the evaluation report shipped beside it, not hand-typed figures.
    for key in ("accuracy", "macro_f1", "weighted_f1"):
        assert metrics["network"][key] == report[key]
        assert 0.0 <= metrics["baseline_random_forest"][key] <= 1.0
    assert metrics["test_subjects"] == report["test_subjects"]
    assert metrics["network"]["macro_f1"] > metrics["baseline_random_forest"]["macro_f1"]
    # The repository must not carry a large binary: ~350 KB per ensemble member.
    assert (PRETRAINED / "har_cnn_bilstm.keras").stat().st_size < 1024 * 1024


def test_model_is_what_the_default_architecture_builds(contract, params):
    import keras

    import har_mlops.layers  # noqa: F401  (registers the custom layers)
    from har_mlops.pipelines.training.model import build_cnn_bilstm, ensemble_members

    shipped = keras.saving.load_model(PRETRAINED / "har_cnn_bilstm.keras")
    members = ensemble_members(shipped)
    assert len(members) == params["training"]["ensemble_members"]
    default = build_cnn_bilstm(
        contract["window_size"],
        len(contract["channels"]),
        len(contract["class_names"]),
        params["architecture"],
    )
    for member in members:
        # Types, not names: unnamed layers are numbered by how many this process has built.
        assert [type(x).__name__ for x in member.layers] == [
            type(x).__name__ for x in default.layers
        ]
        assert member.count_params() == default.count_params()
