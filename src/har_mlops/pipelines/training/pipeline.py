"""Wiring of the training pipeline."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    build_contract,
    bundle_model,
    choose_model_scaler,
    compare_models,
    estimate_activity_transitions,
    evaluate_baseline,
    evaluate_model,
    evaluate_smoothing,
    plot_confusion_matrix,
    predictor_config,
    register_model,
    train_baseline,
    train_model,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Network and baseline on the same windows, evaluated, tracked and registered."""
    return Pipeline(
        [
            Node(
                choose_model_scaler,
                inputs=[
                    "scaler",
                    "starting_model",
                    "params:windowing",
                    "params:resampling",
                    "params:labels",
                ],
                outputs="model_scaler",
                name="choose_model_scaler",
            ),
            Node(
                train_model,
                inputs=[
                    "windows_train",
                    "windows_validation",
                    "model_scaler",
                    "starting_model",
                    "params:architecture",
                    "params:training",
                    "params:fine_tuning",
                    "params:labels",
                ],
                outputs=["model", "training_history"],
                name="train_model",
            ),
            Node(
                estimate_activity_transitions,
                inputs=[
                    "windows_train",
                    "params:labels",
                    "params:windowing",
                    "params:resampling",
                    "params:smoothing",
                ],
                outputs="activity_transitions",
                name="estimate_activity_transitions",
            ),
            Node(
                evaluate_smoothing,
                inputs=[
                    "model",
                    # Every test window in time order: smoothing runs over whole recordings.
                    "all_windows_test",
                    "model_scaler",
                    "activity_transitions",
                    "params:labels",
                    "params:windowing",
                    "params:resampling",
                    "params:inference.prediction",
                    "params:smoothing",
                ],
                outputs="smoothing_report",
                name="evaluate_smoothing",
            ),
            Node(
                evaluate_model,
                inputs=[
                    "model",
                    "windows_test",
                    "model_scaler",
                    "params:labels",
                    "params:inference.prediction",
                    "smoothing_report",
                ],
                outputs=["evaluation_report", "network_test_predictions"],
                name="evaluate_model",
            ),
            Node(
                train_baseline,
                inputs=[
                    "windows_train",
                    "windows_validation",
                    "params:baseline",
                    "params:resampling",
                ],
                outputs="baseline_model",
                name="train_baseline",
            ),
            Node(
                evaluate_baseline,
                inputs=["baseline_model", "windows_test", "params:labels", "params:resampling"],
                outputs=["baseline_report", "baseline_test_predictions"],
                name="evaluate_baseline",
            ),
            Node(
                compare_models,
                inputs=["evaluation_report", "baseline_report"],
                outputs="test_metrics",
                name="compare_models",
            ),
            Node(
                plot_confusion_matrix,
                inputs="evaluation_report",
                outputs="confusion_matrix_plot",
                name="plot_confusion_matrix",
            ),
            Node(
                build_contract,
                inputs=[
                    "model_scaler",
                    "params:windowing",
                    "params:resampling",
                    "params:labels",
                    "windows_train",
                ],
                outputs="model_contract",
                name="build_contract",
            ),
            Node(
                bundle_model,
                inputs=["model", "model_contract"],
                outputs="model_bundle",
                name="bundle_model",
            ),
            Node(
                predictor_config,
                inputs=[
                    "model_contract",
                    # The served model runs the inference preprocessing itself.
                    "params:validation",
                    "params:resampling",
                    "params:windowing",
                    "params:labels",
                    "params:inference.prediction",
                    "params:serving",
                ],
                outputs="served_model_config",
                name="predictor_config",
            ),
            Node(
                register_model,
                inputs=[
                    "model",
                    "served_model_config",
                    "evaluation_report",
                    "network_test_predictions",
                    "baseline_test_predictions",
                    "params:registry",
                ],
                outputs="model_registration",
                name="register_model",
            ),
        ]
    )
