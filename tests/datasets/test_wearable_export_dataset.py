"""WearableExportDataset: a folder of per-recording CSV exports, loaded without judging content."""

from __future__ import annotations

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from har_mlops.datasets import WearableExportDataset
from tests.conftest import EPOCH_MS, make_recording, write_recording

ACC_TEXT = f"timestamp,x,y,z\n{EPOCH_MS},0.5,-1.25,9.75\n{EPOCH_MS + 20},0.25,-1.5,9.5\n"
GYRO_TEXT = f"timestamp,x,y,z\n{EPOCH_MS},0.01,0.02,0.03\n{EPOCH_MS + 20},0.04,0.05,0.06\n"
LABELS_TEXT = f"start,end,activity\n{EPOCH_MS},{EPOCH_MS + 20},WALKING\n"


def test_loads_each_recording_folder(tmp_path):
    write_recording(tmp_path, "rec_a", ACC_TEXT, GYRO_TEXT, LABELS_TEXT, {"subject_id": 7})
    write_recording(tmp_path, "rec_b", ACC_TEXT, GYRO_TEXT)
    (tmp_path / "README.txt").write_text("not a recording")  # plain files are ignored

    data = WearableExportDataset(path=str(tmp_path)).load()

    assert list(data) == ["rec_a", "rec_b"]
    rec = data["rec_a"]
    assert rec["subject_id"] == "7"  # from metadata.json, as a string
    assert rec["read_errors"] == {}
    assert rec["files"] == {
        "accelerometer": "rec_a/accelerometer.csv",
        "gyroscope": "rec_a/gyroscope.csv",
        "labels": "rec_a/labels.csv",
    }
    assert_frame_equal(
        rec["accelerometer"],
        pd.DataFrame(
            {
                "timestamp": [EPOCH_MS, EPOCH_MS + 20],
                "x": [0.5, 0.25],
                "y": [-1.25, -1.5],
                "z": [9.75, 9.5],
            }
        ),
    )
    assert rec["gyroscope"]["z"].tolist() == [0.03, 0.06]
    assert rec["labels"].to_dict("list") == {
        "start": [EPOCH_MS],
        "end": [EPOCH_MS + 20],
        "activity": ["WALKING"],
    }


def test_subject_defaults_to_folder_name_and_missing_files_are_none(tmp_path):
    write_recording(tmp_path, "rec_b", ACC_TEXT, None)

    rec = WearableExportDataset(path=str(tmp_path)).load()["rec_b"]

    assert rec["subject_id"] == "rec_b"
    assert rec["gyroscope"] is None
    assert rec["labels"] is None
    assert rec["accelerometer"].shape == (2, 4)
    # The file names are listed even for absent files, so validation can name them.
    assert rec["files"]["gyroscope"] == "rec_b/gyroscope.csv"


def test_metadata_without_subject_falls_back_to_folder_name(tmp_path):
    write_recording(tmp_path, "rec_c", ACC_TEXT, GYRO_TEXT, metadata={"device": "watch"})

    rec = WearableExportDataset(path=str(tmp_path)).load()["rec_c"]

    assert rec["subject_id"] == "rec_c"
    assert rec["read_errors"] == {}


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_unreadable_metadata_is_a_read_error(tmp_path, text):
    write_recording(tmp_path, "rec_m", ACC_TEXT, GYRO_TEXT, metadata=text)

    rec = WearableExportDataset(path=str(tmp_path)).load()["rec_m"]

    assert rec["subject_id"] == "rec_m"
    assert rec["read_errors"]["metadata"].startswith("unreadable metadata.json: ")


def test_empty_file_is_an_empty_frame_without_columns(tmp_path):
    write_recording(tmp_path, "rec_e", "", GYRO_TEXT, labels="")

    rec = WearableExportDataset(path=str(tmp_path)).load()["rec_e"]

    for stream in ("accelerometer", "labels"):
        assert isinstance(rec[stream], pd.DataFrame)
        assert rec[stream].shape == (0, 0)
    assert rec["read_errors"] == {}


def test_header_only_file_is_an_empty_frame_with_columns(tmp_path):
    write_recording(tmp_path, "rec_h", "timestamp,x,y,z\n", GYRO_TEXT)

    rec = WearableExportDataset(path=str(tmp_path)).load()["rec_h"]

    assert list(rec["accelerometer"].columns) == ["timestamp", "x", "y", "z"]
    assert len(rec["accelerometer"]) == 0


def test_unparsable_csv_is_a_read_error_not_an_exception(tmp_path):
    # A row with more fields than the header is a tokenizer error in pandas.
    bad = f"timestamp,x,y,z\n{EPOCH_MS},1,2,3\n{EPOCH_MS + 20},1,2,3,4,5\n"
    write_recording(tmp_path, "rec_p", bad, GYRO_TEXT)

    rec = WearableExportDataset(path=str(tmp_path)).load()["rec_p"]

    assert rec["accelerometer"] is None
    assert set(rec["read_errors"]) == {"accelerometer"}
    assert "Expected 4 fields in line 3, saw 6" in rec["read_errors"]["accelerometer"]
    assert rec["gyroscope"].shape == (2, 4)


def test_values_after_commas_may_carry_spaces(tmp_path):
    write_recording(tmp_path, "rec_s", f"timestamp, x, y, z\n{EPOCH_MS}, 1.5, 2, 3\n", GYRO_TEXT)

    acc = WearableExportDataset(path=str(tmp_path)).load()["rec_s"]["accelerometer"]

    assert list(acc.columns) == ["timestamp", "x", "y", "z"]
    assert acc.iloc[0].tolist() == [EPOCH_MS, 1.5, 2.0, 3.0]


def test_save_then_load_round_trip(tmp_path):
    acc, gyro = make_recording(duration_s=1.0)
    labels = pd.DataFrame(
        {"start": [EPOCH_MS, EPOCH_MS + 500], "end": [EPOCH_MS + 480, EPOCH_MS + 1000]}
    ).assign(activity=["WALKING", "SITTING"])
    data = {
        "rec_1": {"accelerometer": acc, "gyroscope": gyro, "labels": labels, "subject_id": 12},
        "rec_2": {"accelerometer": acc, "gyroscope": gyro, "subject_id": "s2"},
    }
    dataset = WearableExportDataset(path=str(tmp_path / "exports"))
    assert not dataset.exists()

    dataset.save(data)
    loaded = dataset.load()

    assert dataset.exists()
    assert sorted(p.name for p in (tmp_path / "exports" / "rec_2").iterdir()) == [
        "accelerometer.csv",
        "gyroscope.csv",
        "metadata.json",
    ]
    assert list(loaded) == ["rec_1", "rec_2"]
    assert loaded["rec_1"]["subject_id"] == "12"
    assert loaded["rec_2"]["subject_id"] == "s2"
    assert loaded["rec_2"]["labels"] is None
    for rec_id in data:
        assert_frame_equal(loaded[rec_id]["accelerometer"], acc)
        assert_frame_equal(loaded[rec_id]["gyroscope"], gyro)
    assert_frame_equal(loaded["rec_1"]["labels"], labels, check_dtype=False)
    assert loaded["rec_1"]["labels"]["activity"].tolist() == ["WALKING", "SITTING"]


def test_nonexistent_folder_loads_as_empty_dict(tmp_path):
    dataset = WearableExportDataset(path=str(tmp_path / "nowhere"))

    assert dataset.load() == {}
    assert not dataset.exists()
