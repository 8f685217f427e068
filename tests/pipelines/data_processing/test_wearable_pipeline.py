"""data_processing on a folder of watch exports, end to end through a Kedro session.

Short HAPT slices re-exported as a watch would write them (epoch clock, m/s^2, +-3 ms jitter,
gyroscope at 40 Hz) plus bad exports, read with the ``wearable_demo`` environment's catalog
and parameters in a throw-away project copy.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from har_mlops.contract import CHANNELS
from har_mlops.datasets import HaptZipDataset, NpzDataset
from har_mlops.sample_data import to_wearable_export
from har_mlops.units import STANDARD_GRAVITY
from tests.conftest import EPOCH_MS, HAPT_ZIP, make_project_copy, to_csv_text, write_recording

HOUR_MS = 3_600_000
BASIC = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"]
# STANDING then SITTING for each subject (HAPT seconds); exp01_user01: 1501 rows at 50 Hz.
GOOD = {"exp01_user01": (5.0, 35.0), "exp03_user02": (6.0, 40.0), "exp05_user03": (5.0, 35.0)}
SPLIT = {"test_subjects": ["2"], "validation_subjects": ["3"]}
# The bad exports are cut from exp01_user01's slice, so they belong to subject 1 (train).
REJECTED = {
    "bad_empty_accelerometer": ("accelerometer.csv", "empty file", 0),
    "bad_header_only_gyroscope": ("gyroscope.csv", "header only, no data rows", 0),
    "bad_missing_column": (
        "accelerometer.csv",
        "missing column(s) ['z']; expected header timestamp,x,y,z",
        1501,
    ),
    "bad_missing_gyroscope": ("gyroscope.csv", "missing stream (file not found)", 0),
}
NON_NUMERIC_ROWS = [10, 500, 900]
SWAPPED = [100, 700, 1200]  # each row swapped with the next: one descent each
DUPLICATED = [50, 400, 800, 1300]  # each row written twice in a row


def _export(recording: dict, start_ms: float, crop_s: tuple[float, float], seed: int) -> dict:
    return to_wearable_export(
        recording,
        start_ms,
        "m/s^2",
        "rad/s",
        np.random.default_rng(seed),
        jitter_ms=3.0,
        gyroscope_rate_hz=40.0,
        crop_s=crop_s,
    )


def _with_non_numeric_x(acc: pd.DataFrame, rows: list[int]) -> str:
    lines = to_csv_text(acc).splitlines()  # line 0 is the header
    for i in rows:
        t, _, y, z = lines[i + 1].split(",")
        lines[i + 1] = ",".join([t, "ERR" if i != rows[-1] else "", y, z])
    return "\n".join(lines) + "\n"


def _duplicated_unsorted(acc: pd.DataFrame) -> pd.DataFrame:
    order = np.arange(len(acc))
    for i in SWAPPED:
        order[[i, i + 1]] = order[[i + 1, i]]
    order = np.insert(order, np.asarray(DUPLICATED) + 1, DUPLICATED)
    return acc.iloc[order]


def _write_exports(root) -> np.ndarray:
    """Writes the good and bad exports; returns the timestamps of the non-numeric rows."""
    hapt = HaptZipDataset(filepath=str(HAPT_ZIP), subjects=[1, 2, 3]).load()
    for k, (rec_id, crop) in enumerate(GOOD.items()):
        export = _export(hapt[rec_id], EPOCH_MS + k * HOUR_MS, crop, seed=k)
        write_recording(
            root,
            rec_id,
            export["accelerometer"],
            export["gyroscope"],
            export["labels"],
            {"subject_id": export["subject_id"]},
        )
    source = _export(hapt["exp01_user01"], EPOCH_MS, GOOD["exp01_user01"], seed=0)
    acc, gyro, labels = source["accelerometer"], source["gyroscope"], source["labels"]
    short = _export(hapt["exp01_user01"], EPOCH_MS, (5.0, 7.0), seed=0)
    meta = {"subject_id": "1"}
    header_only = "timestamp,x,y,z\n"
    for rec_id, streams in {
        "bad_empty_accelerometer": ("", gyro),
        "bad_header_only_gyroscope": (acc, header_only),
        "bad_missing_column": (acc.drop(columns="z"), gyro),
        "bad_missing_gyroscope": (acc, None),
        "bad_too_short": (short["accelerometer"], short["gyroscope"]),
        "repaired_non_numeric": (_with_non_numeric_x(acc, NON_NUMERIC_ROWS), gyro),
        "repaired_duplicated_unsorted": (_duplicated_unsorted(acc), gyro),
    }.items():
        write_recording(root, rec_id, *streams, labels, meta)
    return acc["timestamp"].to_numpy()[NON_NUMERIC_ROWS]


@pytest.fixture(scope="module")
def wearable_run(tmp_path_factory):
    """Runs data_processing once in a project copy with the wearable_demo environment."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    # One run for the whole module, so the project copy is made here, not by project_copy.
    with pytest.MonkeyPatch.context() as monkeypatch:
        project = make_project_copy(tmp_path_factory.mktemp("wearable"), monkeypatch)
        dropped_ms = _write_exports(project / "data" / "01_raw" / "wearable_demo")
        bootstrap_project(project)
        with KedroSession.create(
            project_path=project, env="wearable_demo", runtime_params={"split": SPLIT}
        ) as session:
            session.run(pipeline_names=["data_processing"])
    data = project / "data"
    return {
        "windows": {
            s: NpzDataset(filepath=str(data / "05_model_input" / f"windows_{s}.npz")).load()
            for s in ("train", "validation", "test")
        },
        "report": json.loads((data / "08_reporting" / "validation_report.json").read_text()),
        "counts": json.loads((data / "08_reporting" / "window_counts.json").read_text()),
        "scaler": json.loads((data / "06_models" / "scaler.json").read_text()),
        "dropped_ms": dropped_ms,
    }


def _entry(report: dict, rec_id: str) -> dict:
    (entry,) = [e for e in report["recordings"] if e["recording_id"] == rec_id]
    return entry


def test_good_and_repaired_recordings_reach_their_split(wearable_run):
    windows = wearable_run["windows"]

    assert {s: set(w["recording_id"]) for s, w in windows.items()} == {
        "train": {"exp01_user01", "repaired_non_numeric", "repaired_duplicated_unsorted"},
        "validation": {"exp05_user03"},
        "test": {"exp03_user02"},
    }
    assert {s: set(w["subject_id"]) for s, w in windows.items()} == {
        "train": {"1"},
        "validation": {"3"},
        "test": {"2"},
    }
    for part in windows.values():
        n = part["label"].size
        assert part["signals"].shape == (n, 128, 6)
        assert set(part["label"]) == {"STANDING", "SITTING"}
        np.testing.assert_array_equal(np.asarray(BASIC)[part["label_index"]], part["label"])
        assert np.all(part["end_ms"] - part["start_ms"] == 127 * 20.0)
        assert np.all(part["start_ms"] >= EPOCH_MS)  # the export's epoch clock

    counts = wearable_run["counts"]
    assert {s: v["windows"] for s, v in counts["splits"].items()} == {
        s: w["label"].size for s, w in windows.items()
    }


def test_repairs_restore_the_original_recording(wearable_run):
    train = wearable_run["windows"]["train"]
    by_recording = {
        rec_id: {k: v[train["recording_id"] == rec_id] for k, v in train.items()}
        for rec_id in set(train["recording_id"])
    }
    original = by_recording["exp01_user01"]
    assert original["label"].size > 0
    # Sorting and dropping the duplicates gives back exactly the clean export.
    restored = by_recording["repaired_duplicated_unsorted"]
    for key in ("signals", "label", "start_ms", "end_ms"):
        np.testing.assert_array_equal(restored[key], original[key])
    repaired = by_recording["repaired_non_numeric"]
    # Three dropped rows are interpolated across: the same windows, and only those whose
    # span reaches a dropped row (or the interval to its neighbours, 20 ms) differ, slightly.
    np.testing.assert_array_equal(repaired["start_ms"], original["start_ms"])
    dropped_ms = wearable_run["dropped_ms"]
    reaches = (repaired["start_ms"][:, None] - 20 < dropped_ms) & (
        dropped_ms < repaired["end_ms"][:, None] + 20
    )
    changed = np.abs(repaired["signals"] - original["signals"]).max(axis=(1, 2)) > 0
    assert changed.any()
    assert not (changed & ~reaches.any(axis=1)).any()
    np.testing.assert_allclose(repaired["signals"], original["signals"], atol=0.1)


def test_signals_are_in_si_units(wearable_run):
    # m/s^2 declared and exported: the mean acceleration vector has the length of gravity.
    scaler = wearable_run["scaler"]
    assert scaler["channels"] == CHANNELS
    assert np.linalg.norm(scaler["mean"][:3]) == pytest.approx(STANDARD_GRAVITY, rel=0.05)


def test_report_rejects_each_bad_recording_with_its_file_and_problem(wearable_run):
    report = wearable_run["report"]

    for rec_id, (file, problem, rows) in REJECTED.items():
        entry = _entry(report, rec_id)
        assert entry["status"] == "rejected", rec_id
        assert entry["subject_id"] == "1"
        assert entry["problems"] == [
            {
                "file": f"{rec_id}/{file}",
                "problem": problem,
                "rows_affected": rows,
                "action": "rejected",
            }
        ]
    short = _entry(report, "bad_too_short")
    assert short["status"] == "rejected"
    assert short["problems"] == [
        {
            "file": "bad_too_short",
            "problem": "shorter than one window: 2.00 s of overlapping accelerometer and "
            "gyroscope data < 2.54 s",
            "rows_affected": 81,  # the 40 Hz gyroscope's 2 s
            "action": "rejected",
        }
    ]


def test_report_accepts_repaired_and_good_recordings(wearable_run):
    report = wearable_run["report"]

    non_numeric = _entry(report, "repaired_non_numeric")
    assert non_numeric["status"] == "accepted"
    assert non_numeric["problems"] == [
        {
            "file": "repaired_non_numeric/accelerometer.csv",
            "problem": "rows with NaN or non-numeric values dropped",
            "rows_affected": 3,
            "action": "repaired",
        }
    ]
    assert non_numeric["streams"]["accelerometer"]["non_numeric_rows"] == 3

    shuffled = _entry(report, "repaired_duplicated_unsorted")
    assert shuffled["status"] == "accepted"
    file = "repaired_duplicated_unsorted/accelerometer.csv"
    assert shuffled["problems"] == [
        {
            "file": file,
            "problem": "timestamps out of order, sorted",
            "rows_affected": 3,
            "action": "repaired",
        },
        {
            "file": file,
            "problem": "duplicated timestamps, first kept",
            "rows_affected": 4,
            "action": "repaired",
        },
    ]
    assert shuffled["streams"]["accelerometer"]["rows"] == 1501 + 4

    for rec_id in GOOD:
        entry = _entry(report, rec_id)
        assert (entry["status"], entry["problems"], entry["labelled"]) == ("accepted", [], True)
        assert entry["streams"]["gyroscope"]["observed_rate_hz"] == pytest.approx(40.0, rel=0.01)

    assert report["summary"] == {
        "recordings": 10,
        "accepted": 5,
        "rejected": 5,
        "rows_repaired_or_dropped": 3 + 3 + 4,
        "units": {"accelerometer": "m/s^2", "gyroscope": "rad/s"},
    }
