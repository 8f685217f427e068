import numpy as np
import pytest

from har_mlops.evaluation import classification_metrics
from har_mlops.pipelines.training.model import augment, random_rotations
from har_mlops.pipelines.training.nodes import (
    _class_weights,
    build_contract,
    compare_models,
    plot_confusion_matrix,
)

CLASSES = ["A", "B", "C"]


def test_classification_metrics_exact_values():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    report = classification_metrics(y_true, y_pred, CLASSES)
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # A: p=1/2 r=1/2 f1=1/2; B: p=2/3 r=1 f1=0.8; C: p=1 r=1/2 f1=2/3
    assert report["per_class"]["B"]["f1"] == pytest.approx(0.8)
    assert report["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert report["windows"] == 6


def test_balanced_class_weights_equalise_class_totals():
    labels = np.array([0, 0, 0, 1])
    weights = _class_weights(labels, 2, "balanced")
    assert weights.tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2.0])
    assert _class_weights(labels, 2, "none").tolist() == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="class_weighting"):
        _class_weights(labels, 2, "inverse")


def test_rotations_are_proper_and_bounded():
    rng = np.random.default_rng(0)
    rot = random_rotations(rng, 100, 10.0)
    assert np.allclose(rot @ rot.transpose(0, 2, 1), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(rot), 1.0)
    angles = np.degrees(np.arccos(np.clip((np.trace(rot, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angles.max() <= 10.0 + 1e-9


def test_augment_rotation_keeps_vector_norms_and_is_seeded():
    rng = np.random.default_rng(1)
    signals = rng.normal(size=(8, 16, 6)).astype(np.float32)
    params = {"rotation": {"enabled": True, "max_degrees": 30}}
    out = augment(signals, np.random.default_rng(5), params)
    again = augment(signals, np.random.default_rng(5), params)
    np.testing.assert_array_equal(out, again)
    np.testing.assert_allclose(
        np.linalg.norm(out[:, :, :3], axis=2), np.linalg.norm(signals[:, :, :3], axis=2), rtol=1e-5
    )
    assert not np.allclose(out, signals)
    assert augment(signals, np.random.default_rng(5), {}).tolist() == signals.tolist()


def test_contract_carries_preprocessing():
    scaler = {"channels": [], "mean": [0.0] * 6, "std": [1.0] * 6}
    contract = build_contract(
        scaler,
        {"window_size": 128, "overlap": 0.5},
        {"target_rate_hz": 50},
        {"class_set": "x", "class_sets": {"x": CLASSES}},
    )
    assert contract["class_names"] == CLASSES
    assert contract["channels"] == ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    assert contract["units"] == {"acc": "m/s^2", "gyro": "rad/s"}
    assert (contract["window_size"], contract["overlap"], contract["target_rate_hz"]) == (
        128,
        0.5,
        50.0,
    )
    assert contract["scaler"] == {"mean": [0.0] * 6, "std": [1.0] * 6}


def test_compare_models_and_confusion_figure():
    y_true = np.array([0, 0, 1, 2])
    network = classification_metrics(y_true, np.array([0, 0, 1, 1]), CLASSES)
    network["throughput_windows_per_s"] = 10.0
    baseline = classification_metrics(y_true, np.array([0, 0, 0, 0]), CLASSES)
    baseline["throughput_windows_per_s"] = 250.0
    metrics = compare_models(network, baseline)
    # network: A p=1 r=1 f1=1; B p=1/2 r=1 f1=2/3; C f1=0 (supports 2, 1, 1)
    # baseline (always A): A p=1/2 r=1 f1=2/3; B, C f1=0
    expected = {
        "network_accuracy": 3 / 4,
        "network_macro_f1": (1 + 2 / 3) / 3,
        "network_weighted_f1": (2 * 1 + 2 / 3) / 4,
        "network_throughput_windows_per_s": 10.0,
        "network_f1_A": 1.0,
        "network_f1_B": 2 / 3,
        "network_f1_C": 0.0,
        "baseline_accuracy": 1 / 2,
        "baseline_macro_f1": (2 / 3) / 3,
        "baseline_weighted_f1": (2 * 2 / 3) / 4,
        "baseline_throughput_windows_per_s": 250.0,
        "baseline_f1_A": 2 / 3,
        "baseline_f1_B": 0.0,
        "baseline_f1_C": 0.0,
    }
    assert metrics == {k: {"value": pytest.approx(v), "step": 0} for k, v in expected.items()}
    figure = plot_confusion_matrix(network)
    assert figure.data[0].z.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 0]]
    assert figure.data[0].text.tolist() == [[2, 0, 0], [0, 1, 0], [0, 1, 0]]
    assert "macro-F1 0.556" in figure.layout.title.text
