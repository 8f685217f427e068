"""NpzDataset: a dict of numpy arrays in one .npz file, without pickle."""

from __future__ import annotations

import numpy as np
import pytest

from har_mlops.datasets import NpzDataset


def _windows() -> dict[str, np.ndarray]:
    return {
        "signals": np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6) / 7,
        "label": np.array(["WALKING", "SITTING"]),
        "subject_id": np.array(["1", "Zoë-ß"]),
        "recording_id": np.array(["exp01_user01", "récording ☃"]),
        "label_index": np.array([0, 3], dtype=np.int64),
        "start_ms": np.array([0.0, 1_700_000_000_040.0]),
    }


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_keeps_values_dtypes_and_unicode(tmp_path, compress):
    path = tmp_path / "nested" / "dir" / "windows.npz"
    dataset = NpzDataset(filepath=str(path), compress=compress)
    data = _windows()

    assert not dataset.exists()
    dataset.save(data)
    loaded = dataset.load()

    assert dataset.exists()
    assert list(loaded) == list(data)
    for name, array in data.items():
        assert loaded[name].dtype == array.dtype, name
        np.testing.assert_array_equal(loaded[name], array)
    assert loaded["subject_id"].dtype.kind == "U"
    assert loaded["recording_id"][1] == "récording ☃"


def test_lists_are_saved_as_arrays(tmp_path):
    dataset = NpzDataset(filepath=str(tmp_path / "w.npz"))

    dataset.save({"label": ["a", "bb"], "n": [1, 2]})
    loaded = dataset.load()

    assert loaded["label"].dtype == np.dtype("<U2")
    assert loaded["label"].tolist() == ["a", "bb"]
    assert loaded["n"].tolist() == [1, 2]


def test_object_arrays_cannot_be_loaded_back(tmp_path):
    dataset = NpzDataset(filepath=str(tmp_path / "w.npz"))
    dataset.save({"label": np.array(["a", None], dtype=object)})

    with pytest.raises(Exception, match="allow_pickle"):
        dataset.load()


def test_preview_lists_shapes_and_dtypes(tmp_path):
    dataset = NpzDataset(filepath=str(tmp_path / "w.npz"))
    dataset.save({"signals": np.zeros((3, 128, 6), dtype=np.float32), "label": np.array(["x"])})

    assert dataset.preview() == {
        "columns": ["array", "shape", "dtype"],
        "index": [0, 1],
        "data": [["signals", "(3, 128, 6)", "float32"], ["label", "(1,)", "<U1"]],
    }
