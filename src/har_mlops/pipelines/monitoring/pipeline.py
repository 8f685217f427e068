"""Wiring of the monitoring pipelines: the reference profile and the monitoring run."""

from kedro.pipeline import Node, Pipeline

from .behaviour import assess_behaviour
from .nodes import (
    check_quality,
    compute_window_features,
    compute_window_gates,
    measure_data_drift,
    measure_prediction_drift,
)
from .plots import plot_monitoring
from .reference import calibrate_reference, compute_reference_features, predict_reference_windows
from .verdict import decide_verdict, enforce_verdict

FIGURES = [
    "monitoring_feature_drift_plot",
    "monitoring_distributions_plot",
    "monitoring_class_mix_plot",
    "monitoring_confidence_plot",
    "monitoring_behaviour_plot",
]


def create_reference_pipeline(**kwargs) -> Pipeline:
    """Training windows and model to the reference profile with calibrated thresholds."""
    return Pipeline(
        [
            Node(
                predict_reference_windows,
                inputs=[
                    "model_bundle",
                    "all_windows_train",
                    "all_windows_validation",
                    "all_windows_test",
                    "params:inference.prediction",
                ],
                outputs="reference_predictions",
                name="predict_reference_windows",
            ),
            Node(
                compute_reference_features,
                inputs=[
                    "all_windows_train",
                    "all_windows_validation",
                    "all_windows_test",
                    "reference_predictions",
                    "params:monitoring",
                ],
                outputs="reference_features",
                name="compute_reference_features",
            ),
            Node(
                calibrate_reference,
                inputs=[
                    "reference_features",
                    "reference_predictions",
                    "params:monitoring",
                    "params:inference.prediction",
                ],
                outputs="reference_profile",
                name="calibrate_reference",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    """The last inference run against the reference: gates, drift, verdict, report."""
    return Pipeline(
        [
            Node(
                compute_window_gates,
                inputs=["inference.windows", "inference.validation_report", "params:monitoring"],
                outputs="monitoring_gates",
                name="compute_window_gates",
            ),
            Node(
                check_quality,
                inputs=["monitoring_gates", "inference.validation_report", "params:monitoring"],
                outputs="monitoring_quality",
                name="check_quality",
            ),
            Node(
                compute_window_features,
                inputs=[
                    "inference.windows",
                    "window_predictions",
                    "monitoring_quality",
                    "reference_profile",
                    "params:monitoring",
                ],
                outputs="monitoring_features",
                name="compute_window_features",
            ),
            Node(
                measure_data_drift,
                inputs=[
                    "monitoring_features",
                    "monitoring_quality",
                    "reference_profile",
                    "params:monitoring",
                ],
                outputs="data_drift",
                name="measure_data_drift",
            ),
            Node(
                measure_prediction_drift,
                inputs=["monitoring_features", "monitoring_quality", "reference_profile"],
                outputs="prediction_drift",
                name="measure_prediction_drift",
            ),
            Node(
                assess_behaviour,
                inputs=[
                    "prediction_drift",
                    "daily_activity",
                    "reference_profile",
                    "params:monitoring",
                ],
                outputs="behaviour_change",
                name="assess_behaviour",
            ),
            Node(
                decide_verdict,
                inputs=[
                    "monitoring_quality",
                    "data_drift",
                    "prediction_drift",
                    "behaviour_change",
                    "reference_profile",
                    "params:monitoring",
                ],
                outputs=["monitoring_report", "monitoring_metrics"],
                name="decide_verdict",
            ),
            Node(
                plot_monitoring,
                inputs="monitoring_report",
                outputs=FIGURES,
                name="plot_monitoring",
            ),
            Node(
                enforce_verdict,
                inputs=["monitoring_report", "params:monitoring", *FIGURES],
                outputs=None,
                name="enforce_verdict",
            ),
        ]
    )
