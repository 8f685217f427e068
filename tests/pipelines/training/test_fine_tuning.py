"""Fine-tuning from the shipped model bundle: reuse, freezing, a new head, the contract check."""

from __future__ import annotations

import numpy as np
import pytest
from kedro.io import DatasetError

from har_mlops.contract import ContractMismatchError, contract_scaler
from har_mlops.datasets import StartingModelDataset
from har_mlops.pipelines.training.nodes import choose_model_scaler, train_model
from tests.conftest import PROJECT_ROOT
from tests.pipelines.training import tiny

PRETRAINED = PROJECT_ROOT / "data/06_models/pretrained"
USER_CLASSES = ["NAIL_BITING", "HAIR_PULLING", "SITTING"]
TRAINING = tiny.training(
    seed=3,
    batch_size=32,
    learning_rate=0.002,
    lr_schedule={"kind": "plateau", "factor": 0.5, "patience": 3, "min_lr": 0.00001},
    augmentation={"rotation": {"enabled": True, "max_degrees": 20}},
)


def _starting_model() -> dict:
    return StartingModelDataset(init_from="pretrained", pretrained=str(PRETRAINED)).load()


def _labels(classes: list[str]) -> dict:
    return {"class_set": "user", "class_sets": {"user": classes}}


def _two_subjects(n_per_subject: int = 48) -> tuple[dict, dict]:
    """Windows of two labelled subjects (train) and a third (validation), in SI units."""
    rng = np.random.default_rng(0)

    def windows(subject: str) -> dict:
        labels = np.arange(n_per_subject) % len(USER_CLASSES)
        signals = rng.normal(scale=0.3, size=(n_per_subject, 128, 6)).astype(np.float32)
        signals[:, :, 2] += 9.81  # gravity on z
        signals[:, :, 0] += labels[:, None] * 1.5  # something to learn
        return {
            "signals": signals,
            "label_index": labels,
            "subject_id": np.full(n_per_subject, subject),
        }

    train = [windows("1"), windows("2")]
    merged = {key: np.concatenate([w[key] for w in train]) for key in train[0]}
    return merged, windows("3")


def _layer_weights(model, name: str) -> list[np.ndarray]:
    """The weights of layer ``name`` in every member network (the shipped model is an
    ensemble; a single network is its own only member)."""
    from har_mlops.pipelines.training.model import ensemble_members, find_layer

    return [
        np.array(w) for member in ensemble_members(model) for w in find_layer(member, name).weights
    ]


def test_fine_tuning_reuses_the_shipped_weights_and_keeps_frozen_layers():
    shipped = _starting_model()
    before = {name: _layer_weights(shipped["model"], name) for name in ("conv0", "bn0", "conv1")}
    train, validation = _two_subjects()
    starting = _starting_model()
    scaler = choose_model_scaler(
        {"unused": True},
        starting,
        {"window_size": 128, "overlap": 0.5},
        {"target_rate_hz": 50.0},
        _labels(USER_CLASSES),
    )
    assert scaler == contract_scaler(shipped["contract"])
    fine_tuning = {"new_head": "auto", "frozen_blocks": 1, "learning_rate": 0.0005}
    model, history = train_model(
        train, validation, scaler, starting, {}, TRAINING, fine_tuning, _labels(USER_CLASSES)
    )
    assert len(history["loss"]) == 2
    assert model.output_shape == (None, len(USER_CLASSES))
    # The frozen first block is exactly the shipped one, the second one was trained from it.
    for name in ("conv0", "bn0"):
        for trained, loaded in zip(_layer_weights(model, name), before[name], strict=True):
            np.testing.assert_array_equal(trained, loaded)
    changed = _layer_weights(model, "conv1")[0] - before["conv1"][0]
    assert np.abs(changed).max() > 0
    # Small steps from the shipped weights, not a re-initialisation.
    assert np.abs(changed).max() < 0.5 * np.abs(before["conv1"][0]).max()


def test_same_classes_keep_the_shipped_head():
    starting = _starting_model()
    classes = list(starting["contract"]["class_names"])
    shipped_head = _layer_weights(starting["model"], "deep_logits")
    from har_mlops.pipelines.training.model import adapt_for_fine_tuning

    model = adapt_for_fine_tuning(starting["model"], len(classes), False, 2)
    for kept, shipped in zip(_layer_weights(model, "deep_logits"), shipped_head, strict=True):
        np.testing.assert_array_equal(kept, shipped)
    from har_mlops.pipelines.training.model import leaf_layers

    frozen = {layer.name for layer in leaf_layers(model) if not layer.trainable}
    assert {"conv0", "bn0", "conv1", "bn1"} <= frozen
    with pytest.raises(ValueError, match="only 3 convolution blocks"):
        adapt_for_fine_tuning(_starting_model()["model"], len(classes), False, 5)


@pytest.mark.parametrize("shared_class_rows", [True, False])
def test_new_head_rows_of_shared_classes_start_as_the_bundles(shared_class_rows):
    from har_mlops.pipelines.training.model import find_layer, leaf_layers
    from har_mlops.pipelines.training.nodes import _fine_tunable

    starting = _starting_model()
    bundle_classes = list(starting["contract"]["class_names"])
    # The first member network's head (find_layer looks into the first nested network).
    shipped = {"deep_logits": find_layer(starting["model"], "deep_logits").get_weights()}
    if any(layer.name == "wide_logits" for layer in leaf_layers(starting["model"])):
        shipped["wide_logits"] = find_layer(starting["model"], "wide_logits").get_weights()
    fine_tuning = {
        "new_head": "auto",
        "frozen_blocks": 1,
        "learning_rate": 0.0005,
        "shared_class_rows": shared_class_rows,
    }
    model = _fine_tunable(starting, USER_CLASSES, TRAINING, fine_tuning, 3, _two_subjects()[0])
    sitting, bundle_sitting = USER_CLASSES.index("SITTING"), bundle_classes.index("SITTING")
    for name, (kernel, bias) in shipped.items():
        new_kernel, new_bias = find_layer(model, name).get_weights()
        assert new_kernel.shape == (kernel.shape[0], len(USER_CLASSES))
        same = np.array_equal(new_kernel[:, sitting], kernel[:, bundle_sitting])
        assert same == shared_class_rows
        assert same == (new_bias[sitting] == bias[bundle_sitting])
        # Classes the bundle does not know start fresh: a zero bias, no bundle row.
        assert new_bias[0] == 0.0
        assert not any(
            np.array_equal(new_kernel[:, 0], kernel[:, row]) for row in range(kernel.shape[1])
        )


@pytest.mark.parametrize(
    ("windowing", "resampling", "field"),
    [
        ({"window_size": 64, "overlap": 0.5}, {"target_rate_hz": 50.0}, "window_size"),
        ({"window_size": 128, "overlap": 0.5}, {"target_rate_hz": 25.0}, "target_rate_hz"),
    ],
)
def test_contract_mismatch_names_the_field(windowing, resampling, field):
    starting = _starting_model()
    with pytest.raises(ContractMismatchError, match=rf"Cannot fine-tune pretrained: {field}:"):
        choose_model_scaler({}, starting, windowing, resampling, _labels(USER_CLASSES))


def test_contract_with_other_units_is_rejected():
    starting = _starting_model()
    starting["contract"] = {**starting["contract"], "units": {"acc": "g", "gyro": "deg/s"}}
    with pytest.raises(ContractMismatchError, match="units: model expects"):
        choose_model_scaler(
            {},
            starting,
            {"window_size": 128, "overlap": 0.5},
            {"target_rate_hz": 50.0},
            _labels(USER_CLASSES),
        )


def test_from_scratch_uses_the_data_scaler():
    scaler = {"mean": [0.0] * 6}
    assert choose_model_scaler(scaler, {}, {}, {}, _labels(USER_CLASSES)) is scaler


def test_starting_model_dataset_locations(tmp_path):
    assert StartingModelDataset(init_from=None, pretrained=str(PRETRAINED)).load() == {}
    with pytest.raises(DatasetError, match="holds no model bundle"):
        StartingModelDataset(init_from=str(tmp_path), pretrained=str(PRETRAINED)).load()


def test_input_adapter_starts_as_the_identity_and_trains_alone_with_the_head():
    from har_mlops.pipelines.training.model import adapt_for_fine_tuning, find_layer

    shipped = _starting_model()["model"]
    signals = np.random.default_rng(1).normal(size=(8, 128, 6)).astype(np.float32)
    expected = shipped.predict(signals, verbose=0)
    adapted = adapt_for_fine_tuning(_starting_model()["model"], 6, False, 3, True, True)
    np.testing.assert_allclose(adapted.predict(signals, verbose=0), expected, atol=1e-5)
    trainable = {w.path.split("/")[0] for w in adapted.trainable_weights}
    assert "input_adapter" in trainable
    assert not find_layer(adapted, "bilstm").trainable
    assert not find_layer(adapted, "conv2").trainable
    assert find_layer(adapted, "deep_logits").trainable


def test_warm_up_trains_only_the_new_layers_then_releases_the_reused_ones():
    from har_mlops.pipelines.training.model import find_layer
    from har_mlops.pipelines.training.nodes import _fine_tunable, _warm_up_new_layers

    train, validation = _two_subjects()
    starting = _starting_model()
    shipped = {name: _layer_weights(starting["model"], name) for name in ("conv0", "conv1")}
    fine_tuning = {
        "new_head": "auto",
        "frozen_blocks": 1,
        "input_adapter": True,
        "learning_rate": 0.0005,
        "warm_up_epochs": 2,
        "warm_up_learning_rate": 0.01,
    }
    model = _fine_tunable(starting, USER_CLASSES, TRAINING, fine_tuning, 3, _two_subjects()[0])
    head = [np.array(w) for w in find_layer(model, "deep_logits").get_weights()]
    fit = {
        "windows_train": train,
        "windows_validation": validation,
        "scaler": contract_scaler(starting["contract"]),
        "n_classes": len(USER_CLASSES),
    }
    history = _warm_up_new_layers(model, starting["model"], TRAINING, fine_tuning, 3, fit)

    assert len(history["loss"]) == 2
    # During the warm-up every reused layer stayed as loaded, even one that fine-tuning trains.
    for name, loaded in shipped.items():
        for kept, before in zip(_layer_weights(model, name), loaded, strict=True):
            np.testing.assert_array_equal(kept, before)
    adapter = find_layer(model, "input_adapter").get_weights()[0]
    assert not np.allclose(adapter, np.eye(6))
    assert not np.allclose(find_layer(model, "deep_logits").get_weights()[0], head[0])
    # Afterwards the layers fine-tuning trains learn again, the frozen block stays frozen.
    trainable = {id(w) for w in model.trainable_weights}
    for name in ("conv1", "bilstm", "input_adapter", "deep_logits"):
        assert {id(w) for w in find_layer(model, name).weights} <= trainable
    assert not {id(w) for w in find_layer(model, "conv0").weights} & trainable


def test_train_model_logs_the_warm_up_before_the_fine_tuning():
    train, validation = _two_subjects()
    starting = _starting_model()
    fine_tuning = {
        "new_head": "auto",
        "frozen_blocks": 1,
        "input_adapter": True,
        "learning_rate": 0.0005,
        "warm_up_epochs": 1,
        "warm_up_learning_rate": 0.01,
    }
    _, history = train_model(
        train,
        validation,
        contract_scaler(starting["contract"]),
        starting,
        {},
        TRAINING,
        fine_tuning,
        _labels(USER_CLASSES),
    )
    assert len(history["warm_up_loss"]) == 1
    assert len(history["loss"]) == 2


def _turned_bundle_windows(contract: dict, turn: np.ndarray, classes: list[str]) -> tuple:
    """Windows whose classes have exactly the bundle's class gravity (zero-mean noise on top),
    and the same windows as a device turned by ``turn`` records them."""
    rng = np.random.default_rng(4)
    noise = rng.normal(scale=0.5, size=(len(classes) * 4, 128, 6))
    noise -= noise.mean(axis=1, keepdims=True)
    names = np.repeat(classes, 4)
    signals = noise.copy()
    signals[:, :, :3] += np.array([contract["class_gravity"][name] for name in names])[:, None]
    turned = signals.copy()
    turned[:, :, :3] = signals[:, :, :3] @ turn.T
    turned[:, :, 3:] = signals[:, :, 3:] @ turn.T
    windows = {"signals": turned.astype(np.float32), "label": names}
    return signals.astype(np.float32), windows


def test_gravity_start_turns_another_devices_windows_back_onto_the_bundles():
    from scipy.spatial.transform import Rotation

    from har_mlops.contract import scale_signals
    from har_mlops.pipelines.training.nodes import _fine_tunable

    starting = _starting_model()
    contract = starting["contract"]
    classes = list(contract["class_names"])
    turn = Rotation.from_euler("xyz", [90, 0, 45], degrees=True).as_matrix()
    signals, turned = _turned_bundle_windows(contract, turn, ["SITTING", "LAYING", "WALKING"])
    fine_tuning = {**tiny.FINE_TUNING, "input_adapter": True}
    scaler = contract_scaler(contract)
    expected = starting["model"].predict(scale_signals(signals, scaler), verbose=0)
    started = {}
    for start in ("identity", "gravity"):
        model = _fine_tunable(
            starting, classes, TRAINING, {**fine_tuning, "adapter_start": start}, 3, turned
        )
        started[start] = model.predict(scale_signals(turned["signals"], scaler), verbose=0)
    # The identity sees a device on its side; the gravity start sees the bundle's own windows.
    assert np.abs(started["identity"] - expected).max() > 0.1
    np.testing.assert_allclose(started["gravity"], expected, atol=2e-4)


@pytest.mark.parametrize(
    ("drop_gravity", "classes", "reason"),
    [
        (True, ["SITTING", "LAYING"], "carries no class gravity"),
        (False, ["SITTING"], "1 class(es) shared with the bundle, 2 needed"),
        (False, ["STANDING", "WALKING"], "degrees apart, 20 needed"),
    ],
)
def test_gravity_start_stays_the_identity_when_gravity_fixes_no_turn(
    drop_gravity, classes, reason, caplog
):
    from har_mlops.pipelines.training.model import find_layer
    from har_mlops.pipelines.training.nodes import _fine_tunable

    starting = _starting_model()
    contract = starting["contract"]
    _, turned = _turned_bundle_windows(contract, np.eye(3)[[1, 2, 0]], classes)
    if drop_gravity:
        starting["contract"] = {k: v for k, v in contract.items() if k != "class_gravity"}
    fine_tuning = {**tiny.FINE_TUNING, "input_adapter": True, "adapter_start": "gravity"}
    with caplog.at_level("WARNING"):
        model = _fine_tunable(
            starting, list(contract["class_names"]), TRAINING, fine_tuning, 3, turned
        )
    kernel, bias = find_layer(model, "input_adapter").get_weights()
    np.testing.assert_array_equal(kernel, np.eye(6))
    np.testing.assert_array_equal(bias, np.zeros(6))
    assert reason in caplog.text


def test_a_fixed_adapter_keeps_its_start_and_skips_a_warm_up_with_nothing_new():
    from har_mlops.pipelines.training.model import find_layer
    from har_mlops.pipelines.training.nodes import _fine_tuned

    starting = _starting_model()
    classes = list(starting["contract"]["class_names"])
    train, validation = _two_subjects()
    train["label_index"] = train["label_index"] % len(classes)
    validation["label_index"] = validation["label_index"] % len(classes)
    conv1 = _layer_weights(starting["model"], "conv1")
    fine_tuning = {
        **tiny.FINE_TUNING,
        "input_adapter": True,
        "adapter_learns": False,
        "frozen_blocks": 1,
        "warm_up_epochs": 2,
    }
    fit = {
        "windows_train": train,
        "windows_validation": validation,
        "scaler": contract_scaler(starting["contract"]),
        "n_classes": len(classes),
    }
    model, histories = _fine_tuned(starting, classes, TRAINING, fine_tuning, 3, fit)

    # Same classes, no new head: the fixed adapter leaves the warm-up nothing to learn.
    assert histories["warm_up_"] == {}
    assert len(histories[""]["loss"]) >= 1
    kernel, bias = find_layer(model, "input_adapter").get_weights()
    np.testing.assert_array_equal(kernel, np.eye(6))
    np.testing.assert_array_equal(bias, np.zeros(6))
    # The reused layers it does not freeze still learn.
    changed = _layer_weights(model, "conv1")
    assert any(not np.array_equal(a, b) for a, b in zip(changed, conv1, strict=True))


def test_fine_tuning_that_fits_the_validation_subjects_still_turns_the_adapter_by_gravity():
    from scipy.spatial.transform import Rotation

    from har_mlops.pipelines.training.model import find_layer
    from har_mlops.pipelines.training.nodes import _fine_tunable

    starting = _starting_model()
    contract = starting["contract"]
    classes = list(contract["class_names"])
    turn = Rotation.from_euler("xyz", [90, 0, 45], degrees=True).as_matrix()
    _, turned = _turned_bundle_windows(contract, turn, ["SITTING", "LAYING", "WALKING"])
    turned["label_index"] = np.array([classes.index(name) for name in turned["label"]])
    turned["subject_id"] = np.where(np.arange(len(turned["label"])) % 4 == 3, "3", "1")
    held = turned["subject_id"] == "3"
    train = {key: value[~held] for key, value in turned.items()}
    validation = {key: value[held] for key, value in turned.items()}
    training = tiny.training(
        epochs=1,
        fit_on_validation=True,
        lr_schedule={"kind": "cosine", "factor": 0.5, "patience": 1, "min_lr": 0.0001},
        early_stopping={**TRAINING["early_stopping"], "enabled": False},
    )
    fine_tuning = {
        **tiny.FINE_TUNING,
        "input_adapter": True,
        "adapter_start": "gravity",
        "adapter_learns": False,
    }
    model, history = train_model(
        train,
        validation,
        contract_scaler(contract),
        starting,
        {},
        training,
        fine_tuning,
        _labels(classes),
    )
    # The fixed adapter holds the turn read from every fitted window's class gravity, training
    # and validation subjects alike: the same turn as from the windows before the split.
    start = _fine_tunable(starting, classes, training, fine_tuning, 1, turned)
    np.testing.assert_allclose(
        find_layer(model, "input_adapter").get_weights()[0],
        find_layer(start, "input_adapter").get_weights()[0],
        atol=1e-6,
    )
    assert not np.allclose(find_layer(start, "input_adapter").get_weights()[0], np.eye(6))
    assert np.isfinite([step["value"] for step in history["loss"]]).all()
