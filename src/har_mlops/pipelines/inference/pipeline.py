"""Wiring of the inference pipeline."""

from kedro.pipeline import Node, Pipeline

from har_mlops.pipelines.data_processing import create_preprocessing_pipeline

from .nodes import (
    check_contract,
    plot_timelines,
    predict_activities,
    score_predictions,
    summarise_recordings,
)

# Shared with training: these define the model's input and must not differ per source.
SHARED_PARAMETERS = {"params:validation", "params:resampling", "params:windowing"}


def create_pipeline(**kwargs) -> Pipeline:
    """New recordings through the training preprocessing (by namespace), then the model."""
    preprocessing = Pipeline(
        create_preprocessing_pipeline(),
        namespace="inference",
        inputs={"raw_recordings": "inference_recordings"},
        parameters=SHARED_PARAMETERS,
    )
    # Same namespace: prediction nodes read `inference.windows`, params `inference.prediction`.
    return preprocessing + Pipeline(
        [
            Node(
                check_contract,
                inputs=[
                    "model_bundle",
                    "windows",
                    "params:windowing",
                    "params:resampling",
                    "params:labels",
                ],
                outputs="contract",
                name="check_contract",
            ),
            Node(
                predict_activities,
                inputs=[
                    "model_bundle",
                    "windows",
                    "contract",
                    "params:prediction",
                ],
                outputs="window_predictions",
                name="predict_activities",
            ),
            Node(
                summarise_recordings,
                inputs=["window_predictions", "validation_report", "contract"],
                outputs="recording_summaries",
                name="summarise_recordings",
            ),
            Node(
                plot_timelines,
                inputs=["window_predictions", "contract"],
                outputs="activity_timelines",
                name="plot_timelines",
            ),
            Node(
                score_predictions,
                inputs=["window_predictions", "windows", "contract"],
                outputs="inference_scores",
                name="score_predictions",
            ),
        ],
        namespace="inference",
        inputs={"model_bundle"},
        outputs={
            "window_predictions",
            "recording_summaries",
            "activity_timelines",
            "inference_scores",
        },
        parameters={"params:windowing", "params:resampling", "params:labels"},
    )
