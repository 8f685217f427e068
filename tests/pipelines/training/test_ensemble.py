"""An ensemble of networks is one Keras model: trained, saved, loaded, fine-tuned as one."""

from __future__ import annotations

import numpy as np

from har_mlops.model_io import load_bundle_folder, save_bundle_folder
from har_mlops.pipelines.training.model import (
    adapt_for_fine_tuning,
    ensemble_members,
)
from har_mlops.pipelines.training.nodes import train_model
from tests.pipelines.training import tiny

ARCHITECTURE = tiny.architecture(
    conv_filters=[8, 8], conv_kernel_sizes=[5, 3], pool_after=[0], spectral_bands=4
)
TRAINING = tiny.training(ensemble_members=3)


def _trained_ensemble():
    train, validation = tiny.separable_windows()
    return train_model(
        train,
        validation,
        tiny.IDENTITY_SCALER,
        {},
        ARCHITECTURE,
        TRAINING,
        tiny.FINE_TUNING,
        tiny.LABELS,
    ), train


def test_ensemble_round_trips_and_equals_the_average_of_its_members(tmp_path):
    (model, history), train = _trained_ensemble()
    members = ensemble_members(model)
    assert [m.name for m in members] == ["member0", "member1", "member2"]
    # Each member trained on its own seed: different weights, its own history.
    assert not np.array_equal(members[0].get_weights()[0], members[1].get_weights()[0])
    assert {"member0_loss", "member2_val_loss"} <= set(history)

    save_bundle_folder(tmp_path, model, {"class_names": tiny.CLASSES})
    loaded = load_bundle_folder(tmp_path)["model"]
    signals = train["signals"][:10]
    each = np.stack([m.predict(signals, verbose=0) for m in ensemble_members(loaded)])
    np.testing.assert_allclose(
        loaded.predict(signals, verbose=0), each.mean(axis=0), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        loaded.predict(signals, verbose=0), model.predict(signals, verbose=0), atol=1e-6
    )
    # The members' optimizers (moment estimates: twice the weights) are not shipped.
    assert all(getattr(m, "optimizer", None) is None for m in ensemble_members(loaded))


def test_an_ensemble_is_fine_tuned_member_by_member():
    (model, _), _ = _trained_ensemble()
    frozen_before = [m.get_layer("conv0").get_weights()[0].copy() for m in ensemble_members(model)]
    adapted = adapt_for_fine_tuning(model, 5, True, 1)
    assert adapted.output_shape == (None, 5)
    members = ensemble_members(adapted)
    assert len(members) == 3
    for member, before in zip(members, frozen_before, strict=True):
        assert not member.get_layer("conv0").trainable
        np.testing.assert_array_equal(member.get_layer("conv0").get_weights()[0], before)


def test_separate_fine_tuning_trains_each_member_on_its_own_loss():
    (model, _), train = _trained_ensemble()
    train_windows, validation = tiny.separable_windows()
    starting = {"model": model, "contract": {"class_names": tiny.CLASSES}, "source": "test"}
    fine_tuning = {
        **tiny.FINE_TUNING,
        "input_adapter": True,
        "warm_up_epochs": 1,
        "warm_up_learning_rate": 0.01,
        "members": "separate",
    }
    tuned, history = train_model(
        train_windows,
        validation,
        tiny.IDENTITY_SCALER,
        starting,
        ARCHITECTURE,
        TRAINING,
        fine_tuning,
        tiny.LABELS,
    )
    members = ensemble_members(tuned)
    assert len(members) == 3
    # One warm-up and one fine-tuning history per member, each member behind its own adapter.
    assert {"warm_up_member0_loss", "member0_loss", "member2_val_loss"} <= set(history)
    assert "loss" not in history
    adapters = [m.get_layer("input_adapter").get_weights()[0] for m in members]
    assert not np.array_equal(adapters[0], adapters[1])
    signals = train["signals"][:10]
    each = np.stack([m.predict(signals, verbose=0) for m in members])
    np.testing.assert_allclose(
        tuned.predict(signals, verbose=0), each.mean(axis=0), rtol=1e-5, atol=1e-6
    )
