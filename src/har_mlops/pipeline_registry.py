"""Project pipelines.

Each pipeline's ``create_pipeline`` is imported explicitly: since Kedro 1.5 ``--pipelines X``
imports only X, so a registry that indexes ``find_pipelines()`` breaks for every X.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from har_mlops.pipelines import data_processing, inference, training


def register_pipelines() -> dict[str, Pipeline]:
    """Registers the project's pipelines by name; ``__default__`` runs them all."""
    pipelines = {
        "data_processing": data_processing.create_pipeline(),
        "training": training.create_pipeline(),
        "inference": inference.create_pipeline(),
    }
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    return pipelines
