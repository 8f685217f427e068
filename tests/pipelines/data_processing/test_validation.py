"""validate_recordings on wearable-export folders: one bad input per test, read from disk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from har_mlops.datasets import WearableExportDataset
from har_mlops.pipelines.data_processing.validation import (
    NoValidRecordingsError,
    validate_recordings,
)
from har_mlops.units import STANDARD_GRAVITY
from tests.conftest import EPOCH_MS, make_recording, to_csv_text, write_recording

N_ROWS = 501  # make_recording(): 10 s at 50 Hz


@pytest.fixture
def run_validation(tmp_path, si_raw_source, validation_params, resampling, windowing):
    """Loads ``tmp_path`` with WearableExportDataset and validates it (SI units declared)."""

    def _run(raw_source=None):
        raw = WearableExportDataset(path=str(tmp_path)).load()
        return validate_recordings(
            raw, raw_source or si_raw_source, validation_params, resampling, windowing
        )

    return _run


@pytest.fixture
def good(tmp_path):
    """Writes a clean recording ``rec_good`` so that validation has something to return."""
    acc, gyro = make_recording()
    write_recording(tmp_path, "rec_good", acc, gyro)
    return acc, gyro


def _entry(report: dict, rec_id: str) -> dict:
    (entry,) = [e for e in report["recordings"] if e["recording_id"] == rec_id]
    return entry


def _lines(frame: pd.DataFrame) -> list[str]:
    return to_csv_text(frame).splitlines()


def _text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def _with_bad_x(acc: pd.DataFrame, rows: list[int], value: str) -> str:
    lines = _lines(acc)  # line 0 is the header
    for i in rows:
        t, _, y, z = lines[i + 1].split(",")
        lines[i + 1] = ",".join([t, value, y, z])
    return _text(lines)


def _problem(file: str, problem: str, rows: int, action: str) -> dict:
    return {"file": file, "problem": problem, "rows_affected": rows, "action": action}


# --------------------------------------------------------------------------- clean input


def test_clean_recording_is_accepted_with_stream_stats(tmp_path, run_validation):
    acc, gyro = make_recording()
    labels = pd.DataFrame({"start": [EPOCH_MS], "end": [EPOCH_MS + 5000], "activity": ["WALKING"]})
    write_recording(tmp_path, "rec_a", acc, gyro, labels, {"subject_id": "s1"})

    valid, report = run_validation()

    assert list(valid) == ["rec_a"]
    clean = valid["rec_a"]
    assert clean["subject_id"] == "s1"
    np.testing.assert_array_equal(clean["accelerometer"].to_numpy(), acc.to_numpy(float))
    np.testing.assert_array_equal(clean["gyroscope"].to_numpy(), gyro.to_numpy(float))
    assert clean["labels"].to_dict("list") == {
        "start": [float(EPOCH_MS)],
        "end": [EPOCH_MS + 5000.0],
        "activity": ["WALKING"],
    }
    entry = _entry(report, "rec_a")
    assert entry["status"] == "accepted"
    assert entry["problems"] == []
    assert entry["labelled"] is True
    assert entry["subject_id"] == "s1"
    assert entry["overlap_duration_s"] == 10.0
    assert entry["streams"]["accelerometer"] == {
        "file": "rec_a/accelerometer.csv",
        "rows": N_ROWS,
        "non_numeric_rows": 0,
        "out_of_range_rows": 0,
        "unsorted_timestamps": 0,
        "duplicated_timestamps": 0,
        "duration_s": 10.0,
        "observed_rate_hz": 50.0,
        "gaps": 0,
        "longest_gap_s": 0.0,
    }
    assert report["summary"] == {
        "recordings": 1,
        "accepted": 1,
        "rejected": 0,
        "rows_repaired_or_dropped": 0,
        "units": {"accelerometer": "m/s^2", "gyroscope": "rad/s"},
    }


# --------------------------------------------------------------------------- rejected streams


def test_empty_file(tmp_path, good, run_validation):
    write_recording(tmp_path, "rec_bad", "", good[1])

    valid, report = run_validation()

    assert list(valid) == ["rec_good"]
    entry = _entry(report, "rec_bad")
    assert entry["status"] == "rejected"
    assert entry["problems"] == [_problem("rec_bad/accelerometer.csv", "empty file", 0, "rejected")]
    assert "overlap_duration_s" not in entry


def test_header_only(tmp_path, good, run_validation):
    write_recording(tmp_path, "rec_bad", good[0], "timestamp,x,y,z\n")

    valid, report = run_validation()

    assert "rec_bad" not in valid
    entry = _entry(report, "rec_bad")
    assert entry["status"] == "rejected"
    assert entry["problems"] == [
        _problem("rec_bad/gyroscope.csv", "header only, no data rows", 0, "rejected")
    ]
    assert entry["streams"]["gyroscope"] == {"file": "rec_bad/gyroscope.csv", "rows": 0}


def test_missing_column(tmp_path, good, run_validation):
    write_recording(tmp_path, "rec_bad", good[0].drop(columns="z"), good[1])

    valid, report = run_validation()

    assert "rec_bad" not in valid
    entry = _entry(report, "rec_bad")
    assert entry["status"] == "rejected"
    assert entry["problems"] == [
        _problem(
            "rec_bad/accelerometer.csv",
            "missing column(s) ['z']; expected header timestamp,x,y,z",
            N_ROWS,
            "rejected",
        )
    ]


def test_missing_gyroscope_stream(tmp_path, good, run_validation):
    write_recording(tmp_path, "rec_bad", good[0], None)

    valid, report = run_validation()

    assert "rec_bad" not in valid
    entry = _entry(report, "rec_bad")
    assert entry["status"] == "rejected"
    assert entry["problems"] == [
        _problem("rec_bad/gyroscope.csv", "missing stream (file not found)", 0, "rejected")
    ]


def test_unparsable_csv(tmp_path, good, run_validation):
    lines = _lines(good[0])
    lines[2] += ",7,8"  # data row 2 has 6 fields
    write_recording(tmp_path, "rec_bad", _text(lines), good[1])

    valid, report = run_validation()

    assert "rec_bad" not in valid
    (problem,) = _entry(report, "rec_bad")["problems"]
    assert problem["file"] == "rec_bad/accelerometer.csv"
    assert problem["action"] == "rejected"
    assert problem["rows_affected"] == 0
    assert problem["problem"].startswith("unreadable CSV: ")
    assert "Expected 4 fields in line 3, saw 6" in problem["problem"]


# --------------------------------------------------------------------------- non-numeric rows


def test_a_few_non_numeric_rows_are_dropped_and_counted(tmp_path, good, run_validation):
    acc = good[0]
    write_recording(tmp_path, "rec_bad", _with_bad_x(acc, [5, 6, 300], "abc"), good[1])

    valid, report = run_validation()

    entry = _entry(report, "rec_bad")
    assert entry["status"] == "accepted"
    assert entry["problems"] == [
        _problem(
            "rec_bad/accelerometer.csv",
            "rows with NaN or non-numeric values dropped",
            3,
            "repaired",
        )
    ]
    assert entry["streams"]["accelerometer"]["rows"] == N_ROWS
    assert entry["streams"]["accelerometer"]["non_numeric_rows"] == 3
    clean = valid["rec_bad"]["accelerometer"]
    assert len(clean) == N_ROWS - 3
    expected = acc.drop(index=[5, 6, 300]).to_numpy(float)
    np.testing.assert_array_equal(clean.to_numpy(), expected)
    assert list(clean.index) == list(range(N_ROWS - 3))
    assert report["summary"]["rows_repaired_or_dropped"] == 3


@pytest.mark.parametrize(("n_bad", "status"), [(25, "accepted"), (26, "rejected")])
def test_bad_row_fraction_boundary(tmp_path, good, run_validation, n_bad, status):
    # 500 rows: max_bad_row_fraction 0.05 allows exactly 25 bad rows, not 26.
    acc, gyro = make_recording(duration_s=9.98)
    assert len(acc) == 500
    write_recording(tmp_path, "rec_bad", _with_bad_x(acc, list(range(n_bad)), "x!"), gyro)

    _, report = run_validation()

    (problem,) = _entry(report, "rec_bad")["problems"]
    assert _entry(report, "rec_bad")["status"] == status
    assert problem["file"] == "rec_bad/accelerometer.csv"
    assert problem["rows_affected"] == n_bad
    assert problem["action"] == ("repaired" if status == "accepted" else "rejected")


def test_many_non_numeric_rows_reject_the_stream(tmp_path, good, run_validation):
    write_recording(
        tmp_path, "rec_bad", good[0], _with_bad_x(good[1], list(range(0, 400, 10)), "?")
    )

    valid, report = run_validation()

    assert "rec_bad" not in valid
    entry = _entry(report, "rec_bad")
    assert entry["status"] == "rejected"
    assert entry["problems"] == [
        _problem(
            "rec_bad/gyroscope.csv",
            "40 of 501 rows unusable (40 NaN or non-numeric values), "
            "more than max_bad_row_fraction=0.05",
            40,
            "rejected",
        )
    ]


def test_nan_values(tmp_path, good, run_validation):
    lines = _lines(good[0])
    t7, t8, t9 = (line.split(",")[0] for line in lines[8:11])
    lines[8] = f"{t7},,0.5,1.0"  # empty field
    lines[9] = f"{t8},0.1,nan,1.0"
    lines[10] = f"{t9},0.1,0.5,NaN"
    write_recording(tmp_path, "rec_bad", _text(lines), good[1])

    valid, report = run_validation()

    entry = _entry(report, "rec_bad")
    assert entry["status"] == "accepted"
    assert entry["problems"] == [
        _problem(
            "rec_bad/accelerometer.csv",
            "rows with NaN or non-numeric values dropped",
            3,
            "repaired",
        )
    ]
    clean = valid["rec_bad"]["accelerometer"]
    assert not clean.isna().any().any()
    assert float(t8) not in clean["timestamp"].to_numpy()


# --------------------------------------------------------------------------- out of range


def test_out_of_range_values_are_dropped_and_counted(tmp_path, good, run_validation):
    acc, gyro = (f.copy() for f in good)
    acc.loc[[10, 20], "y"] = [200.0, -160.5]  # limit 160 m/s^2
    acc.loc[30, "x"] = 160.0  # on the limit: kept
    gyro.loc[40, "z"] = 40.5  # limit 40 rad/s
    write_recording(tmp_path, "rec_bad", acc, gyro)

    valid, report = run_validation()

    entry = _entry(report, "rec_bad")
    assert entry["status"] == "accepted"
    assert entry["problems"] == [
        _problem(
            "rec_bad/accelerometer.csv",
            "rows with values beyond the plausible sensor range (|v| > 160 in declared units) dropped",
            2,
            "repaired",
        ),
        _problem(
            "rec_bad/gyroscope.csv",
            "rows with values beyond the plausible sensor range (|v| > 40 in declared units) dropped",
            1,
            "repaired",
        ),
    ]
    assert entry["streams"]["accelerometer"]["out_of_range_rows"] == 2
    assert len(valid["rec_bad"]["accelerometer"]) == N_ROWS - 2
    assert len(valid["rec_bad"]["gyroscope"]) == N_ROWS - 1
    assert 160.0 in valid["rec_bad"]["accelerometer"]["x"].to_numpy()
    assert report["summary"]["rows_repaired_or_dropped"] == 3


def test_out_of_range_limit_follows_declared_unit(tmp_path, raw_source, run_validation):
    # Declared in g: the limit 160 m/s^2 is 16.3155 g.
    acc, gyro = make_recording()
    acc[["x", "y", "z"]] /= STANDARD_GRAVITY
    acc.loc[3, "x"] = 16.3
    acc.loc[4, "x"] = 16.4
    write_recording(tmp_path, "rec_g", acc, gyro)

    valid, report = run_validation(raw_source)

    (problem,) = _entry(report, "rec_g")["problems"]
    assert problem == _problem(
        "rec_g/accelerometer.csv",
        "rows with values beyond the plausible sensor range (|v| > 16.3155 in declared units) dropped",
        1,
        "repaired",
    )
    assert 16.3 in valid["rec_g"]["accelerometer"]["x"].to_numpy()
    assert report["summary"]["units"] == {"accelerometer": "g", "gyroscope": "rad/s"}


def test_mixed_bad_rows_beyond_fraction_are_rejected_with_both_counts(
    tmp_path, good, run_validation
):
    acc = good[0].copy()
    acc.loc[list(range(0, 300, 20)), "z"] = 500.0  # 15 out of range
    text = _with_bad_x(acc, list(range(5, 300, 20)), "n/a")  # 15 non-numeric
    write_recording(tmp_path, "rec_bad", text, good[1])

    _, report = run_validation()

    entry = _entry(report, "rec_bad")
    assert entry["status"] == "rejected"
    assert entry["problems"] == [
        _problem(
            "rec_bad/accelerometer.csv",
            "30 of 501 rows unusable (15 NaN or non-numeric values, 15 values beyond the "
            "plausible sensor range (|v| > 160 in declared units)), "
            "more than max_bad_row_fraction=0.05",
            30,
            "rejected",
        )
    ]


# --------------------------------------------------------------------------- timestamps


def test_duplicated_timestamps_first_kept(tmp_path, good, run_validation):
    lines = _lines(good[0])
    t50 = lines[51].split(",")[0]
    t51 = lines[52].split(",")[0]
    # Two duplicates, each right after the row it repeats (so still sorted).
    lines.insert(52, f"{t50},99.0,99.0,99.0")
    lines.insert(54, f"{t51},98.0,98.0,98.0")
    write_recording(tmp_path, "rec_bad", _text(lines), good[1])

    valid, report = run_validation()

    entry = _entry(report, "rec_bad")
    assert entry["status"] == "accepted"
    assert entry["problems"] == [
        _problem("rec_bad/accelerometer.csv", "duplicated timestamps, first kept", 2, "repaired")
    ]
    assert entry["streams"]["accelerometer"]["rows"] == N_ROWS + 2
    assert entry["streams"]["accelerometer"]["duplicated_timestamps"] == 2
    assert entry["streams"]["accelerometer"]["unsorted_timestamps"] == 0
    clean = valid["rec_bad"]["accelerometer"]
    np.testing.assert_array_equal(clean.to_numpy(), good[0].to_numpy(float))


def test_unsorted_timestamps_are_sorted_and_counted(tmp_path, good, run_validation):
    lines = _lines(good[0])
    lines[11], lines[12] = lines[12], lines[11]  # swap data rows 10 and 11
    lines.append(lines.pop(101))  # data row 100 moved to the end
    write_recording(tmp_path, "rec_bad", _text(lines), good[1])

    valid, report = run_validation()

    entry = _entry(report, "rec_bad")
    assert entry["status"] == "accepted"
    # Counted as the number of backward steps between consecutive rows.
    assert entry["problems"] == [
        _problem("rec_bad/accelerometer.csv", "timestamps out of order, sorted", 2, "repaired")
    ]
    assert entry["streams"]["accelerometer"]["unsorted_timestamps"] == 2
    clean = valid["rec_bad"]["accelerometer"]
    np.testing.assert_array_equal(clean.to_numpy(), good[0].to_numpy(float))
    assert list(clean.index) == list(range(N_ROWS))


def test_unsorted_duplicate_keeps_the_first_in_file_order(tmp_path, good, run_validation):
    lines = _lines(good[0])
    t0 = lines[1].split(",")[0]
    lines.append(f"{t0},7.0,7.0,7.0")  # a late, conflicting repeat of the first timestamp
    write_recording(tmp_path, "rec_bad", _text(lines), good[1])

    valid, report = run_validation()

    assert _entry(report, "rec_bad")["problems"] == [
        _problem("rec_bad/accelerometer.csv", "timestamps out of order, sorted", 1, "repaired"),
        _problem("rec_bad/accelerometer.csv", "duplicated timestamps, first kept", 1, "repaired"),
    ]
    np.testing.assert_array_equal(
        valid["rec_bad"]["accelerometer"].to_numpy(), good[0].to_numpy(float)
    )
    assert report["summary"]["rows_repaired_or_dropped"] == 2


def test_gap_is_reported_as_split_not_rejected(tmp_path, good, run_validation):
    acc = good[0]
    offset = acc["timestamp"] - EPOCH_MS
    write_recording(tmp_path, "rec_gap", acc[(offset <= 3000) | (offset >= 4500)], good[1])

    valid, report = run_validation()

    entry = _entry(report, "rec_gap")
    assert entry["status"] == "accepted"
    assert entry["problems"] == [
        _problem(
            "rec_gap/accelerometer.csv",
            "1 gap(s) longer than 100 ms (longest 1.5 s), not interpolated across",
            0,
            "split",
        )
    ]
    assert entry["streams"]["accelerometer"]["gaps"] == 1
    assert entry["streams"]["accelerometer"]["longest_gap_s"] == 1.5
    assert "rec_gap" in valid


# --------------------------------------------------------------------------- too short


def test_too_short_recording(tmp_path, good, run_validation):
    acc, gyro = make_recording(duration_s=2.0)  # 101 rows, 2 s < 127 periods of 20 ms = 2.54 s
    write_recording(tmp_path, "rec_bad", acc, gyro)

    valid, report = run_validation()

    assert "rec_bad" not in valid
    entry = _entry(report, "rec_bad")
    assert entry["status"] == "rejected"
    assert entry["overlap_duration_s"] == 2.0
    assert entry["problems"] == [
        _problem(
            "rec_bad",
            "shorter than one window: 2.00 s of overlapping accelerometer and gyroscope "
            "data < 2.54 s",
            101,
            "rejected",
        )
    ]


def test_too_little_overlap_between_streams(tmp_path, good, run_validation):
    acc, gyro = make_recording(duration_s=10.0)
    gyro = gyro.assign(timestamp=gyro["timestamp"] + 8000)  # 2 s of overlap
    write_recording(tmp_path, "rec_bad", acc, gyro)

    _, report = run_validation()

    entry = _entry(report, "rec_bad")
    assert entry["status"] == "rejected"
    assert entry["overlap_duration_s"] == 2.0
    (problem,) = entry["problems"]
    assert problem["file"] == "rec_bad"
    assert problem["action"] == "rejected"
    assert problem["rows_affected"] == N_ROWS


# --------------------------------------------------------------------------- labels and metadata


def test_bad_label_rows_are_dropped_and_counted(tmp_path, good, run_validation):
    labels = (
        "start,end,activity\n"
        f"{EPOCH_MS},{EPOCH_MS + 2000},WALKING\n"
        f"{EPOCH_MS + 5000},{EPOCH_MS + 4000},SITTING\n"  # end before start
        f"{EPOCH_MS + 6000},{EPOCH_MS + 7000},\n"  # no activity
        f"soon,{EPOCH_MS + 9000},LAYING\n"  # non-numeric start
        f"{EPOCH_MS + 2500},{EPOCH_MS + 2500}, STANDING \n"  # zero length is fine
    )
    write_recording(tmp_path, "rec_bad", good[0], good[1], labels)

    valid, report = run_validation()

    entry = _entry(report, "rec_bad")
    assert entry["status"] == "accepted"
    assert entry["labelled"] is True
    assert entry["problems"] == [
        _problem(
            "rec_bad/labels.csv", "label rows with bad start/end/activity dropped", 3, "repaired"
        )
    ]
    assert valid["rec_bad"]["labels"].to_dict("list") == {
        "start": [float(EPOCH_MS), EPOCH_MS + 2500.0],
        "end": [EPOCH_MS + 2000.0, EPOCH_MS + 2500.0],
        "activity": ["WALKING", "STANDING"],
    }
    assert report["summary"]["rows_repaired_or_dropped"] == 3


@pytest.mark.parametrize(
    ("text", "problem", "rows"),
    [
        ("", "missing column(s) ['start', 'end', 'activity']; recording treated as unlabelled", 0),
        (
            "start,end\n1,2\n3,4\n",
            "missing column(s) ['activity']; recording treated as unlabelled",
            2,
        ),
    ],
)
def test_unusable_labels_file_leaves_recording_unlabelled(
    tmp_path, good, run_validation, text, problem, rows
):
    write_recording(tmp_path, "rec_bad", good[0], good[1], text)

    valid, report = run_validation()

    entry = _entry(report, "rec_bad")
    assert entry["status"] == "accepted"
    assert entry["labelled"] is False
    assert valid["rec_bad"]["labels"] is None
    assert entry["problems"] == [_problem("rec_bad/labels.csv", problem, rows, "ignored")]


def test_unparsable_labels_file_is_ignored(tmp_path, good, run_validation):
    write_recording(tmp_path, "rec_bad", good[0], good[1], "start,end,activity\n1,2,A\n3,4,B,C,D\n")

    valid, report = run_validation()

    (problem,) = _entry(report, "rec_bad")["problems"]
    assert problem["file"] == "rec_bad/labels.csv"
    assert problem["action"] == "ignored"
    assert problem["problem"].startswith("unreadable CSV: ")
    assert valid["rec_bad"]["labels"] is None


def test_unreadable_metadata_is_ignored(tmp_path, good, run_validation):
    write_recording(tmp_path, "rec_bad", good[0], good[1], metadata="{oops")

    valid, report = run_validation()

    entry = _entry(report, "rec_bad")
    assert entry["status"] == "accepted"
    assert entry["subject_id"] == "rec_bad"
    (problem,) = entry["problems"]
    assert problem["file"] == "rec_bad/metadata.json"
    assert problem["action"] == "ignored"
    assert problem["problem"].startswith("unreadable metadata.json: ")
    assert valid["rec_bad"]["subject_id"] == "rec_bad"


# --------------------------------------------------------------------------- whole folders


def test_mixed_folder_keeps_the_good_and_reports_the_bad(tmp_path, run_validation):
    acc, gyro = make_recording()
    short_acc, short_gyro = make_recording(duration_s=1.0)
    write_recording(tmp_path, "a_good", acc, gyro, metadata={"subject_id": "s1"})
    write_recording(tmp_path, "b_empty", "", gyro)
    write_recording(tmp_path, "c_good", acc, _with_bad_x(gyro, [1], "oops"))
    write_recording(tmp_path, "d_no_gyro", acc, None)
    write_recording(tmp_path, "e_short", short_acc, short_gyro)

    valid, report = run_validation()

    assert list(valid) == ["a_good", "c_good"]
    assert valid["a_good"]["subject_id"] == "s1"
    assert [(e["recording_id"], e["status"]) for e in report["recordings"]] == [
        ("a_good", "accepted"),
        ("b_empty", "rejected"),
        ("c_good", "accepted"),
        ("d_no_gyro", "rejected"),
        ("e_short", "rejected"),
    ]
    rejected = {
        e["recording_id"]: [(p["file"], p["action"]) for p in e["problems"]]
        for e in report["recordings"]
        if e["status"] == "rejected"
    }
    assert rejected == {
        "b_empty": [("b_empty/accelerometer.csv", "rejected")],
        "d_no_gyro": [("d_no_gyro/gyroscope.csv", "rejected")],
        "e_short": [("e_short", "rejected")],
    }
    assert report["summary"] == {
        "recordings": 5,
        "accepted": 2,
        "rejected": 3,
        "rows_repaired_or_dropped": 1,
        "units": {"accelerometer": "m/s^2", "gyroscope": "rad/s"},
    }


def test_all_bad_raises_naming_each_file_and_problem(tmp_path, run_validation):
    acc, gyro = make_recording()
    write_recording(tmp_path, "rec_a", "", gyro)
    write_recording(tmp_path, "rec_b", acc, None)
    write_recording(tmp_path, "rec_c", acc.drop(columns="x"), "timestamp,x,y,z\n")

    with pytest.raises(NoValidRecordingsError) as info:
        run_validation()

    assert isinstance(info.value, ValueError)
    assert str(info.value) == (
        "No valid recording remains out of 3:\n"
        "  rec_a/accelerometer.csv: empty file\n"
        "  rec_b/gyroscope.csv: missing stream (file not found)\n"
        "  rec_c/accelerometer.csv: missing column(s) ['x']; expected header timestamp,x,y,z\n"
        "  rec_c/gyroscope.csv: header only, no data rows"
    )


def test_empty_folder_raises(tmp_path, run_validation):
    with pytest.raises(NoValidRecordingsError, match=r"out of 0:\n  \(none found\)"):
        run_validation()


@pytest.mark.parametrize(("rows", "status"), [(128, "accepted"), (127, "rejected")])
def test_exactly_one_window_is_long_enough(tmp_path, good, run_validation, rows, status):
    acc, gyro = make_recording(duration_s=(rows - 1) / 50.0)
    assert len(acc) == rows
    write_recording(tmp_path, "rec_edge", acc, gyro)

    _, report = run_validation()

    assert _entry(report, "rec_edge")["status"] == status


def test_too_sparse_stream_is_rejected(tmp_path, good, run_validation):
    acc, gyro = make_recording(duration_s=10.0)
    gyro = gyro.iloc[::10].reset_index(drop=True)  # 5 Hz: 200 ms apart > max_gap_ms 100
    write_recording(tmp_path, "rec_bad", acc, gyro)

    valid, report = run_validation()

    assert "rec_bad" not in valid
    problem = _entry(report, "rec_bad")["problems"][-1]
    assert problem["file"] == "rec_bad/gyroscope.csv"
    assert problem["problem"].startswith("too sparse: median sample interval 200 ms")
    assert (problem["rows_affected"], problem["action"]) == (51, "rejected")


def test_overlapping_label_segments_are_reported(tmp_path, good, run_validation):
    acc, gyro = make_recording(duration_s=10.0)
    labels = pd.DataFrame(
        {
            "start": [EPOCH_MS, EPOCH_MS + 2000, EPOCH_MS + 6000],
            "end": [EPOCH_MS + 5000, EPOCH_MS + 3000, EPOCH_MS + 9000],
            "activity": ["WALKING", "SITTING", "LAYING"],
        }
    )
    write_recording(tmp_path, "rec_overlap", acc, gyro, labels=labels)

    valid, report = run_validation()

    assert "rec_overlap" in valid
    assert _entry(report, "rec_overlap")["problems"] == [
        _problem(
            "rec_overlap/labels.csv",
            "overlapping label segments: samples covered by more than one are left unlabelled",
            1,
            "ignored",
        )
    ]


# --------------------------------------------------------------------------- units and clocks


def test_timestamps_in_seconds_are_named_as_such_not_too_short(tmp_path, good, run_validation):
    acc, gyro = make_recording(duration_s=20.0)
    for stream in (acc, gyro):
        stream["timestamp"] = stream["timestamp"] / 1000.0
    write_recording(tmp_path, "rec_seconds", acc, gyro)

    valid, report = run_validation()

    assert "rec_seconds" not in valid
    problems = _entry(report, "rec_seconds")["problems"]
    assert problems[0]["file"] == "rec_seconds/accelerometer.csv"
    assert problems[0]["problem"].startswith(
        "timestamps look like seconds, not milliseconds: observed rate 50000 Hz, "
        "which would be 50 Hz in seconds"
    )
    assert problems[0]["action"] == "rejected"
    assert not any("shorter than one window" in p["problem"] for p in problems)


def test_timestamps_in_microseconds_are_named_as_such(tmp_path, good, run_validation):
    acc, gyro = make_recording(duration_s=20.0)
    for stream in (acc, gyro):
        stream["timestamp"] = stream["timestamp"] * 1000
    write_recording(tmp_path, "rec_us", acc, gyro)

    valid, report = run_validation()

    assert "rec_us" not in valid
    problem = _entry(report, "rec_us")["problems"][0]
    assert problem["problem"].startswith("timestamps look like microseconds, not milliseconds")
    assert "too sparse" not in problem["problem"]


def _still_recording(duration_s: float = 30.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A watch lying still, tilted: 1 g spread over three axes, small sensor noise (m/s^2)."""
    acc, gyro = make_recording(duration_s=duration_s)
    noise = np.random.default_rng(0).normal(0.0, 0.02, (len(acc), 3))
    acc[["x", "y", "z"]] = np.array([0.3, 0.4, np.sqrt(1 - 0.25)]) * STANDARD_GRAVITY + noise
    gyro[["x", "y", "z"]] = noise / 10
    return acc, gyro


def test_g_declared_as_ms2_is_rejected_with_the_likely_unit(tmp_path, good, run_validation):
    acc, gyro = _still_recording()
    acc[["x", "y", "z"]] /= STANDARD_GRAVITY  # written in g, declared m/s^2 (si_raw_source)
    write_recording(tmp_path, "rec_in_g", acc, gyro)

    valid, report = run_validation()

    assert "rec_in_g" not in valid
    entry = _entry(report, "rec_in_g")
    (problem,) = entry["problems"]
    assert problem["file"] == "rec_in_g/accelerometer.csv"
    assert problem["problem"].startswith("acceleration at rest reads 0.102 g, not 1 g")
    assert "still windows" in problem["problem"]
    assert problem["problem"].endswith("data in g declared as m/s^2")
    assert (problem["rows_affected"], problem["action"]) == (len(acc), "rejected")
    assert entry["gravity"]["ok"] is False
    assert "rec_good" in valid and _entry(report, "rec_good")["gravity"]["ok"] is True


def test_milli_g_declared_as_g_is_rejected_with_the_likely_unit(
    tmp_path, run_validation, si_raw_source
):
    acc, gyro = _still_recording()
    acc[["x", "y", "z"]] /= STANDARD_GRAVITY
    write_recording(tmp_path, "rec_g", acc.copy(), gyro)
    acc[["x", "y", "z"]] *= 1000.0  # milli-g: beyond the range limit before any gravity check
    write_recording(tmp_path, "rec_mg", acc, gyro)

    valid, report = run_validation({**si_raw_source, "accelerometer_unit": "g"})

    assert list(valid) == ["rec_g"]
    (problem,) = _entry(report, "rec_mg")["problems"]
    assert problem["problem"].startswith("1501 of 1501 rows unusable")
    assert problem["problem"].endswith("median |a| reads 1000 g, data in milli_g declared as g")


def test_unit_mismatch_can_be_kept_with_a_warning(
    tmp_path, good, si_raw_source, validation_params, resampling, windowing
):
    acc, gyro = _still_recording()
    acc[["x", "y", "z"]] /= STANDARD_GRAVITY
    write_recording(tmp_path, "rec_in_g", acc, gyro)
    validation_params["unit_check"]["on_mismatch"] = "warn"
    raw = WearableExportDataset(path=str(tmp_path)).load()

    valid, report = validate_recordings(
        raw, si_raw_source, validation_params, resampling, windowing
    )

    assert "rec_in_g" in valid
    (problem,) = _entry(report, "rec_in_g")["problems"]
    assert problem["action"] == "kept"
    assert problem["problem"].endswith("data in g declared as m/s^2")


def test_a_correct_still_recording_passes_the_unit_check(tmp_path, run_validation):
    acc, gyro = _still_recording()
    write_recording(tmp_path, "rec_still", acc, gyro)

    valid, report = run_validation()

    assert "rec_still" in valid
    gravity = _entry(report, "rec_still")["gravity"]
    assert gravity["ok"] is True and gravity["from"] == "still windows"
    assert gravity["ratio_to_g"] == pytest.approx(1.0, abs=0.01)
