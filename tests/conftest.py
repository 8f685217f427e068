"""Shared fixtures: default parameters, wearable-export writers, a throw-away project copy.

Every test and every test module runs inside :func:`isolated_process_state`, so that what a
Kedro session, kedro-mlflow or a test leaves in the process (``MLFLOW_*``/``HAR_*`` variables,
MLflow's tracking/registry URI, experiment and active runs, TensorFlow op determinism) cannot
change the results of the tests that run after it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from har_mlops.units import STANDARD_GRAVITY

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PARAMETERS_FILE = PROJECT_ROOT / "conf" / "base" / "parameters_data_processing.yml"
HAPT_ZIP = PROJECT_ROOT / "data" / "01_raw" / "hapt_rawdata.zip"

# A realistic epoch-milliseconds clock start for synthetic wearable exports.
EPOCH_MS = 1_700_000_000_000

Frame = pd.DataFrame | str | None


# --------------------------------------------------------------------------- process state

ENV_PREFIXES = ("MLFLOW_", "HAR_")


# A network small enough to build and run in milliseconds (inference and cohort tests).
TINY_ARCHITECTURE = {
    "conv_filters": [4],
    "conv_kernel_sizes": [3],
    "pool_after": [0],
    "pool_size": 2,
    "lstm_units": 4,
    "dense_units": 8,
    "dropout": 0.0,
    "window_statistics": True,
}


def _mlflow_state() -> dict[str, Any] | None:
    """MLflow's process-wide URIs, experiment and active runs (None: mlflow not imported)."""
    if "mlflow" not in sys.modules:
        return None
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils
    from mlflow.tracking import fluent

    return {
        "tracking_uri": tracking_utils._tracking_uri,
        "registry_uri": registry_utils._registry_uri,
        "experiment_id": fluent._active_experiment_id,
        "run_ids": {run.info.run_id for run in fluent._active_run_stack.get()},
    }


def _restore_mlflow(saved: dict[str, Any] | None) -> None:
    if "mlflow" not in sys.modules:
        return
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils
    from mlflow.tracking import fluent

    saved = saved or {"tracking_uri": None, "registry_uri": None, "experiment_id": None}
    kept = saved.get("run_ids", set())
    stack = fluent._active_run_stack.get()
    # End the runs this scope started (kedro-mlflow may leave one open, even twice on the
    # stack), while the tracking URI still points at their store.
    for _ in range(len(stack)):
        if not stack or stack[-1].info.run_id in kept:
            break
        try:
            fluent.end_run()
        except Exception:  # its store is gone: forget the run
            if stack:
                stack.pop()
    tracking_utils._tracking_uri = saved["tracking_uri"]
    registry_utils._registry_uri = saved["registry_uri"]
    fluent._active_experiment_id = saved["experiment_id"]


def _op_determinism() -> bool:
    """Whether TensorFlow's op determinism is on (False while TensorFlow is not imported)."""
    if "tensorflow" not in sys.modules:
        return False
    from tensorflow.python.framework import config as tf_config

    return bool(tf_config.is_op_determinism_enabled())


def _restore_op_determinism(enabled: bool) -> None:
    # There is no public "disable": a test that trains with deterministic_ops should do it
    # in a subprocess; this only stops one that does not from changing later tests.
    if "tensorflow" not in sys.modules or _op_determinism() == enabled:
        return
    from tensorflow.python.framework import config as tf_config

    (tf_config.enable_op_determinism if enabled else tf_config.disable_op_determinism)()


@contextlib.contextmanager
def isolated_process_state() -> Iterator[None]:
    """Restores ``MLFLOW_*``/``HAR_*`` variables, MLflow's globals and op determinism on exit."""
    environment = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    mlflow_state = _mlflow_state()
    determinism = _op_determinism()
    try:
        yield
    finally:
        _restore_mlflow(mlflow_state)
        _restore_op_determinism(determinism)
        for name in [k for k in os.environ if k.startswith(ENV_PREFIXES)]:
            if name not in environment:
                del os.environ[name]
        os.environ.update(environment)


@pytest.fixture(autouse=True, scope="module")
def _isolated_module():
    """Module-scoped fixtures (a training run, a logged model) are undone with their module."""
    with isolated_process_state():
        yield


@pytest.fixture(autouse=True)
def _isolated_test():
    with isolated_process_state():
        yield


# --------------------------------------------------------------------------- parameters


@pytest.fixture(scope="session")
def _base_parameters() -> dict[str, Any]:
    """conf/base/parameters_data_processing.yml with its ``${globals:...}`` resolved."""
    from kedro.config import OmegaConfigLoader

    with PARAMETERS_FILE.open() as handle:
        groups = set(yaml.safe_load(handle))
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base")
    return {name: value for name, value in loader["parameters"].items() if name in groups}


@pytest.fixture
def parameters(_base_parameters) -> dict[str, Any]:
    """A fresh deep copy of conf/base/parameters_data_processing.yml (tests may mutate it)."""
    return copy.deepcopy(_base_parameters)


@pytest.fixture
def raw_source(parameters) -> dict[str, Any]:
    return parameters["raw_source"]


@pytest.fixture
def si_raw_source(parameters) -> dict[str, Any]:
    """The default raw_source, declared as already in SI units (m/s^2, rad/s)."""
    return {**parameters["raw_source"], "accelerometer_unit": "m/s^2", "gyroscope_unit": "rad/s"}


@pytest.fixture
def validation_params(parameters) -> dict[str, Any]:
    return parameters["validation"]


@pytest.fixture
def resampling(parameters) -> dict[str, Any]:
    return parameters["resampling"]


@pytest.fixture
def windowing(parameters) -> dict[str, Any]:
    return parameters["windowing"]


@pytest.fixture
def labels_params(parameters) -> dict[str, Any]:
    return parameters["labels"]


@pytest.fixture
def split_params(parameters) -> dict[str, Any]:
    return parameters["split"]


# --------------------------------------------------------------------------- recordings


def _write(path: Path, content: Frame) -> None:
    if content is None:
        return
    if isinstance(content, pd.DataFrame):
        content.to_csv(path, index=False)
    else:
        path.write_text(content)


def write_recording(
    root: Path,
    rec_id: str,
    acc: Frame,
    gyro: Frame,
    labels: Frame = None,
    metadata: dict[str, Any] | str | None = None,
) -> Path:
    """Writes ``<root>/<rec_id>/{accelerometer,gyroscope,labels}.csv`` and ``metadata.json``.

    Each stream may be a DataFrame (written with ``to_csv(index=False)``), raw text (written
    as is, so tests can write empty files, header-only files, garbage rows) or ``None`` (the
    file is not written). ``metadata`` may be a dict (JSON-encoded) or raw text.
    """
    folder = Path(root) / rec_id
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "accelerometer.csv", acc)
    _write(folder / "gyroscope.csv", gyro)
    _write(folder / "labels.csv", labels)
    if metadata is not None:
        text = metadata if isinstance(metadata, str) else json.dumps(metadata)
        (folder / "metadata.json").write_text(text)
    return folder


def make_recording(
    duration_s: float = 10.0,
    rate_hz: float = 50.0,
    start_ms: int = EPOCH_MS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A clean synthetic recording: two streams on the same exact grid, known signals.

    With ``t`` in seconds since ``start_ms``: accelerometer x = sin(2*pi*t), y = 0.5*t,
    z = 9.80665 (gravity in m/s^2, so that the unit check at rest passes); gyroscope x = cos(2*pi*t), y = -0.1*t, z = 0.2. Timestamps are integer ms.
    """
    n = int(round(duration_s * rate_hz)) + 1
    offsets = np.round(np.arange(n) * 1000.0 / rate_hz).astype(np.int64)
    t = offsets / 1000.0
    timestamp = start_ms + offsets
    acc = pd.DataFrame(
        {
            "timestamp": timestamp,
            "x": np.sin(2 * np.pi * t),
            "y": 0.5 * t,
            "z": np.full(n, STANDARD_GRAVITY),
        }
    )
    gyro = pd.DataFrame(
        {"timestamp": timestamp, "x": np.cos(2 * np.pi * t), "y": -0.1 * t, "z": np.full(n, 0.2)}
    )
    return acc, gyro


def to_csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


@pytest.fixture(name="write_recording")
def write_recording_fixture() -> Callable[..., Path]:
    return write_recording


@pytest.fixture(name="make_recording")
def make_recording_fixture() -> Callable[..., tuple[pd.DataFrame, pd.DataFrame]]:
    return make_recording


# --------------------------------------------------------------------------- Kedro project


def make_project_copy(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throw-away copy of the project (pyproject, conf, the HAPT zip) under ``root``.

    Every configuration environment is copied except ``conf/local`` (credentials), which is
    left empty. The package itself is imported from the editable install; ``src/`` only has
    to exist. Process-wide state a Kedro session touches (cwd, sys.path, PYTHONPATH, MLflow
    URIs and active runs) is saved in ``monkeypatch`` and restored when it is undone.
    """
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistrySqlStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingSqlStore
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry.registry import ModelRegistryStoreRegistry
    from mlflow.tracking._tracking_service.registry import TrackingStoreRegistry
    from mlflow.utils.thread_utils import ThreadLocalVariable

    project = root / "project"
    (project / "src").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    for env in (PROJECT_ROOT / "conf").iterdir():
        if env.is_dir() and env.name != "local":
            shutil.copytree(env, project / "conf" / env.name)
    (project / "conf" / "local").mkdir()
    (project / "data" / "01_raw").mkdir(parents=True)
    (project / "data" / "01_raw" / HAPT_ZIP.name).symlink_to(HAPT_ZIP)

    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "1")
    # kedro-mlflow leaves the experiment of an earlier session in the environment; it does
    # not exist in a fresh copy's store. ``delenv`` of an absent variable records nothing, so
    # a value the session sets later would outlive the copy: ``setenv`` first records it
    # (absent or not), and undoing both restores exactly what was there.
    for name in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_RUN_ID",
    ):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
    # kedro-mlflow 2.0.3 re-opens the pipeline's run before every node (start_run with the
    # active run's id, nested=True), which mlflow 3.17 pushes onto its active-run stack again;
    # after_pipeline_run pops one entry only. Give each copy its own stack so a leftover
    # "active" run cannot leak into the next KedroSession of this process.
    monkeypatch.setattr(fluent, "_active_run_stack", ThreadLocalVariable(default_factory=list))
    monkeypatch.setattr(fluent, "_active_experiment_id", fluent._active_experiment_id)
    # MLflow caches stores and SQLAlchemy engines by URI string; the relative
    # sqlite:///mlflow-test.db of an earlier copy would otherwise keep pointing at (and keep
    # pooled connections to) that copy's database.
    TrackingStoreRegistry._get_store_with_resolved_uri.cache_clear()
    ModelRegistryStoreRegistry._get_store_with_resolved_uri.cache_clear()
    monkeypatch.setattr(TrackingSqlStore, "_engine_map", {})
    monkeypatch.setattr(RegistrySqlStore, "_engine_map", {})
    return project


@pytest.fixture
def project_copy(tmp_path, monkeypatch) -> Path:
    """A throw-away project copy in ``tmp_path`` for one test (see make_project_copy)."""
    return make_project_copy(tmp_path, monkeypatch)
