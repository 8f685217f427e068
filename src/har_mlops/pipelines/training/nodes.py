"""Nodes of the training pipeline: network, baseline, evaluation, contract and registry.

Keras and MLflow are imported inside the functions that need them, so that every
``kedro run`` (which imports all pipelines) does not pay TensorFlow's start-up cost.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import plotly.graph_objects as go

from har_mlops import contract as model_contract_lib
from har_mlops.contract import class_names, scale_signals
from har_mlops.evaluation import classification_metrics
from har_mlops.features import window_features
from har_mlops.forward import CompiledForward, predict_probabilities
from har_mlops.orientation import adapter_weights, class_gravity, rotation_between
from har_mlops.parameters import (
    Labels,
    Prediction,
    PredictorConfig,
    Resampling,
    Serving,
    Smoothing,
    Validation,
    Windowing,
)
from har_mlops.smoothing import (
    class_indices,
    contiguous_runs,
    estimate_transitions,
    smooth_predictions,
    time_order,
    window_hop_ms,
)

from .comparison import compare_predictions, scored_windows
from .parameters import Architecture, Baseline, FineTuning, Registry, Training
from .registry import decide_promotion

logger = logging.getLogger(__name__)

# Kedro reads the nodes' annotations to validate their parameters, so they must resolve without
# importing TensorFlow (which every `kedro run` would then pay for): keras.Model and
# sklearn's RandomForestClassifier, by name only.
KerasModel = Any
RandomForest = Any


def _class_weights(labels: np.ndarray, n_classes: int, mode: str) -> np.ndarray:
    """Per-window weights: 'balanced' gives every class the same total weight, 'none' ones."""
    if mode == "none":
        return np.ones(len(labels), dtype=np.float32)
    if mode != "balanced":
        raise ValueError(f"Unknown training.class_weighting {mode!r}; use 'balanced' or 'none'")
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    per_class = len(labels) / (n_classes * np.maximum(counts, 1.0))
    return per_class[labels].astype(np.float32)


def _compile(
    model: KerasModel, training: Training, learning_rate: float, steps_per_epoch: int
) -> KerasModel:
    """Compiles with AdamW (weights averaged when ``training.ema_momentum`` is set)."""
    import keras

    optimizer = keras.optimizers.AdamW(
        learning_rate=_learning_rate(training, learning_rate, steps_per_epoch),
        weight_decay=training["weight_decay"],
        # Keras swaps the averaged weights in when fit() ends.
        use_ema=training.get("ema_momentum") is not None,
        ema_momentum=training.get("ema_momentum") or 0.99,
    )
    # Keras 3: metrics must be passed by keyword (the third positional is loss_weights).
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _seeded(training: Training) -> None:
    """Seeds Keras (and turns op determinism on if configured)."""
    import keras

    keras.utils.set_random_seed(training["seed"])
    if training["deterministic_ops"]:
        import tensorflow as tf

        # Same seed, same machine -> same weights: no order-dependent parallel reductions.
        tf.config.experimental.enable_op_determinism()


def _compiled_network(
    window_size: int,
    n_channels: int,
    n_classes: int,
    architecture: Architecture,
    training: Training,
    steps_per_epoch: int,
    scaled_train: dict[str, np.ndarray] | None,
    name: str = "cnn_bilstm",
) -> KerasModel:
    """The network, seeded and compiled with AdamW (op determinism on if configured); what is
    fitted before gradient descent (random-kernel thresholds, a logistic wide path) is fitted
    on ``scaled_train`` (scaled training signals, labels and class weights)."""
    from .model import build_cnn_bilstm, fit_kernel_thresholds, fit_wide_path_logistic

    _seeded(training)
    model = build_cnn_bilstm(window_size, n_channels, n_classes, architecture, name)
    random_kernels = architecture.get("random_kernels")
    if random_kernels:
        fit_kernel_thresholds(
            model,
            scaled_train["signals"],
            random_kernels["sample_windows"],
            random_kernels["seed"],
        )
    wide_path = training.get("wide_path") or {}
    if wide_path.get("fit", "joint") == "logistic":
        if not architecture.get("window_statistics", False):
            raise ValueError(
                "training.wide_path.fit logistic needs architecture.window_statistics true"
            )
        fit_wide_path_logistic(
            model,
            scaled_train["signals"],
            scaled_train["label_index"],
            scaled_train["weights"],
            wide_path.get("inverse_regularisation", 1.0),
        )
    return _compile(model, training, training["learning_rate"], steps_per_epoch)


def _start_adapter(
    model: KerasModel,
    starting_model: dict[str, Any],
    windows_train: dict[str, np.ndarray],
    fine_tuning: FineTuning,
) -> None:
    """Sets ``model``'s input adapter to the turn that takes the training windows' class
    gravity onto the bundle's (``fine_tuning.adapter_start: gravity``); it stays the identity
    when the bundle carries no class gravity or the shared classes do not fix a turn."""
    reference = starting_model["contract"].get("class_gravity")
    if reference is None:
        logger.warning(
            "fine_tuning.adapter_start gravity: %s carries no class gravity (trained before "
            "it was recorded); the input adapter starts at the identity",
            starting_model["source"],
        )
        return
    rotation, how = rotation_between(
        class_gravity(windows_train["signals"], windows_train["label"]),
        reference,
        fine_tuning.get("gravity_min_angle_degrees", 20.0),
    )
    if rotation is None:
        logger.warning("Input adapter starts at the identity: %s", how)
        return
    model.get_layer("input_adapter").set_weights(
        list(
            adapter_weights(
                rotation, model_contract_lib.contract_scaler(starting_model["contract"])
            )
        )
    )
    logger.info("Input adapter starts at the device turn from gravity: %s", how)


def _fine_tunable(
    starting_model: dict[str, Any],
    classes: list[str],
    training: Training,
    fine_tuning: FineTuning,
    steps_per_epoch: int,
    windows_train: dict[str, np.ndarray],
) -> KerasModel:
    """The starting bundle's network adapted to this run's classes, compiled."""
    from .model import adapt_for_fine_tuning

    _seeded(training)
    previous = list(starting_model["contract"]["class_names"])
    new_head = fine_tuning["new_head"] == "always" or previous != classes
    head_rows = None
    if new_head and fine_tuning.get("shared_class_rows", False):
        head_rows = [previous.index(name) if name in previous else None for name in classes]
    model = adapt_for_fine_tuning(
        starting_model["model"],
        len(classes),
        new_head,
        fine_tuning["frozen_blocks"],
        fine_tuning.get("frozen_recurrent", False),
        fine_tuning.get("input_adapter", False),
        head_rows,
    )
    if fine_tuning.get("input_adapter", False):
        if fine_tuning.get("adapter_start") == "gravity":
            _start_adapter(model, starting_model, windows_train, fine_tuning)
        model.get_layer("input_adapter").trainable = fine_tuning.get("adapter_learns", True)
    shared = sum(row is not None for row in head_rows or [])
    logger.info(
        "Fine-tuning %s: %s head for %d classes (%d starting from the bundle's), "
        "%d convolution blocks%s frozen, %s, learning rate %g",
        starting_model["source"],
        "a new" if new_head else "its",
        len(classes),
        shared if new_head else len(classes),
        fine_tuning["frozen_blocks"],
        " and the recurrent layers" if fine_tuning.get("frozen_recurrent", False) else "",
        (
            "no input adapter"
            if not fine_tuning.get("input_adapter", False)
            else "a learning input adapter"
            if fine_tuning.get("adapter_learns", True)
            else "a fixed input adapter"
        ),
        fine_tuning["learning_rate"],
    )
    return _compile(model, training, fine_tuning["learning_rate"], steps_per_epoch)


def _warm_up_new_layers(
    model: KerasModel,
    starting_network: KerasModel,
    training: Training,
    fine_tuning: FineTuning,
    steps_per_epoch: int,
    fit: dict[str, Any],
) -> dict[str, list[float]]:
    """Fits only the layers of ``model`` that ``starting_network`` lacks (input adapter, new
    head) for ``fine_tuning.warm_up_epochs``, then recompiles ``model`` with its own trainable
    layers for the fine-tuning proper; the warm-up's history.

    With every reused layer still as loaded, the adapter can only learn to map the user's
    device back onto the bundle's, and a new head only to read the bundle's features: the
    reused layers are not pulled towards a few subjects by a random head or an unaligned input.
    """
    from .model import leaf_layers

    learning = [layer for layer in leaf_layers(starting_network) if layer.trainable]
    for layer in learning:
        layer.trainable = False
    if not model.trainable_weights:
        for layer in learning:
            layer.trainable = True
        logger.info("Warm-up skipped: no new layer learns (a fixed input adapter, its head)")
        return {}
    warm_up = {
        **training,
        "epochs": fine_tuning["warm_up_epochs"],
        "early_stopping": {**training["early_stopping"], "enabled": False},
    }
    # A cosine schedule decays over the warm-up's own epochs, not the whole run's.
    _compile(model, warm_up, fine_tuning["warm_up_learning_rate"], steps_per_epoch)
    logger.info(
        "Warm-up: %d epochs, %d weights learning at %g",
        warm_up["epochs"],
        sum(int(np.prod(w.shape)) for w in model.trainable_weights),
        fine_tuning["warm_up_learning_rate"],
    )
    history = _fit(model, training=warm_up, **fit)
    for layer in learning:
        layer.trainable = True
    _compile(model, training, fine_tuning["learning_rate"], steps_per_epoch)
    return history


def _member_training(training: Training, index: int) -> Training:
    """The training parameters of ensemble member ``index``: member 0 keeps the run's seed,
    the others get seeds far from any other run's."""
    return {**training, "seed": training["seed"] + 10007 * index}


def _fine_tuned(
    starting_model: dict[str, Any],
    classes: list[str],
    training: Training,
    fine_tuning: FineTuning,
    steps_per_epoch: int,
    fit: dict[str, Any],
) -> tuple[KerasModel, dict[str, dict[str, list[float]]]]:
    """``starting_model`` adapted, warmed up (when configured) and fine-tuned; its histories
    by prefix (``warm_up_`` and the fine-tuning's ``""``)."""
    model = _fine_tunable(
        starting_model, classes, training, fine_tuning, steps_per_epoch, fit["windows_train"]
    )
    histories = {}
    if fine_tuning.get("warm_up_epochs", 0):
        histories["warm_up_"] = _warm_up_new_layers(
            model, starting_model["model"], training, fine_tuning, steps_per_epoch, fit
        )
    histories[""] = _fit(model, training=training, **fit)
    return model, histories


def choose_model_scaler(
    scaler: dict[str, Any],
    starting_model: dict[str, Any],
    windowing: Windowing,
    resampling: Resampling,
    labels: Labels,
) -> dict[str, Any]:
    """The data's scaler from scratch; the starting model's when fine-tuning, whose contract
    (units, rate, window, channels) the run must honour or it stops naming the field."""
    if not starting_model:
        return scaler
    contract = starting_model["contract"]
    mismatches = [
        problem
        for problem in model_contract_lib.contract_mismatches(
            contract,
            (windowing["window_size"], len(model_contract_lib.CHANNELS)),
            windowing["window_size"],
            windowing["overlap"],
            resampling["target_rate_hz"],
            class_names(labels),
        )
        # A new head takes other classes, and the overlap only changes which windows exist.
        if not problem.startswith(("class_names:", "overlap:"))
    ]
    if mismatches:
        raise model_contract_lib.ContractMismatchError(
            f"Cannot fine-tune {starting_model['source']}: " + "; ".join(mismatches)
        )
    return model_contract_lib.contract_scaler(contract)


def _callbacks(training: Training) -> list[Any]:
    """Early stopping and the learning-rate schedule on the validation subjects (each when
    configured), and a logger."""
    import keras

    from .model import EpochLogger

    stopping, schedule = training["early_stopping"], training["lr_schedule"]
    callbacks = [EpochLogger(logger)]
    if stopping.get("enabled", True):
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=stopping["monitor"],
                patience=stopping["patience"],
                start_from_epoch=stopping["start_from_epoch"],
                restore_best_weights=stopping["restore_best_weights"],
            )
        )
    if schedule.get("kind", "plateau") == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss",
                factor=schedule["factor"],
                patience=schedule["patience"],
                min_lr=schedule["min_lr"],
            )
        )
    return callbacks


def _learning_rate(training: Training, learning_rate: float, steps_per_epoch: int) -> Any:
    """The optimiser's learning rate: a constant the plateau callback lowers, or a cosine
    decay from ``learning_rate`` to ``lr_schedule.min_lr`` over all epochs."""
    import keras

    schedule = training["lr_schedule"]
    if schedule.get("kind", "plateau") == "plateau":
        return learning_rate
    return keras.optimizers.schedules.CosineDecay(
        learning_rate,
        decay_steps=training["epochs"] * steps_per_epoch,
        alpha=schedule["min_lr"] / learning_rate,
    )


def _fit(
    model: KerasModel,
    windows_train: dict[str, np.ndarray],
    windows_validation: dict[str, np.ndarray],
    scaler: dict[str, Any],
    training: Training,
    n_classes: int,
) -> dict[str, list[float]]:
    """Fits one compiled network on augmented batches; its per-epoch history."""
    from .model import AugmentedWindows

    y_train = windows_train["label_index"]
    feed = AugmentedWindows(
        windows_train["signals"],
        y_train,
        _class_weights(y_train, n_classes, training["class_weighting"]),
        scaler,
        training["batch_size"],
        training["augmentation"],
        training["seed"],
    )
    validation = None
    if windows_validation is not None:
        validation = (
            scale_signals(windows_validation["signals"], scaler),
            windows_validation["label_index"],
        )
    started = time.perf_counter()
    fitted = model.fit(
        feed,
        validation_data=validation,
        epochs=training["epochs"],
        callbacks=_callbacks(training),
        verbose=0,
    )
    logger.info(
        "Trained %s: %d epochs in %.1f s (%d parameters)",
        model.name,
        len(fitted.history["loss"]),
        time.perf_counter() - started,
        model.count_params(),
    )
    return fitted.history


def train_model(
    windows_train: dict[str, np.ndarray],
    windows_validation: dict[str, np.ndarray],
    model_scaler: dict[str, Any],
    starting_model: dict[str, Any],
    architecture: Architecture,
    training: Training,
    fine_tuning: FineTuning,
    labels: Labels,
) -> tuple[KerasModel, dict[str, list[dict[str, float]]]]:
    """Trains the CNN-BiLSTM (an ensemble of ``training.ensemble_members``, or ``starting_model``
    fine-tuned) with early stopping on the validation subjects."""
    from .model import average_of

    classes = class_names(labels)
    _, window_size, n_channels = windows_train["signals"].shape
    if training.get("fit_on_validation", False):
        stopping, schedule = training["early_stopping"], training["lr_schedule"]
        if stopping.get("enabled", True) or schedule.get("kind", "plateau") != "cosine":
            raise ValueError(
                "training.fit_on_validation needs early_stopping.enabled false and "
                "lr_schedule.kind cosine: nothing may be decided on windows it fits"
            )
        # Every field both sets carry: fine-tuning reads more than signals and labels (the
        # class names, for the gravity turn).
        windows_train = {
            key: np.concatenate([windows_train[key], windows_validation[key]])
            for key in windows_train.keys() & windows_validation.keys()
        }
        windows_validation = None
    fit = {
        "windows_train": windows_train,
        "windows_validation": windows_validation,
        "scaler": model_scaler,
        "n_classes": len(classes),
    }
    steps_per_epoch = -(-len(windows_train["label_index"]) // training["batch_size"])
    if starting_model:
        from .model import ensemble_members

        members = ensemble_members(starting_model["model"])
        if fine_tuning.get("members", "joint") == "separate" and len(members) > 1:
            # Each member fine-tuned on its own loss with its own seed, as from scratch.
            tuned, histories = [], {}
            for index, member in enumerate(members):
                member_training = _member_training(training, index)
                model, member_histories = _fine_tuned(
                    {**starting_model, "model": member},
                    classes,
                    member_training,
                    fine_tuning,
                    steps_per_epoch,
                    fit,
                )
                tuned.append(model)
                histories |= {f"{k}member{index}_": v for k, v in member_histories.items()}
            model = average_of(tuned)
        else:
            model, histories = _fine_tuned(
                starting_model, classes, training, fine_tuning, steps_per_epoch, fit
            )
    else:
        n_members = training.get("ensemble_members", 1)
        members, histories = [], {}
        fitted_before = architecture.get("random_kernels") or (
            (training.get("wide_path") or {}).get("fit", "joint") == "logistic"
        )
        scaled_train = None
        if fitted_before:
            labels_train = windows_train["label_index"]
            scaled_train = {
                "signals": scale_signals(windows_train["signals"], model_scaler),
                "label_index": labels_train,
                "weights": _class_weights(labels_train, len(classes), training["class_weighting"]),
            }
        for index in range(n_members):
            member_training = _member_training(training, index)
            name = "cnn_bilstm" if n_members == 1 else f"member{index}"
            member = _compiled_network(
                window_size,
                n_channels,
                len(classes),
                architecture,
                member_training,
                steps_per_epoch,
                scaled_train,
                name,
            )
            histories[f"{name}_" if n_members > 1 else ""] = _fit(
                member, training=member_training, **fit
            )
            members.append(member)
        model = average_of(members)
    history = {
        f"{prefix}{name}": [{"value": float(v), "step": step} for step, v in enumerate(values)]
        for prefix, member_history in histories.items()
        for name, values in member_history.items()
    }
    return model, history


def evaluate_model(
    model: KerasModel,
    windows_test: dict[str, np.ndarray],
    model_scaler: dict[str, Any],
    labels: Labels,
    prediction: Prediction,
    smoothing_report: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Scores the network on the test subjects and measures its CPU prediction throughput.

    The smoothed timeline's scores, measured on every test window, are added under
    ``smoothing``; the per-window predictions are returned for the registry's comparison.
    """
    classes = class_names(labels)
    signals = windows_test["signals"]
    # Built (traced, compiled, warmed) before the clock starts: throughput is predicting only.
    forward = CompiledForward(
        model,
        signals.shape[1],
        signals.shape[2],
        [min(int(prediction["batch_size"]), len(signals))],
        jit_compile=prediction["jit_compile"],
    )
    started = time.perf_counter()
    probabilities = forward.predict_signals(signals, model_scaler)
    elapsed = time.perf_counter() - started
    report = classification_metrics(
        windows_test["label_index"], probabilities.argmax(axis=1), classes
    )
    report["throughput_windows_per_s"] = float(len(probabilities) / elapsed)
    report["test_subjects"] = sorted(set(windows_test["subject_id"].tolist()))
    report["mean_confidence"] = float(probabilities.max(axis=1).mean())
    report["smoothing"] = smoothing_report
    logger.info(
        "Network on test subjects: accuracy %.4f, macro-F1 %.4f, %.0f windows/s",
        report["accuracy"],
        report["macro_f1"],
        report["throughput_windows_per_s"],
    )
    return report, scored_windows(windows_test, probabilities.argmax(axis=1), classes)


def _hop_ms(windowing: Windowing, resampling: Resampling) -> float:
    """Time between consecutive window starts under the configured windowing."""
    return window_hop_ms(
        windowing["window_size"], windowing["overlap"], resampling["target_rate_hz"]
    )


def _in_time_order(windows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The windows sorted by recording, then start time."""
    order = time_order(windows["start_ms"], windows["recording_id"])
    return {name: values[order] for name, values in windows.items()}


def estimate_activity_transitions(
    windows_train: dict[str, np.ndarray],
    labels: Labels,
    windowing: Windowing,
    resampling: Resampling,
    smoothing: Smoothing,
) -> dict[str, Any]:
    """The smoothing HMM's transition matrix and class prior, from the training label sequences."""
    windows = _in_time_order(windows_train)
    runs = contiguous_runs(
        windows["start_ms"],
        windows["recording_id"],
        _hop_ms(windowing, resampling),
        smoothing["gap_tolerance_ms"],
    )
    return estimate_transitions(
        windows["label"], runs, class_names(labels), smoothing["pseudocount"]
    )


def evaluate_smoothing(
    model: KerasModel,
    all_windows_test: dict[str, np.ndarray],
    model_scaler: dict[str, Any],
    activity_transitions: dict[str, Any],
    labels: Labels,
    windowing: Windowing,
    resampling: Resampling,
    prediction: Prediction,
    smoothing: Smoothing,
) -> dict[str, Any]:
    """Window-level and smoothed scores over every test window, in time order.

    All windows are predicted and smoothed (transitions and unlabelled stretches included, as a
    deployed recording holds them); the scores count the windows labelled with a class.
    """
    classes = class_names(labels)
    windows = _in_time_order(all_windows_test)
    probabilities = predict_probabilities(
        model, windows["signals"], model_scaler, prediction["batch_size"], prediction["jit_compile"]
    )
    smoothed, runs = smooth_predictions(
        probabilities,
        windows["start_ms"],
        windows["recording_id"],
        activity_transitions,
        _hop_ms(windowing, resampling),
        smoothing["gap_tolerance_ms"],
        smoothing["probability_floor"],
    )
    return smoothing_scores(windows["label"], probabilities.argmax(axis=1), smoothed, runs, classes)


def smoothing_scores(
    labels: np.ndarray,
    window_predicted: np.ndarray,
    smoothed: np.ndarray,
    runs: np.ndarray,
    classes: list[str],
) -> dict[str, Any]:
    """Macro-F1 and accuracy, window-level and smoothed, on the windows labelled with a class."""
    truth = class_indices(labels, classes)
    scored = truth >= 0
    window = classification_metrics(truth[scored], window_predicted[scored], classes)
    smooth = classification_metrics(truth[scored], smoothed[scored], classes)
    report = {
        "window_macro_f1": window["macro_f1"],
        "smoothed_macro_f1": smooth["macro_f1"],
        "window_accuracy": window["accuracy"],
        "smoothed_accuracy": smooth["accuracy"],
        "windows_scored": int(scored.sum()),
        "windows": int(len(labels)),
        "runs": int(len(np.unique(runs))),
        "changed_windows": int((window_predicted != smoothed).sum()),
    }
    logger.info(
        "Smoothing on all test windows: macro-F1 %.4f -> %.4f, accuracy %.4f -> %.4f "
        "(%d of %d windows scored, %d runs, %d predictions changed)",
        report["window_macro_f1"],
        report["smoothed_macro_f1"],
        report["window_accuracy"],
        report["smoothed_accuracy"],
        report["windows_scored"],
        report["windows"],
        report["runs"],
        report["changed_windows"],
    )
    return report


def train_baseline(
    windows_train: dict[str, np.ndarray],
    windows_validation: dict[str, np.ndarray],
    baseline: Baseline,
    resampling: Resampling,
) -> RandomForest:
    """Fits a random forest on per-window statistical features (train + validation subjects)."""
    from sklearn.ensemble import RandomForestClassifier

    signals = np.concatenate([windows_train["signals"], windows_validation["signals"]])
    y = np.concatenate([windows_train["label_index"], windows_validation["label_index"]])
    forest = RandomForestClassifier(
        n_estimators=baseline["n_estimators"],
        min_samples_leaf=baseline["min_samples_leaf"],
        class_weight="balanced",
        n_jobs=baseline["n_jobs"],
        random_state=baseline["seed"],
    )
    return forest.fit(window_features(signals, resampling["target_rate_hz"]), y)


def evaluate_baseline(
    baseline_model: RandomForest,
    windows_test: dict[str, np.ndarray],
    labels: Labels,
    resampling: Resampling,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Scores the baseline on the test subjects; returns the report and its predictions."""
    features = window_features(windows_test["signals"], resampling["target_rate_hz"])
    started = time.perf_counter()
    predicted = baseline_model.predict(features)
    elapsed = time.perf_counter() - started
    report = classification_metrics(windows_test["label_index"], predicted, class_names(labels))
    report["throughput_windows_per_s"] = float(len(predicted) / max(elapsed, 1e-9))
    logger.info(
        "Baseline on test subjects: accuracy %.4f, macro-F1 %.4f",
        report["accuracy"],
        report["macro_f1"],
    )
    return report, scored_windows(windows_test, predicted, class_names(labels))


def compare_models(
    network_report: dict[str, Any], baseline_report: dict[str, Any]
) -> dict[str, dict[str, float]]:
    """Final metrics of both models, in the shape MlflowMetricsHistoryDataset logs."""
    metrics = {}
    for prefix, report in (("network", network_report), ("baseline", baseline_report)):
        for name in ("accuracy", "macro_f1", "weighted_f1", "throughput_windows_per_s"):
            metrics[f"{prefix}_{name}"] = {"value": float(report[name]), "step": 0}
        for cls, scores in report["per_class"].items():
            metrics[f"{prefix}_f1_{cls}"] = {"value": scores["f1"], "step": 0}
    for name in ("smoothed_macro_f1", "smoothed_accuracy"):
        if name in network_report.get("smoothing", {}):
            metrics[f"network_{name}"] = {"value": network_report["smoothing"][name], "step": 0}
    return metrics


def plot_confusion_matrix(network_report: dict[str, Any]) -> go.Figure:
    """Row-normalised confusion matrix heatmap with counts as text."""
    classes = network_report["confusion_matrix"]["classes"]
    counts = np.asarray(network_report["confusion_matrix"]["matrix"], dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    figure = go.Figure(
        go.Heatmap(
            z=share,
            x=classes,
            y=classes,
            text=counts.astype(int),
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "share of true class"},
        )
    )
    figure.update_layout(
        title=f"Test confusion matrix (macro-F1 {network_report['macro_f1']:.3f})",
        xaxis_title="predicted",
        yaxis_title="true",
        yaxis_autorange="reversed",
    )
    return figure


def build_contract(
    model_scaler: dict[str, Any],
    windowing: Windowing,
    resampling: Resampling,
    labels: Labels,
    windows_train: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The preprocessing contract a model needs its input to honour, with the class gravity
    of ``windows_train`` (the orientation of the device it was trained on) when given."""
    return model_contract_lib.build_contract(
        model_scaler,
        windowing["window_size"],
        windowing["overlap"],
        resampling["target_rate_hz"],
        class_names(labels),
        None
        if windows_train is None
        else class_gravity(windows_train["signals"], windows_train["label"]),
    )


def bundle_model(model: KerasModel, model_contract: dict[str, Any]) -> dict[str, Any]:
    """Pairs the trained model with its preprocessing contract, as inference loads them."""
    return {"model": model, "contract": model_contract, "source": "trained in this run"}


def predictor_config(
    contract: dict[str, Any],
    validation: Validation,
    resampling: Resampling,
    windowing: Windowing,
    labels: Labels,
    prediction: Prediction,
    serving: Serving,
) -> dict[str, Any]:
    """Everything the served model's preprocessing and prediction need, besides the weights."""
    return PredictorConfig.from_parameters(
        contract, validation, resampling, windowing, labels, prediction, serving
    ).to_dict()


PREDICTIONS_ARTIFACT = "network_test_predictions.npz"


def _current_champion(client: Any, model_name: str) -> dict[str, Any] | None:
    """Version, macro-F1 and source run of the registered champion, if there is one."""
    import mlflow

    try:
        current = client.get_model_version_by_alias(model_name, "champion")
    except mlflow.exceptions.MlflowException:
        logger.info("No champion registered yet for %s", model_name)
        return None
    return {
        "version": current.version,
        "macro_f1": float(current.tags.get("macro_f1", "nan")),
        "run_id": current.run_id,
    }


def _champion_predictions(champion: dict[str, Any]) -> dict[str, np.ndarray] | str:
    """The test predictions logged by the champion's run, or why there are none."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as scratch:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=champion["run_id"], artifact_path=PREDICTIONS_ARTIFACT, dst_path=scratch
            )
        except (mlflow.exceptions.MlflowException, OSError) as error:
            return f"its run {champion['run_id']} has no {PREDICTIONS_ARTIFACT} ({error})"
        with np.load(path, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}


def _register_version(
    client: Any,
    model_uri: str,
    model_name: str,
    network_report: dict[str, Any],
    decision: dict[str, Any],
) -> int:
    """Registers the logged model, tags it with its score and the gate, sets its alias."""
    import mlflow

    version = mlflow.register_model(model_uri, model_name)
    tags = {
        "macro_f1": f"{network_report['macro_f1']:.6f}",
        "test_subjects": ",".join(network_report["test_subjects"]),
        "gate": "; ".join(decision["reasons"]),
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version.version, key, value)
    client.set_registered_model_alias(model_name, decision["alias"], version.version)
    log = logger.info if decision["alias"] == "champion" else logger.warning
    log(
        "Registered %s v%s as %s: %s",
        model_name,
        version.version,
        decision["alias"],
        "; ".join(decision["reasons"]),
    )
    return int(version.version)


def register_model(
    model: KerasModel,
    served_config: dict[str, Any],
    network_report: dict[str, Any],
    network_test_predictions: dict[str, np.ndarray],
    baseline_test_predictions: dict[str, np.ndarray],
    registry: Registry,
) -> dict[str, Any]:
    """Logs preprocessing + model as one servable pyfunc, registers it behind the quality gate."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from har_mlops.serving.pyfunc import log_activity_model

    run = mlflow.active_run()
    if run is None:
        logger.warning("Model not logged or registered: no active MLflow run")
        return {"registered": False, "reason": "no active MLflow run"}
    contract = served_config["contract"]
    info = log_activity_model(
        model, served_config, name="model", metadata={"preprocessing_contract": contract}
    )
    mlflow.log_dict(contract, "preprocessing_contract.json")
    if not registry["enabled"]:
        logger.info("Model logged to run %s; registry disabled", run.info.run_id)
        return {"registered": False, "reason": "registry disabled", "run_id": run.info.run_id}
    client = MlflowClient()
    comparison = registry["comparison"]
    bootstrap = {k: comparison[k] for k in ("replicates", "confidence", "seed")}
    versus_baseline = compare_predictions(
        network_test_predictions, baseline_test_predictions, **bootstrap
    )
    champion = _current_champion(client, registry["model_name"])
    versus_champion = None
    if champion is not None:
        reference = _champion_predictions(champion)
        versus_champion = (
            {"decision": "not comparable", "reason": reference}
            if isinstance(reference, str)
            else compare_predictions(network_test_predictions, reference, **bootstrap)
        )
    decision = decide_promotion(
        network_report["macro_f1"],
        registry["min_macro_f1"],
        versus_baseline,
        champion,
        versus_champion,
        comparison["promote_on_tie"],
    )
    mlflow.log_dict(
        {"versus_baseline": versus_baseline, "versus_champion": versus_champion, **decision},
        "gate.json",
    )
    version = _register_version(
        client, info.model_uri, registry["model_name"], network_report, decision
    )
    return {
        "registered": True,
        "model_name": registry["model_name"],
        "version": version,
        "alias": decision["alias"],
        "reasons": decision["reasons"],
        "run_id": run.info.run_id,
        "previous_champion": champion,
        "versus_baseline": versus_baseline,
        "versus_champion": versus_champion,
    }
