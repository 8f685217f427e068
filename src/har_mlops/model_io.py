"""Model files: the bundle folder (Keras model + contract), and models logged to MLflow.

One place for the file names, the custom-layer registration and the optimizer-free save, used
by the model bundle dataset, the MLflow pyfunc and the serving loader alike.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MODEL_FILE = "har_cnn_bilstm.keras"
CONTRACT_FILE = "model_contract.json"
# Artifact names inside the logged pyfunc (see serving/pyfunc.py).
KERAS_ARTIFACT = "keras_model"
CONFIG_ARTIFACT = "predictor_config"
CONFIG_FILE = "predictor_config.json"


def load_keras(path: str | Path) -> Any:
    """Loads a ``.keras`` file with the project's custom layers registered."""
    import keras

    import har_mlops.layers  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(path)


def _carries_optimizer(model: Any) -> bool:
    """Whether ``model`` or a network nested in it (an ensemble's members) has an optimizer."""
    if getattr(model, "optimizer", None) is not None:
        return True
    return any(_carries_optimizer(layer) for layer in getattr(model, "layers", []))


def _without_compile_configs(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the compile configuration of every nested network removed (rebuilt
    from it, an ensemble's members would be compiled again, optimizer and all)."""
    for layer in config.get("layers", []):
        layer.pop("compile_config", None)
        if isinstance(layer.get("config"), dict):
            _without_compile_configs(layer["config"])
    return config


def save_keras(model: Any, path: str | Path) -> None:
    """Saves the model without its optimizer state (predicting needs the weights only)."""
    if _carries_optimizer(model):
        # The optimizer's moment estimates would triple the file the project ships.
        weights = model.get_weights()
        model = model.__class__.from_config(_without_compile_configs(model.get_config()))
        model.set_weights(weights)
    model.save(path)


def is_bundle_folder(folder: str | Path) -> bool:
    """A folder holding both the Keras model and its contract."""
    folder = Path(folder)
    return (folder / MODEL_FILE).is_file() and (folder / CONTRACT_FILE).is_file()


class ModelBundle(Mapping):
    """A bundle folder's ``{"model", "contract", "source", "model_file"}``, the model loaded lazily.

    Reading the contract or the file's path does not import TensorFlow (~0.8 GB resident): a
    process that only ships the model file to Dask workers never pays for it.
    """

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        self._model: Any = None
        self._fields = {
            "contract": json.loads((folder / CONTRACT_FILE).read_text()),
            "source": str(folder / MODEL_FILE),
            "model_file": str(folder / MODEL_FILE),
        }

    def __getitem__(self, key: str) -> Any:
        if key == "model":
            if self._model is None:
                self._model = load_keras(self._fields["model_file"])
            return self._model
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(["model", *self._fields])

    def __len__(self) -> int:
        return len(self._fields) + 1


def load_bundle_folder(folder: str | Path) -> dict[str, Any]:
    """``{"model", "contract", "source"}`` from a bundle folder."""
    folder = Path(folder)
    return {
        "model": load_keras(folder / MODEL_FILE),
        "contract": json.loads((folder / CONTRACT_FILE).read_text()),
        "source": str(folder / MODEL_FILE),
    }


def save_bundle_folder(folder: str | Path, model: Any, contract: dict[str, Any]) -> None:
    """Writes the Keras model (optimizer-free) and its contract into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_keras(model, folder / MODEL_FILE)
    (folder / CONTRACT_FILE).write_text(json.dumps(contract, indent=2) + "\n")


def load_logged_model(model_uri: str) -> dict[str, Any]:
    """Keras model, contract and predictor configuration of a logged model, by URI."""
    import mlflow
    from mlflow.models import Model

    # Plain mlflow.keras models registered before the pyfunc load too (config None then).
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        mlmodel = Model.load(str(model_dir))
        artifacts = mlmodel.flavors.get("python_function", {}).get("artifacts") or {}
        config = None
        if KERAS_ARTIFACT in artifacts:
            model = load_keras(model_dir / artifacts[KERAS_ARTIFACT]["path"])
            config = json.loads((model_dir / artifacts[CONFIG_ARTIFACT]["path"]).read_text())
        elif "keras" in mlmodel.flavors:
            import har_mlops.layers  # noqa: F401  (registers the custom layers)

            model = mlflow.keras.load_model(str(model_dir))
        else:
            raise mlflow.exceptions.MlflowException(
                f"{model_uri} is neither a har_mlops pyfunc nor a Keras model "
                f"(flavors {sorted(mlmodel.flavors)})"
            )
    contract = (mlmodel.metadata or {}).get("preprocessing_contract")
    if contract is None and config is not None:
        contract = config["contract"]
    return {"model": model, "contract": contract, "config": config, "run_id": mlmodel.run_id}
