"""Where the service gets its model: the MLflow registry, a configured path, or the fallback."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from har_mlops import config
from har_mlops.model_io import is_bundle_folder, load_bundle_folder, load_logged_model
from har_mlops.parameters import PredictorConfig

from .predictor import ActivityPredictor

# Re-exported: tests and scripts import the settings from here.
from .settings import (  # noqa: F401
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MODEL_URI,
    DEFAULT_TRACKING_URI,
    ServingSettings,
    SettingsError,
    load_settings,
)

logger = logging.getLogger(__name__)

METRICS_FILES = ("metrics.json", "evaluation_report.json")
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass
class LoadedModel:
    """The predictor and what /health and /model say about it."""

    predictor: ActivityPredictor
    source: dict[str, Any]
    metrics: dict[str, Any]


def project_parameters(conf_source: str, conf_env: str) -> dict[str, Any]:
    """The Kedro parameters (base + ``conf_env``), as the inference pipeline reads them."""
    return config.project_parameters(conf_source, conf_env)


def fallback_folders(settings: ServingSettings) -> list[str]:
    """Where to look for a local bundle: the settings' paths, else the project's model folders."""
    if settings.fallback_paths is not None:
        return list(settings.fallback_paths)
    return list(config.project_globals(settings.conf_source, settings.conf_env)["model_folders"])


def config_from_parameters(contract: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The predictor configuration the training pipeline logs, from project parameters."""
    return PredictorConfig.from_parameters(
        contract,
        params["validation"],
        params["resampling"],
        params["windowing"],
        params["labels"],
        params["inference"]["prediction"],
        params["serving"],
    ).to_dict()


def is_bundle(folder: Path) -> bool:
    """A folder the inference pipeline can load, or a downloaded MLflow model."""
    return (folder / "MLmodel").is_file() or is_bundle_folder(folder)


def load_local(folder: str | Path, settings: ServingSettings) -> LoadedModel:
    """A local bundle (``har_cnn_bilstm.keras`` + contract) or a downloaded MLflow model folder."""
    folder = Path(folder)
    source = {"kind": "local", "path": str(folder)}
    if (folder / "MLmodel").is_file():
        logged = load_logged_model(str(folder.resolve()))
        model, contract, config = logged["model"], logged["contract"], logged["config"]
    else:
        bundle = load_bundle_folder(folder)
        model, contract, config = bundle["model"], bundle["contract"], None
    if config is None:
        config = config_from_parameters(
            contract, project_parameters(settings.conf_source, settings.conf_env)
        )
    metrics = {}
    for name in METRICS_FILES:
        if (folder / name).is_file():
            metrics = json.loads((folder / name).read_text())
            break
    logger.info("Serving the local model in %s", folder)
    return LoadedModel(ActivityPredictor.from_config(model, config, source), source, metrics)


def load_registry(model_uri: str, settings: ServingSettings) -> LoadedModel:
    """A registered model by ``models:/name@alias`` or ``models:/name/version`` URI."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    source: dict[str, Any] = {"kind": "registry", "uri": model_uri}
    match = _MODELS_URI.match(model_uri)
    if match:
        name, alias, version = match["name"], match["alias"], match["version"]
        if alias:
            # Raises when the alias does not exist: the caller falls back.
            version = client.get_model_version_by_alias(name, alias).version
        source.update({"name": name, "alias": alias, "version": int(version)})
    logged = load_logged_model(model_uri)
    config = logged["config"]
    if config is None:
        config = config_from_parameters(
            logged["contract"], project_parameters(settings.conf_source, settings.conf_env)
        )
    source["run_id"] = logged["run_id"]
    metrics = dict(client.get_run(logged["run_id"]).data.metrics) if logged["run_id"] else {}
    logger.info("Serving %s (run %s)", model_uri, logged["run_id"])
    return LoadedModel(
        ActivityPredictor.from_config(logged["model"], config, source), source, metrics
    )


def load_model(settings: ServingSettings) -> LoadedModel:
    """``model_path`` if set, else ``model_uri`` from the registry, else the local fallback."""
    if settings.model_path:
        return load_local(settings.model_path, settings)
    folders = fallback_folders(settings)
    if settings.model_uri:
        try:
            return load_registry(settings.model_uri, settings)
        except Exception as exc:  # noqa: BLE001  (any registry failure means: fall back)
            logger.warning(
                "Cannot load %s from %s (%s); falling back to the local bundle the inference "
                "pipeline would use (first of %s)",
                settings.model_uri,
                settings.tracking_uri,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                folders,
            )
    for folder in folders:
        if is_bundle(Path(folder)):
            return load_local(folder, settings)
    raise FileNotFoundError(
        f"No model: {settings.model_uri} unavailable and no bundle in {folders}"
    )
