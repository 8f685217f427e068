"""Project pipelines.

Each pipeline's ``create_pipeline`` is imported explicitly: since Kedro 1.5 ``--pipelines X``
imports only X, so a registry that indexes ``find_pipelines()`` breaks for every X.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from har_mlops.pipelines import data_processing, inference, monitoring, training


def register_pipelines() -> dict[str, Pipeline]:
    """Registers the project's pipelines by name; ``__default__`` runs them all."""
    reference = monitoring.create_reference_pipeline()
    pipelines = {
        "data_processing": data_processing.create_pipeline(),
        # Every training run refreshes the monitoring reference of the model it trains.
        "training": training.create_pipeline() + reference,
        "inference": inference.create_pipeline(),
        "monitoring": monitoring.create_pipeline(),
        "monitoring_reference": reference,
    }
    # Pipelines are sets of nodes: the reference nodes in both `training` and
    # `monitoring_reference` are the same nodes and run once.
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    # What each inference task runs on every time chunk of a recording: registered so that
    # kedro-viz shows it, left out of __default__ (its inputs come from the task).
    pipelines["inference_chunk"] = inference.create_chunk_pipeline()
    return pipelines
