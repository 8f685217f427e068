"""Project hooks: MLflow parameter logging for typed groups, and a summary line per pipeline."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

from har_mlops.parameters import ParameterGroup

logger = logging.getLogger(__name__)


class TypedParamsMlflowHook(MlflowHook):
    """kedro-mlflow's hook, logging typed parameter groups as the nested dicts they came from.

    kedro-mlflow flattens only ``dict`` parameters (``training.seed``, ...); a pydantic group
    would be logged as one truncated string.
    """

    @hook_impl
    def before_node_run(
        self, node: Any, catalog: Any, inputs: dict[str, Any], is_async: bool
    ) -> None:
        """Logs the node's parameters (typed groups as plain dicts) to the active run."""
        plain = {
            name: value.to_dict() if isinstance(value, ParameterGroup) else value
            for name, value in inputs.items()
        }
        # Returning None: the node itself still receives the typed groups.
        super().before_node_run(node, catalog, plain, is_async)


def _saved_location(catalog: Any, name: str) -> str | None:
    """Where a dataset is written (its file path or model URI), if it is persisted."""
    try:
        description = catalog.get(name)._describe()
    except Exception:  # noqa: BLE001  (a dataset that cannot describe itself is not listed)
        return None
    for key in ("filepath", "path", "paths", "model_uri"):
        if description.get(key):
            value = description[key]
            return _relative(str(value[0] if isinstance(value, list | tuple) else value))
    return None


def _relative(location: str) -> str:
    """A path relative to the working directory (the project root in a ``kedro run``)."""
    try:
        return str(Path(location).relative_to(Path.cwd()))
    except ValueError:
        return location


class RunSummaryHook:
    """After a run, one line per registered pipeline that ran: what it produced, where."""

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Logs the persisted outputs of each named pipeline the run contained."""
        from kedro.framework.project import pipelines

        ran = {node.name for node in pipeline.nodes}
        for name in sorted(run_params.get("pipeline_names") or ["__default__"]):
            for part_name, part in _named_parts(pipelines, name):
                if not {node.name for node in part.nodes} <= ran:
                    continue
                saved = {
                    dataset: location
                    for dataset in sorted(part.all_outputs())
                    if (location := _saved_location(catalog, dataset)) is not None
                }
                folders = sorted({location.rsplit("/", 1)[0] for location in saved.values()})
                logger.info(
                    "%s: %d outputs saved (%s) in %s",
                    part_name,
                    len(saved),
                    ", ".join(saved),
                    ", ".join(folders) or "nowhere (all in memory)",
                )


def _named_parts(pipelines: Any, name: str) -> list[tuple[str, Any]]:
    """The registered pipelines a run of ``name`` is made of (itself unless the default)."""
    if name != "__default__":
        return [(name, pipelines[name])]
    return [(key, value) for key, value in pipelines.items() if key != "__default__"]
