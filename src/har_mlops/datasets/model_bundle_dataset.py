"""Loads a trained model together with its preprocessing contract, locally or from MLflow."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from har_mlops.model_io import (
    CONTRACT_FILE,
    MODEL_FILE,
    ModelBundle,
    is_bundle_folder,
    load_logged_model,
    save_bundle_folder,
)

logger = logging.getLogger(__name__)


class ModelBundleDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """``{"model": keras.Model, "contract": dict, "source": str}`` from one of two places.

    A local bundle also has ``model_file`` and loads its Keras model on first access only.

    ``source: local`` tries each folder of ``paths`` in order and takes the first holding both
    ``har_cnn_bilstm.keras`` and ``model_contract.json``: by default the last trained model
    (``data/06_models``) and else the shipped pretrained one. ``source: registry`` loads
    ``model_uri`` (e.g. ``models:/har_cnn_bilstm@champion``) from MLflow, whose logged model
    carries the contract in its metadata. Saving (training) writes to the first of ``paths``.
    """

    def __init__(
        self,
        source: str = "local",
        paths: list[str] | None = None,
        model_uri: str | None = None,
        metadata: dict | None = None,
    ):
        if source not in {"local", "registry"}:
            raise DatasetError(
                f"ModelBundleDataset source must be local or registry, not {source!r}"
            )
        self._source = source
        self._paths = [Path(p) for p in (paths or [])]
        self._model_uri = model_uri
        self.metadata = metadata

    def _load(self) -> dict[str, Any]:
        if self._source == "registry":
            return self._load_registry()
        for folder in self._paths:
            if is_bundle_folder(folder):
                logger.info("Using the model in %s", folder)
                return ModelBundle(folder)
        raise DatasetError(
            f"No model bundle ({MODEL_FILE} + {CONTRACT_FILE}) in any of "
            f"{[str(p) for p in self._paths]}; run `kedro run --pipelines training` first"
        )

    def _load_registry(self) -> dict[str, Any]:
        import mlflow

        # The registered model is the serving pyfunc; its Keras file is one of its artifacts.
        try:
            logged = load_logged_model(self._model_uri)
        except mlflow.exceptions.MlflowException as exc:
            raise DatasetError(f"Cannot load {self._model_uri} from MLflow: {exc}") from exc
        if logged["contract"] is None:
            raise DatasetError(f"{self._model_uri} carries no preprocessing_contract metadata")
        logger.info("Using %s (run %s)", self._model_uri, logged["run_id"])
        return {"model": logged["model"], "contract": logged["contract"], "source": self._model_uri}

    def _save(self, data: dict[str, Any]) -> None:
        if self._source == "registry":
            raise DatasetError(
                "Registry bundles are written by the training pipeline's register_model"
            )
        save_bundle_folder(self._paths[0], data["model"], data["contract"])

    def _describe(self) -> dict[str, Any]:
        return {
            "source": self._source,
            "paths": [str(p) for p in self._paths],
            "model_uri": self._model_uri,
        }


class StartingModelDataset(AbstractDataset[None, dict[str, Any]]):
    """The model bundle a training run starts from, or ``{}`` to train from scratch.

    ``init_from`` is empty (from scratch), ``pretrained`` (the model shipped with the project,
    in ``pretrained``), an MLflow URI (``models:/har_cnn_bilstm@champion``, ``runs:/...``) or
    the path of a bundle folder (``har_cnn_bilstm.keras`` + ``model_contract.json``).
    """

    def __init__(
        self, init_from: str | None, pretrained: str, metadata: dict | None = None
    ) -> None:
        self._init_from = None if init_from in (None, "", "none", "scratch") else str(init_from)
        self._pretrained = pretrained
        self.metadata = metadata

    def _load(self) -> dict[str, Any]:
        if self._init_from is None:
            return {}
        if "://" in self._init_from or self._init_from.startswith("models:/"):
            bundle = ModelBundleDataset(source="registry", model_uri=self._init_from).load()
        else:
            folder = self._pretrained if self._init_from == "pretrained" else self._init_from
            if not is_bundle_folder(Path(folder)):
                raise DatasetError(
                    f"init_from {self._init_from!r}: {folder} holds no model bundle "
                    f"({MODEL_FILE} + {CONTRACT_FILE})"
                )
            bundle = ModelBundleDataset(source="local", paths=[folder]).load()
        logger.info("Training starts from the model bundle %s", self._init_from)
        return {"model": bundle["model"], "contract": bundle["contract"], "source": self._init_from}

    def _save(self, data: None) -> None:
        raise DatasetError("StartingModelDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"init_from": self._init_from, "pretrained": self._pretrained}
