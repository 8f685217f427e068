"""The ``HAR_*`` settings: defaults, sizes with units, and errors that name the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from har_mlops.serving.loading import ServingSettings
from har_mlops.serving.settings import (
    DEFAULT_MAX_BODY_BYTES,
    SettingsError,
    load_settings,
    parse_size,
)
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def clean_env(monkeypatch):
    """No HAR_* or MLFLOW_TRACKING_URI variable from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("HAR_") or name == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_are_the_documented_ones(clean_env):
    settings = load_settings()
    assert settings.model_uri == "models:/har_cnn_bilstm@champion"
    assert settings.model_path is None
    assert settings.tracking_uri == "sqlite:///mlflow.db"
    assert settings.fallback_paths is None
    assert (settings.conf_source, settings.conf_env) == ("conf", "local")
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 8 * 1024 * 1024
    assert settings.reject_repaired is True
    assert settings.predict_threads == 1
    assert settings.api_token is None
    assert settings.metrics_dir is None
    assert settings.monitoring_report == "data/08_reporting/monitoring_report.json"


def test_variables_are_read(clean_env):
    clean_env.setenv("HAR_MODEL_URI", "")
    clean_env.setenv("HAR_MODEL_PATH", "some/bundle")
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    clean_env.setenv("HAR_FALLBACK_PATHS", "a/b:c")
    clean_env.setenv("HAR_MAX_BODY_BYTES", "512 KiB")
    clean_env.setenv("HAR_REJECT_REPAIRED", "off")
    clean_env.setenv("HAR_PREDICT_THREADS", "3")
    settings = ServingSettings.from_env()
    assert settings.model_uri is None
    assert settings.model_path == "some/bundle"
    assert settings.tracking_uri == "http://mlflow:5000"
    assert settings.fallback_paths == ("a/b", "c")
    assert settings.max_body_bytes == 512 * 1024
    assert settings.reject_repaired is False
    assert settings.predict_threads == 3
    # HAR_TRACKING_URI wins over MLflow's own variable.
    clean_env.setenv("HAR_TRACKING_URI", "sqlite:///other.db")
    assert load_settings().tracking_uri == "sqlite:///other.db"
    # Keyword arguments win over the environment.
    assert load_settings(tracking_uri="file:x", max_body_bytes=10).tracking_uri == "file:x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8388608", 8388608),
        ("8MiB", 8 * 1024**2),
        ("8 mib", 8 * 1024**2),
        ("512KiB", 512 * 1024),
        ("8MB", 8_000_000),
        ("1GiB", 1024**3),
        ("2 gb", 2_000_000_000),
        ("100B", 100),
        (4096, 4096),
    ],
)
def test_sizes_with_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["8 mebibytes", "8.5MiB", "MiB", "-1", "0", "8 MiB extra", "1e6"])
def test_bad_sizes_name_the_variable_and_the_form(clean_env, text):
    clean_env.setenv("HAR_MAX_BODY_BYTES", text)
    with pytest.raises(SettingsError, match=r"HAR_MAX_BODY_BYTES: .*8MiB") as caught:
        load_settings()
    # One clear message, no pydantic error chained to it.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_bad_flags_and_integers_name_their_variables(clean_env):
    clean_env.setenv("HAR_REJECT_REPAIRED", "maybe")
    clean_env.setenv("HAR_PREDICT_THREADS", "two")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "HAR_REJECT_REPAIRED: Input should be a valid boolean" in message
    assert "HAR_PREDICT_THREADS: Input should be a valid integer" in message
    clean_env.delenv("HAR_REJECT_REPAIRED")
    clean_env.setenv("HAR_PREDICT_THREADS", "0")
    with pytest.raises(SettingsError, match="HAR_PREDICT_THREADS: Input should be greater"):
        load_settings()


def test_token_is_secret(clean_env):
    clean_env.setenv("HAR_API_TOKEN", "planted-token-51d2")
    clean_env.setenv("HAR_PREDICT_THREADS", "x")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "planted-token-51d2" not in str(caught.value)
    clean_env.delenv("HAR_PREDICT_THREADS")
    settings = load_settings()
    assert settings.api_token.get_secret_value() == "planted-token-51d2"
    assert "planted-token-51d2" not in repr(settings) + str(settings)
    assert "planted-token-51d2" not in settings.model_dump_json()
    clean_env.setenv("HAR_API_TOKEN", "")
    assert load_settings().api_token is None


def test_importing_the_app_with_bad_settings_fails_with_one_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAR_")}
    env.update(PYTHONPATH=str(PROJECT_ROOT / "src"), HAR_MAX_BODY_BYTES="8 mebibytes")
    result = subprocess.run(
        [sys.executable, "-c", "import har_mlops.serving.app"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "HAR_MAX_BODY_BYTES" in result.stderr and "8MiB" in result.stderr
    assert "Traceback" not in result.stderr
    assert "pydantic" not in result.stderr
