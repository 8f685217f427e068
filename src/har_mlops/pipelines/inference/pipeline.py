"""Wiring of the inference pipeline: a study folder, recording by recording, on Dask."""

from kedro.pipeline import Node, Pipeline

from har_mlops.pipelines.data_processing.nodes import (
    assign_labels,
    convert_units,
    resample_recordings,
    validate_recordings,
    window_samples,
)

from .chunking import continue_segments, keep_chunk_range, next_chunk_context, place_on_grid
from .study import (
    chain_settings,
    collect_minutes,
    plan_recordings,
    plot_study_actogram,
    plot_study_daily_minutes,
    predict_recordings,
    render_study_report,
    report_run,
    score_recordings,
    summarise_days,
    summarise_recordings_table,
)


def create_chunk_pipeline() -> Pipeline:
    """The chain every Dask task runs on each time chunk of its recording (``run_chain``).

    Registered as ``inference_chunk`` so that kedro-viz shows it; its inputs come from the
    task (a chunk of raw samples, what the previous chunk left), not from the catalog.
    """
    return Pipeline(
        [
            Node(
                validate_recordings,
                inputs=[
                    "raw_chunk",
                    "params:inference.raw_source",
                    "params:validation",
                    "params:resampling",
                    "params:windowing",
                ],
                outputs=["validated_chunk", "chunk_validation_report"],
                name="validate_chunk",
            ),
            Node(
                place_on_grid,
                inputs=["validated_chunk", "chunk_context"],
                outputs="gridded_chunk",
                name="place_on_grid",
            ),
            Node(
                resample_recordings,
                inputs=["gridded_chunk", "params:resampling"],
                outputs="resampled_chunk",
                name="resample_chunk",
            ),
            Node(
                keep_chunk_range,
                inputs=["resampled_chunk", "chunk_context"],
                outputs="kept_chunk",
                name="keep_chunk_range",
            ),
            Node(
                convert_units,
                inputs=["kept_chunk", "params:inference.raw_source"],
                outputs="converted_chunk",
                name="convert_chunk_units",
            ),
            Node(
                assign_labels,
                inputs=["converted_chunk", "gridded_chunk", "params:inference.raw_source"],
                outputs="labelled_chunk",
                name="label_chunk",
            ),
            Node(
                continue_segments,
                inputs=["labelled_chunk", "chunk_context", "params:resampling"],
                outputs="continued_chunk",
                name="continue_segments",
            ),
            Node(
                window_samples,
                inputs=["continued_chunk", "params:windowing"],
                outputs="chunk_windows",
                name="window_chunk",
            ),
            Node(
                next_chunk_context,
                inputs=["continued_chunk", "chunk_context", "params:windowing"],
                outputs="next_chunk_context",
                name="next_chunk_context",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    """Plan (skip what is done), predict each recording on Dask, then days, figures, report.

    ``predict_recordings`` runs the per-recording chain of the project's node functions
    (validate, resample, convert units, label, window, contract check, predict, smooth,
    non-wear, per-day sums) on each recording, one time chunk at a time; see
    ``har_mlops.pipelines.inference.cohort``.
    """
    return Pipeline(
        [
            Node(
                chain_settings,
                inputs=[
                    "params:inference.raw_source",
                    "params:validation",
                    "params:resampling",
                    "params:windowing",
                    "params:labels",
                    "params:inference.prediction",
                    "params:smoothing",
                    "params:inference.non_wear",
                    "params:inference.cohort",
                ],
                outputs="cohort_settings",
                name="chain_settings",
            ),
            Node(
                plan_recordings,
                inputs=[
                    "inference_recordings",
                    "previous_recording_outputs",
                    "model_bundle",
                    "activity_transitions",
                    "cohort_settings",
                ],
                outputs="recording_plan",
                name="plan_recordings",
            ),
            Node(
                predict_recordings,
                inputs=[
                    "recording_plan",
                    "model_bundle",
                    "activity_transitions",
                    "cohort_settings",
                ],
                outputs="recording_outputs",
                name="predict_recordings",
            ),
            Node(
                report_run,
                inputs=["recording_plan", "recording_outputs"],
                outputs=["inference_run", "inference.validation_report"],
                name="report_run",
            ),
            Node(
                summarise_recordings_table,
                inputs="recording_outputs",
                outputs="recording_summaries",
                name="summarise_recordings",
            ),
            Node(
                summarise_days,
                inputs=["recording_outputs", "model_bundle"],
                outputs="daily_activity",
                name="summarise_days",
            ),
            Node(
                collect_minutes,
                inputs="recording_outputs",
                outputs="activity_minutes",
                name="collect_minutes",
            ),
            Node(
                plot_study_actogram,
                inputs=["activity_minutes", "model_bundle"],
                outputs="actogram",
                name="plot_actogram",
            ),
            Node(
                plot_study_daily_minutes,
                inputs=["daily_activity", "model_bundle"],
                outputs="daily_minutes_plot",
                name="plot_daily_minutes",
            ),
            Node(
                render_study_report,
                inputs=["daily_activity", "actogram", "daily_minutes_plot", "inference_run"],
                outputs="study_report",
                name="render_study_report",
            ),
            Node(
                score_recordings,
                inputs=["recording_outputs", "model_bundle"],
                outputs="inference_scores",
                name="score_predictions",
            ),
        ]
    )
