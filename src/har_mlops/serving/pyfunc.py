"""The servable MLflow model: inference preprocessing + Keras model as one pyfunc.

kedro-mlflow's ``KedroPipelineModel`` would serve the same nodes, but it deep-copies its
catalog, Keras model included, on every ``predict``. Measured on the 2-core machine with the
shipped model (data/06_models/pretrained): ``copy.deepcopy`` of the loaded bundle 161-237 ms
(min-median of 20), against 2.6 ms for one compiled single-window forward call (median of 200;
``model.predict`` 105 ms), with another training job on the same cores. The copy would
dominate every request, so this small pyfunc calls the same node functions through
:class:`~har_mlops.serving.predictor.ActivityPredictor` instead.
"""

from __future__ import annotations

import json
import logging
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from har_mlops.contract import CHANNELS
from har_mlops.model_io import (
    CONFIG_ARTIFACT,
    CONFIG_FILE,
    KERAS_ARTIFACT,
    MODEL_FILE,
    load_keras,
    save_bundle_folder,
)

from .predictor import (
    RECORDING_COLUMN,
    SAMPLE_COLUMNS,
    TIMESTAMP_COLUMN,
    UNIT_KEYS,
    ActivityPredictor,
)

logger = logging.getLogger(__name__)

EXAMPLE_SECONDS = 3.0

# The package folder (src/har_mlops), logged with the model as ``code/har_mlops`` so that the
# pyfunc loads where har_mlops is not installed (``mlflow models serve``/``build-docker``).
PACKAGE_DIR = Path(__file__).resolve().parents[1]

# Distributions the pyfunc imports when it loads and predicts, pinned at log time to the
# installed versions. Listed, not inferred: MLflow's inference loads the model in a subprocess
# (minutes on two cores), listed the local editable ``har-mlops`` and left out tensorflow.
# kedro, dask, fastapi... are here because har_mlops modules import them at module level.
# scripts/check_model_environment.py checks that nothing imported is missing.
MODEL_DISTRIBUTIONS = (
    "mlflow",
    "cloudpickle",
    "tensorflow",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "scipy",
    "kedro",
    "matplotlib",
    "plotly",
    "ipython",
    "fastapi",
    "pydantic",
    "dask",
    "distributed",
    "psutil",
    "fitdecode",
    "prometheus-client",
    "pydantic-settings",
)


def model_requirements() -> list[str]:
    """``name==version`` of each of MODEL_DISTRIBUTIONS that is installed here."""
    pins = []
    for name in MODEL_DISTRIBUTIONS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            logger.warning("%s is not installed: left out of the model's requirements", name)
    return pins


def default_units(serving: dict[str, Any]) -> dict[str, str]:
    """The unit params a call may override, with the configured defaults."""
    return {key: str(serving["raw_source"][key]) for key in UNIT_KEYS}


class ActivityPyfunc(mlflow.pyfunc.PythonModel):
    """Unlabelled sample table in, one row per window out (``predict_activities``' columns)."""

    def load_context(self, context: Any) -> None:
        """Builds the predictor from the logged Keras model and preprocessing configuration."""
        config = json.loads(Path(context.artifacts[CONFIG_ARTIFACT]).read_text())
        self.predictor = ActivityPredictor.from_config(
            load_keras(context.artifacts[KERAS_ARTIFACT]), config, {"kind": "mlflow pyfunc"}
        )

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Per-window predictions; ``params`` declare ``accelerometer_unit``/``gyroscope_unit``."""
        units = {key: (params or {}).get(key) for key in UNIT_KEYS}
        windows, _ = self.predictor.predict(pd.DataFrame(model_input), units)
        return windows


def example_samples(contract: dict[str, Any], seconds: float = EXAMPLE_SECONDS) -> pd.DataFrame:
    """A short, still, synthetic recording in SI units: enough samples for one window."""
    rate = float(contract["target_rate_hz"])
    n = max(int(round(seconds * rate)), int(contract["window_size"])) + 1
    t = np.arange(n) * 1000.0 / rate
    wobble = 0.05 * np.sin(2 * np.pi * t / 1000.0)
    table = pd.DataFrame({TIMESTAMP_COLUMN: 1_767_261_600_000.0 + t})
    for channel, base in zip(CHANNELS, (0.0, 0.0, 9.80665, 0.0, 0.0, 0.0)):
        table[channel] = base + wobble
    return table


def model_signature(contract: dict[str, Any], serving: dict[str, Any]) -> Any:
    """Inputs (``recording_id`` optional), per-window outputs and the unit params."""
    from mlflow.models import infer_signature
    from mlflow.types import ColSpec, Schema

    example = example_samples(contract)
    signature = infer_signature(example, params=default_units(serving))
    signature.inputs = Schema(
        [ColSpec("double", name) for name in SAMPLE_COLUMNS]
        + [ColSpec("string", RECORDING_COLUMN, required=False)]
    )
    signature.outputs = Schema(
        [
            ColSpec("string", "recording_id"),
            ColSpec("double", "window_start_ms"),
            ColSpec("double", "window_end_ms"),
            ColSpec("string", "activity"),
            ColSpec("float", "confidence"),
            *[ColSpec("float", f"p_{name}") for name in contract["class_names"]],
            ColSpec("boolean", "low_confidence"),
        ]
    )
    return signature


def log_activity_model(
    model: Any,
    config: dict[str, Any],
    name: str = "model",
    metadata: dict[str, Any] | None = None,
) -> Any:
    """Logs the pyfunc to the active MLflow run; returns its ``ModelInfo``."""
    contract = config["contract"]
    with tempfile.TemporaryDirectory() as tmp:
        # The bundle writer drops the optimizer state, as for the shipped model.
        save_bundle_folder(tmp, model, contract)
        (Path(tmp) / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=ActivityPyfunc(),
            artifacts={
                KERAS_ARTIFACT: str(Path(tmp) / MODEL_FILE),
                CONFIG_ARTIFACT: str(Path(tmp) / CONFIG_FILE),
            },
            signature=model_signature(contract, config["serving"]),
            input_example=(example_samples(contract), default_units(config["serving"])),
            metadata=metadata,
            code_paths=[str(PACKAGE_DIR)],
            pip_requirements=model_requirements(),
        )
