"""Typed parameters: every node's ``params:`` input is a validated group; bad values fail first."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader
from kedro.validation.exceptions import ParameterValidationError
from kedro.validation.parameter_validator import ParameterValidator

from har_mlops.parameters import ParameterGroup, Resampling
from har_mlops.pipeline_registry import register_pipelines
from har_mlops.settings import CONFIG_LOADER_ARGS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ["local", "test", "wearable", "wearable_demo", "registry", "served"]


def _parameters(env: str) -> dict:
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"), **{**CONFIG_LOADER_ARGS, "default_run_env": env}
    )
    return dict(loader["parameters"])


def _params_arguments(node) -> dict[str, object]:
    """Node argument name -> annotation, for the inputs that are parameters."""
    hints = typing.get_type_hints(node.func)
    # Kedro passes a node's inputs positionally, in the order of the signature.
    arguments = list(inspect.signature(node.func).parameters)
    return {
        arguments[i]: hints.get(arguments[i])
        for i, name in enumerate(node.inputs)
        if name.startswith("params:")
    }


def test_every_node_parameter_is_a_typed_group():
    untyped = []
    for pipeline in register_pipelines().values():
        for node in pipeline.nodes:
            for argument, hint in _params_arguments(node).items():
                if not (isinstance(hint, type) and issubclass(hint, ParameterGroup)):
                    untyped.append(f"{node.name}({argument}: {hint})")
    assert sorted(set(untyped)) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_validates(env):
    validated = ParameterValidator(register_pipelines()).validate_raw_params(_parameters(env))
    assert isinstance(validated["resampling"], Resampling)
    assert validated["inference"]["prediction"]["batch_size"] > 0


def test_a_typo_and_a_wrong_type_are_named():
    params = _parameters("local")
    params["split"] = {**params["split"], "sed": 1}
    params["windowing"] = {**params["windowing"], "window_size": "abc"}
    with pytest.raises(ParameterValidationError) as error:
        ParameterValidator(register_pipelines()).validate_raw_params(params)
    message = str(error.value)
    assert "Parameter 'split'" in message
    assert "sed\n  Extra inputs are not permitted" in message
    assert "Parameter 'windowing'" in message
    assert "window_size\n  Input should be a valid integer" in message


def test_groups_read_as_the_mappings_they_replace():
    group = Resampling(target_rate_hz=50, merge_tolerance_ms=25, max_gap_ms=100)
    assert group["target_rate_hz"] == 50 and isinstance(group["target_rate_hz"], int)
    assert dict(group) == {"target_rate_hz": 50, "merge_tolerance_ms": 25, "max_gap_ms": 100}
    assert {**group, "max_gap_ms": 50}["max_gap_ms"] == 50
    assert group.get("nothing") is None and "max_gap_ms" in group
    with pytest.raises(KeyError):
        group["model_config"]


def _kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kedro", "run", *args],
        check=False,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": str(Path(sys.executable).parent), "KEDRO_DISABLE_TELEMETRY": "1"},
    )


def test_bad_parameters_fail_before_the_run(project_copy):
    run = _kedro(
        project_copy,
        "--pipelines",
        "data_processing",
        "--env",
        "test",
        "--params",
        "split.sed=1,windowing.window_size=abc",
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "ParameterValidationError" in output
    assert "split" in output and "sed" in output and "window_size" in output
    assert "Running node" not in output
    assert not (project_copy / "data" / "02_intermediate" / "samples.parquet").exists()


def test_run_log_is_quiet_and_ends_with_a_summary(project_copy):
    run = _kedro(project_copy, "--pipelines", "data_processing", "--env", "test")
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "Warning" not in output, output[:3000]
    assert "cuInit" not in output
    assert "data_processing: 10 outputs saved" in " ".join(output.split())
