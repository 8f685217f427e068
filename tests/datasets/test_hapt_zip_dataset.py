"""HaptZipDataset: UCI HAPT RawData read straight from the zip, in the common raw form."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError
from pandas.testing import assert_frame_equal

from har_mlops.datasets import HaptZipDataset
from tests.conftest import HAPT_ZIP


@pytest.fixture(scope="module")
def hapt_subject_1():
    return HaptZipDataset(filepath=str(HAPT_ZIP), subjects=[1]).load()


def test_shipped_zip_subject_1_recordings(hapt_subject_1):
    assert list(hapt_subject_1) == ["exp01_user01", "exp02_user01"]
    for rec_id, exp in (("exp01_user01", "01"), ("exp02_user01", "02")):
        rec = hapt_subject_1[rec_id]
        assert rec["subject_id"] == "1"
        assert rec["files"] == {
            "accelerometer": f"RawData/acc_exp{exp}_user01.txt",
            "gyroscope": f"RawData/gyro_exp{exp}_user01.txt",
            "labels": "RawData/labels.txt",
        }
        for stream in ("accelerometer", "gyroscope"):
            assert list(rec[stream].columns) == ["timestamp", "x", "y", "z"]


def test_shipped_zip_timestamps_are_sample_index_times_20_ms(hapt_subject_1):
    acc = hapt_subject_1["exp01_user01"]["accelerometer"]
    gyro = hapt_subject_1["exp01_user01"]["gyroscope"]
    assert len(acc) == len(gyro) == 20598
    assert acc["timestamp"].iloc[:4].tolist() == [0.0, 20.0, 40.0, 60.0]
    np.testing.assert_array_equal(acc["timestamp"].to_numpy(), np.arange(20598) * 20.0)
    assert acc["timestamp"].iloc[-1] == 20597 * 20.0
    assert len(hapt_subject_1["exp02_user01"]["accelerometer"]) == 19286


def test_shipped_zip_units_are_untouched(hapt_subject_1):
    rec = hapt_subject_1["exp01_user01"]
    # RawData/acc_exp01_user01.txt line 1 (g) and gyro line 1 (rad/s), as published.
    assert rec["accelerometer"].iloc[0, 1:].tolist() == [0.91805559, -0.112499999, 0.509722251]
    assert rec["gyroscope"].iloc[0, 1:].tolist() == [-0.0549778715, -0.0696386397, -0.030848695]


def test_shipped_zip_labels_are_in_ms_with_activity_names(hapt_subject_1):
    labels = hapt_subject_1["exp01_user01"]["labels"]
    assert list(labels.columns) == ["start", "end", "activity"]
    assert len(labels) == 22  # lines of RawData/labels.txt for experiment 1
    assert len(hapt_subject_1["exp02_user01"]["labels"]) == 23
    # labels.txt: "1 1 5 250 1232", "1 1 7 1233 1392", ...; last: "1 1 2 17298 17970".
    assert labels.iloc[0].tolist() == [5000.0, 24640.0, "STANDING"]
    assert labels.iloc[1].tolist() == [24660.0, 27840.0, "STAND_TO_SIT"]
    assert labels.iloc[-1].tolist() == [17298 * 20.0, 17970 * 20.0, "WALKING_UPSTAIRS"]


def test_shipped_zip_subject_filter_and_description():
    dataset = HaptZipDataset(filepath=str(HAPT_ZIP), subjects=["3", 2])
    assert dataset._describe() == {
        "filepath": str(HAPT_ZIP),
        "sampling_rate_hz": 50.0,
        "subjects": [2, 3],
    }
    assert dataset.exists()


# --------------------------------------------------------------------------- hand-made zip


@pytest.fixture
def tiny_zip(tmp_path):
    path = tmp_path / "tiny.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("RawData/", "")
        archive.writestr("RawData/acc_exp03_user07.txt", "1.0 -0.5 0.25\n1.5 -1 2e-1\n2 0 0\n")
        archive.writestr("RawData/gyro_exp03_user07.txt", "0.1 0.2 0.3\n0.4 0.5 0.6\n0.7 0.8 0.9\n")
        archive.writestr("RawData/acc_exp04_user08.txt", "9 9 9\n8 8 8\n")
        archive.writestr("RawData/gyro_exp04_user08.txt", "1 1 1\n2 2 2\n")
        archive.writestr("RawData/acc_exp05_user09.txt", "5 5 5\n")
        archive.writestr("RawData/gyro_exp05_user09.txt", "6 6 6\n")
        archive.writestr("RawData/notes.txt", "not a signal file\n")
        # experiment 3: two segments; experiment 4 has none; experiment 99 has no files.
        archive.writestr("RawData/labels.txt", "3 7 1 0 1\n3 7 12 2 2\n99 9 2 0 5\n")
        archive.writestr("activity_labels.txt", "1 WALKING\n2 WALKING_UPSTAIRS\n12 LIE_TO_STAND\n")
    return path


def test_tiny_zip_parsing(tiny_zip):
    data = HaptZipDataset(filepath=str(tiny_zip), sampling_rate_hz=25).load()

    assert list(data) == ["exp03_user07", "exp04_user08", "exp05_user09"]
    rec = data["exp03_user07"]
    assert rec["subject_id"] == "7"
    assert_frame_equal(
        rec["accelerometer"],
        pd.DataFrame(
            {
                "timestamp": [0.0, 40.0, 80.0],
                "x": [1.0, 1.5, 2.0],
                "y": [-0.5, -1.0, 0.0],
                "z": [0.25, 0.2, 0.0],
            }
        ),
    )
    assert rec["gyroscope"].to_numpy().tolist() == [
        [0.0, 0.1, 0.2, 0.3],
        [40.0, 0.4, 0.5, 0.6],
        [80.0, 0.7, 0.8, 0.9],
    ]
    assert rec["labels"].to_dict("list") == {
        "start": [0.0, 80.0],
        "end": [40.0, 80.0],
        "activity": ["WALKING", "LIE_TO_STAND"],
    }
    assert rec["files"]["labels"] == "RawData/labels.txt"
    # A recording without segments in labels.txt is unlabelled.
    assert data["exp04_user08"]["labels"] is None
    assert "labels" not in data["exp04_user08"]["files"]
    assert data["exp05_user09"]["accelerometer"]["timestamp"].tolist() == [0.0]


def test_tiny_zip_subject_filter(tiny_zip):
    data = HaptZipDataset(filepath=str(tiny_zip), subjects=[8]).load()

    assert list(data) == ["exp04_user08"]
    assert data["exp04_user08"]["subject_id"] == "8"
    assert data["exp04_user08"]["accelerometer"]["timestamp"].tolist() == [0.0, 20.0]


def test_missing_or_broken_archive_raises_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="Cannot open HAPT archive"):
        HaptZipDataset(filepath=str(tmp_path / "missing.zip")).load()
    not_a_zip = tmp_path / "broken.zip"
    not_a_zip.write_text("plain text")
    with pytest.raises(DatasetError, match="Cannot open HAPT archive"):
        HaptZipDataset(filepath=str(not_a_zip)).load()
    assert not HaptZipDataset(filepath=str(not_a_zip)).exists()


def test_archive_without_labels_raises(tmp_path):
    path = tmp_path / "nolabels.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("RawData/acc_exp01_user01.txt", "1 2 3\n")
        archive.writestr("activity_labels.txt", "1 WALKING\n")
    with pytest.raises(DatasetError, match="HAPT archive has no labels.txt"):
        HaptZipDataset(filepath=str(path)).load()


def test_is_read_only(tiny_zip):
    with pytest.raises(DatasetError, match="read-only"):
        HaptZipDataset(filepath=str(tiny_zip)).save({})
