"""Wiring of the data_processing pipeline."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    assign_labels,
    convert_units,
    filter_windows_by_class,
    fit_scaler,
    resample_recordings,
    split_windows,
    summarise_windows,
    validate_recordings,
    window_samples,
)


def create_preprocessing_pipeline() -> Pipeline:
    """Raw recordings to windows: the part training and inference share (reused by namespace)."""
    return Pipeline(
        [
            Node(
                validate_recordings,
                inputs=[
                    "raw_recordings",
                    "params:raw_source",
                    "params:validation",
                    "params:resampling",
                    "params:windowing",
                ],
                outputs=["validated_recordings", "validation_report"],
                name="validate_recordings",
            ),
            Node(
                resample_recordings,
                inputs=["validated_recordings", "params:resampling"],
                outputs="resampled_samples",
                name="resample_recordings",
            ),
            Node(
                convert_units,
                inputs=["resampled_samples", "params:raw_source"],
                outputs="converted_samples",
                name="convert_units",
            ),
            Node(
                assign_labels,
                inputs=["converted_samples", "validated_recordings", "params:raw_source"],
                outputs="samples",
                name="assign_labels",
            ),
            Node(
                window_samples,
                inputs=["samples", "params:windowing"],
                outputs="windows",
                name="window_samples",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    """Training data: validated, windowed, class-filtered, subject-split, with a fitted scaler."""
    return create_preprocessing_pipeline() + Pipeline(
        [
            Node(
                filter_windows_by_class,
                inputs=["windows", "params:labels"],
                outputs="labelled_windows",
                name="filter_windows_by_class",
            ),
            Node(
                split_windows,
                inputs=["labelled_windows", "params:split"],
                outputs=["windows_train", "windows_validation", "windows_test"],
                name="split_windows",
            ),
            # Every window, labelled or not (transitions, unlabelled stretches), split by the
            # same subjects: what deployed recordings look like, for the monitoring reference.
            Node(
                split_windows,
                inputs=["windows", "params:split"],
                outputs=["all_windows_train", "all_windows_validation", "all_windows_test"],
                name="split_all_windows",
            ),
            Node(fit_scaler, inputs="windows_train", outputs="scaler", name="fit_scaler"),
            Node(
                summarise_windows,
                inputs=["windows_train", "windows_validation", "windows_test", "params:labels"],
                outputs="window_counts",
                name="summarise_windows",
            ),
        ]
    )
