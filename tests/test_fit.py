"""The streaming FIT IMU reader against FIT files written at test time (tests/fit_files.py)."""

from __future__ import annotations

import logging
import struct

import numpy as np
import pandas as pd
import pytest

from har_mlops.fit import FitBlock, FitImuReader, read_fit_imu, read_fit_recording
from har_mlops.fit_binary import crc16
from tests import fit_files as ff

# Tolerances of the FIT encodings: float32 fields; one count of the calibrations (half a
# count of rounding, through a rotation); sint16 mG; HSA scales 1.024 (mG) and 28.57143.
FLOAT32_G = 1e-6
FLOAT32_DPS = 1e-4
ACCEL_COUNT = ff.ACCEL_CAL.gain
GYRO_COUNT = ff.GYRO_CAL.gain
COMPRESSED_G = 0.5e-3 + 1e-9
HSA_G = 0.5 / 1.024 * 1e-3 + 1e-9
HSA_DPS = 0.5 / 28.57143 + 1e-9
TIME_MS = 1.0

RATES = [50, 25]


def decode(path, block_samples=50_000) -> tuple[pd.DataFrame, pd.DataFrame, FitImuReader, list]:
    reader = FitImuReader(path, block_samples)
    blocks = list(reader.blocks())
    acc = pd.concat([b.accelerometer for b in blocks], ignore_index=True) if blocks else None
    gyro = pd.concat([b.gyroscope for b in blocks], ignore_index=True) if blocks else None
    return acc, gyro, reader, blocks


def assert_stream(frame: pd.DataFrame, times, values, tol: float) -> None:
    assert list(frame.columns) == ["timestamp", "x", "y", "z"]
    assert (frame.dtypes == np.float64).all()
    assert len(frame) == len(times)
    np.testing.assert_allclose(frame["timestamp"].to_numpy(), times, rtol=0, atol=TIME_MS)
    np.testing.assert_allclose(frame[["x", "y", "z"]].to_numpy(), values, rtol=0, atol=tol)


@pytest.mark.parametrize("hz", RATES)
def test_calibrated_fields_round_trip(tmp_path, hz):
    truth = ff.signals(12, hz)
    acc, gyro, reader, _ = decode(ff.write_calibrated(tmp_path / "a.fit", truth))
    assert_stream(acc, truth.accel_t, truth.accel, FLOAT32_G)
    assert_stream(gyro, truth.gyro_t, truth.gyro, FLOAT32_DPS)
    report = reader.report
    assert report.problems == [] and report.ok and report.complete
    assert report.samples == {"accelerometer": 12 * hz, "gyroscope": 12 * hz}
    assert report.messages == {
        "file_id": 1,
        "accelerometer_data": 12 * hz // 25,
        "gyroscope_data": 12 * hz // 25,
    }
    assert report.first_ms == truth.accel_t[0] and report.last_ms == truth.accel_t[-1]
    assert report.first_timestamp_ms["gyroscope"] == truth.gyro_t[0]
    assert report.units == {
        "timestamp": "ms since Unix epoch (UTC)",
        "accelerometer": "g",
        "gyroscope": "deg/s",
    }
    assert report.time_base == "utc"


@pytest.mark.parametrize("per_message", [30, 7, 1])
def test_message_sizes(tmp_path, per_message):
    """Up to 30 samples per message, and one-sample arrays (decoded by fitdecode as scalars)."""
    truth = ff.signals(3, 50)
    acc, gyro, reader, _ = decode(
        ff.write_calibrated(tmp_path / "a.fit", truth, per_message=per_message)
    )
    assert_stream(acc, truth.accel_t, truth.accel, FLOAT32_G)
    assert_stream(gyro, truth.gyro_t, truth.gyro, FLOAT32_DPS)
    assert reader.report.problems == []


def test_compressed_calibrated_accel_is_milli_g(tmp_path):
    truth = ff.signals(4, 50)
    acc, gyro, reader, _ = decode(ff.write_compressed(tmp_path / "c.fit", truth))
    assert_stream(acc, truth.accel_t, truth.accel, COMPRESSED_G)
    assert gyro.empty and list(gyro.columns) == ["timestamp", "x", "y", "z"]
    assert reader.report.samples == {"accelerometer": 200, "gyroscope": 0}


@pytest.mark.parametrize("hz", RATES)
def test_raw_counts_through_rotated_calibration(tmp_path, hz):
    truth = ff.signals(8, hz)
    acc, gyro, reader, _ = decode(ff.write_raw(tmp_path / "b.fit", truth))
    # Against the truth: within a count of the calibration, so the rotation went the right way.
    assert_stream(acc, truth.accel_t, truth.accel, ACCEL_COUNT)
    assert_stream(gyro, truth.gyro_t, truth.gyro, GYRO_COUNT)
    # Against the profile formula applied to the very counts written.
    counts = ff.ACCEL_CAL.to_counts(truth.accel)
    np.testing.assert_allclose(
        acc[["x", "y", "z"]].to_numpy(), ff.ACCEL_CAL.from_counts(counts), atol=1e-9
    )
    assert reader.report.problems == []
    assert reader.report.messages["three_d_sensor_calibration"] == 2


def test_rotation_is_not_identity(tmp_path):
    """A body-frame +x reading comes out as +y after the 90 degree rotation about z."""
    truth = ff.signals(1, 25)
    body = np.tile([0.5, 0.0, 1.0], (len(truth.accel_t), 1))
    world = body @ ff.ROT_Z_90.T
    assert np.allclose(world[0], [0.0, 0.5, 1.0])
    truth = ff.Truth(truth.accel_t, world, truth.gyro_t, truth.gyro)
    acc, _, _, _ = decode(ff.write_raw(tmp_path / "r.fit", truth))
    np.testing.assert_allclose(
        acc[["x", "y", "z"]].to_numpy()[0], [0.0, 0.5, 1.0], atol=ACCEL_COUNT
    )


def test_mid_file_recalibration_applies_to_following_samples(tmp_path):
    truth = ff.signals(10, 50)
    split = 250
    acc, _, reader, _ = decode(ff.write_recalibrated(tmp_path / "rc.fit", truth, split))
    values = acc[["x", "y", "z"]].to_numpy()
    before = ff.ACCEL_CAL.from_counts(ff.ACCEL_CAL.to_counts(truth.accel[:split]))
    after = ff.ACCEL_RECAL.from_counts(ff.ACCEL_RECAL.to_counts(truth.accel[split:]))
    np.testing.assert_allclose(values[:split], before, atol=1e-9)
    np.testing.assert_allclose(values[split:], after, atol=1e-9)
    assert_stream(acc, truth.accel_t, truth.accel, ff.ACCEL_RECAL.gain)
    # The first calibration would read the second half wrongly: the switch mattered.
    wrong = ff.ACCEL_CAL.from_counts(ff.ACCEL_RECAL.to_counts(truth.accel[split:]))
    assert np.abs(wrong - truth.accel[split:]).max() > 0.1
    assert reader.report.problems == []


def test_raw_samples_without_calibration_are_left_out_and_reported(tmp_path, caplog):
    truth = ff.signals(4, 50)
    with caplog.at_level(logging.WARNING, logger="har_mlops.fit"):
        acc, gyro, reader, blocks = decode(ff.write_uncalibrated(tmp_path / "u.fit", truth))
    assert blocks == [] and acc is None and gyro is None
    assert reader.report.samples == {"accelerometer": 0, "gyroscope": 0}
    assert reader.report.problems == [
        "accelerometer raw samples with unknown calibration: 200 left out"
    ]
    assert "unknown calibration" in caplog.text
    assert reader.report.complete


@pytest.mark.parametrize("hz", RATES)
def test_system_time_converted_through_timestamp_correlation(tmp_path, hz):
    truth = ff.signals(6, hz, start_ms=ff.START_MS + 437)  # a non-whole second start
    acc, gyro, reader, _ = decode(ff.write_system_time(tmp_path / "d.fit", truth))
    assert_stream(acc, truth.accel_t, truth.accel, FLOAT32_G)
    assert_stream(gyro, truth.gyro_t, truth.gyro, FLOAT32_DPS)
    assert reader.report.time_base == "system time via timestamp_correlation"
    assert reader.report.messages["timestamp_correlation"] == 1
    assert reader.report.problems == []


def test_system_time_without_correlation_is_reported(tmp_path):
    truth = ff.signals(2, 50)
    shift = 5_000 - int(truth.accel_t[0])
    messages = [
        ff.file_id(),
        *ff.imu_messages("accelerometer", truth.accel_t + shift, truth.accel, system_time=True),
    ]
    _, _, reader, blocks = decode(ff.write_fit(tmp_path / "s.fit", messages))
    assert blocks == []
    assert reader.report.problems == [
        "accelerometer samples in system time before any timestamp_correlation: 100 left out"
    ]


@pytest.mark.parametrize("hz", RATES)
def test_hsa_messages(tmp_path, hz):
    truth = ff.signals(6, hz)
    acc, gyro, reader, _ = decode(ff.write_hsa(tmp_path / "h.fit", truth))
    assert_stream(acc, truth.accel_t, truth.accel, HSA_G)
    # The gyroscope interval is a whole number of 1/32768 s: within 1 ms over 25 samples.
    assert_stream(gyro, truth.gyro_t, truth.gyro, HSA_DPS)
    assert reader.report.messages["hsa_accelerometer_data"] == 6 * hz // 25
    assert reader.report.messages["hsa_gyroscope_data"] == 6 * hz // 25
    assert reader.report.problems == []


def test_truncated_file_keeps_the_samples_before_the_cut(tmp_path, caplog):
    truth = ff.signals(10, 50)
    with caplog.at_level(logging.WARNING, logger="har_mlops.fit"):
        acc, gyro, reader, _ = decode(ff.write_truncated(tmp_path / "e.fit", truth))
    report = reader.report
    assert len(report.problems) == 1 and report.problems[0].startswith("truncated")
    assert not report.complete and not report.ok
    assert 0 < len(acc) < len(truth.accel_t) and 0 < len(gyro) < len(truth.gyro_t)
    assert_stream(acc, truth.accel_t[: len(acc)], truth.accel[: len(acc)], FLOAT32_G)
    assert_stream(gyro, truth.gyro_t[: len(gyro)], truth.gyro[: len(gyro)], FLOAT32_DPS)
    assert report.samples == {"accelerometer": len(acc), "gyroscope": len(gyro)}
    assert "truncated" in caplog.text


@pytest.mark.parametrize("keep", [13, 5])
def test_file_cut_inside_the_header(tmp_path, keep):
    path = ff.write_calibrated(tmp_path / "h.fit", ff.signals(1, 25))
    path.write_bytes(path.read_bytes()[:keep])
    _, _, reader, blocks = decode(path)
    assert blocks == []
    assert any(p.startswith(("truncated", "header error")) for p in reader.report.problems)


def test_crc_error_is_reported_with_the_samples(tmp_path):
    truth = ff.signals(4, 25)
    acc, gyro, reader, _ = decode(ff.write_bad_crc(tmp_path / "crc.fit", truth))
    assert_stream(acc, truth.accel_t, truth.accel, FLOAT32_G)
    assert_stream(gyro, truth.gyro_t, truth.gyro, FLOAT32_DPS)
    assert len(reader.report.problems) == 1
    assert reader.report.problems[0].startswith("CRC error")


def test_crc_check_can_be_skipped(tmp_path):
    truth = ff.signals(4, 25)
    reader = FitImuReader(ff.write_bad_crc(tmp_path / "crc.fit", truth), check_crc=False)
    assert sum(len(b.accelerometer) for b in reader.blocks()) == 100
    assert reader.report.problems == [] and reader.report.complete


def test_not_a_fit_file_and_missing_file(tmp_path):
    junk = tmp_path / "junk.fit"
    junk.write_bytes(b"this is not a FIT file at all, just text")
    _, _, reader, blocks = decode(junk)
    assert blocks == [] and reader.report.problems[0].startswith("header error")
    _, _, reader, blocks = decode(tmp_path / "missing.fit")
    assert blocks == [] and reader.report.problems[0].startswith("cannot read the file")


def test_file_without_imu_messages(tmp_path):
    _, _, reader, blocks = decode(ff.write_no_imu(tmp_path / "f.fit"))
    assert blocks == []
    assert reader.report.problems == ["no IMU messages"]
    assert reader.report.messages == {"file_id": 1, "record": 5}
    assert reader.report.first_ms is None and reader.report.complete


@pytest.mark.parametrize("block_samples", [1, 24, 25, 100, 1_000])
def test_blocks_are_bounded(tmp_path, block_samples):
    truth = ff.signals(10, 50)  # 500 samples per sensor
    acc, gyro, reader, blocks = decode(
        ff.write_calibrated(tmp_path / "a.fit", truth), block_samples
    )
    assert all(isinstance(b, FitBlock) for b in blocks)
    assert all(len(b.accelerometer) <= block_samples for b in blocks)
    assert all(len(b.gyroscope) <= block_samples for b in blocks)
    if block_samples >= 24:  # about a message or more: full blocks of both but the last
        assert len(blocks) == -(-500 // block_samples)
    else:  # smaller than a message: still bounded, at most 2 x block_samples buffered
        assert len(blocks) < 2 * 500
    assert_stream(acc, truth.accel_t, truth.accel, FLOAT32_G)
    assert_stream(gyro, truth.gyro_t, truth.gyro, FLOAT32_DPS)


def test_read_fit_imu_streams_lazily(tmp_path):
    truth = ff.signals(10, 50)
    blocks = read_fit_imu(ff.write_calibrated(tmp_path / "a.fit", truth), block_samples=100)
    first = next(blocks)
    assert len(first.accelerometer) == 100
    assert first.accelerometer["timestamp"].iloc[0] == truth.accel_t[0]
    assert sum(len(b.accelerometer) for b in blocks) == 400
    with pytest.raises(ValueError, match="block_samples"):
        FitImuReader(tmp_path / "a.fit", block_samples=0)


def test_stopping_early_is_not_a_file_problem(tmp_path):
    reader = FitImuReader(ff.write_uncalibrated(tmp_path / "u.fit", ff.signals(4, 50)), 10)
    blocks = reader.blocks()
    assert next(blocks, None) is None  # nothing decodable: ends at once, problems reported
    assert reader.report.problems
    reader = FitImuReader(ff.write_calibrated(tmp_path / "a.fit", ff.signals(10, 50)), 100)
    blocks = reader.blocks()
    next(blocks)
    blocks.close()
    assert reader.report.problems == [] and not reader.report.complete
    assert reader.report.samples["accelerometer"] >= 100


def test_recording_of_two_files_joined_in_time_order(tmp_path):
    first = ff.signals(6, 50, start_ms=ff.START_MS, seed=1)
    second = ff.signals(6, 50, start_ms=ff.START_MS + 6_000, seed=2)
    path_1 = ff.write_calibrated(tmp_path / "part_1.fit", first)
    path_2 = ff.write_raw(tmp_path / "part_2.fit", second)
    empty = ff.write_no_imu(tmp_path / "empty.fit")
    acc, gyro, reports = read_fit_recording([path_2, empty, path_1])
    assert [r.path for r in reports] == [str(path_1), str(path_2), str(empty)]
    assert reports[2].problems == ["no IMU messages"]
    assert acc["timestamp"].is_monotonic_increasing and len(acc) == 600
    assert_stream(
        acc,
        np.concatenate([first.accel_t, second.accel_t]),
        np.concatenate([first.accel, second.accel]),
        ACCEL_COUNT,
    )
    assert_stream(
        gyro,
        np.concatenate([first.gyro_t, second.gyro_t]),
        np.concatenate([first.gyro, second.gyro]),
        GYRO_COUNT,
    )


def test_hapt_like_signal_round_trips(tmp_path):
    """A HAPT-like 50 Hz minute (walking then standing) survives FIT, in g and deg/s."""
    hz = 50
    acc_truth, gyro_truth = ff.hapt_like(60 * hz, hz, seed=7)
    times = ff.sample_times(60 * hz, hz)
    truth = ff.Truth(times, acc_truth, times, gyro_truth)
    acc, gyro, reports = read_fit_recording([ff.write_calibrated(tmp_path / "hapt.fit", truth)])
    assert reports[0].ok
    assert_stream(acc, times, acc_truth, FLOAT32_G)
    assert_stream(gyro, times, gyro_truth, FLOAT32_DPS)
    # Gravity magnitude ~1 g at rest (second half), as HAPT's total acceleration.
    still = np.linalg.norm(acc[["x", "y", "z"]].to_numpy()[-10 * hz :], axis=1)
    assert abs(still.mean() - 1.0) < 0.02
    # Periods stay 20 ms.
    assert set(np.diff(acc["timestamp"].to_numpy())) == {20.0}


# --------------------------------------------------------------------------- the binary layer


def _definition(local: int, global_num: int, fields, big_endian: bool = False) -> bytes:
    order = "big" if big_endian else "little"
    body = bytes([0, int(big_endian)]) + global_num.to_bytes(2, order) + bytes([len(fields)])
    body += b"".join(bytes([number, size, base]) for number, size, base in fields)
    return bytes([0x40 | local]) + body


def _fit_bytes(records: bytes) -> bytes:
    header = bytes([14, 0x20]) + (2195).to_bytes(2, "little") + len(records).to_bytes(4, "little")
    header += b".FIT"
    header += crc16(header).to_bytes(2, "little")
    body = header + records
    return body + crc16(body).to_bytes(2, "little")


def test_compressed_timestamps_big_endian_and_developer_free_layouts(tmp_path):
    """Hand-written records fit-tool cannot write: compressed-timestamp headers (time from the
    header's 5-bit offset, rolling over), a big-endian definition and an invalid sample."""
    fit_s = 1_100_000_000  # FIT seconds, low 5 bits 0
    fit_s += 30  # so the compressed offsets 31, 0, 1 roll over into the next 32 s period
    float3 = [(5, 8, 0x88), (6, 8, 0x88), (7, 8, 0x88)]  # two float32 per axis
    records = _definition(0, 165, [(253, 4, 0x86), (1, 4, 0x84), *float3])
    records += bytes([0]) + struct.pack("<I2H6f", fit_s, 0, 20, 0.1, 0.2, 0.3, 0.4, 1.0, 1.0)
    records += _definition(1, 165, [(1, 4, 0x84), *float3], big_endian=True)
    expected_t, expected_x = [fit_s * 1000.0, fit_s * 1000.0 + 20], [0.1, 0.2]
    for k, offset in enumerate((31, 0, 1)):
        seconds = fit_s + 1 + k
        assert seconds & 0x1F == offset
        x = float(k)
        y = float("nan") if k == 2 else 0.5  # the last one's second sample is invalid
        records += bytes([0x80 | (1 << 5) | offset])
        records += struct.pack(">2H6f", 0, 20, x, x, 0.5, y, 1.0, 1.0)
        expected_t += [seconds * 1000.0, seconds * 1000.0 + 20][: 1 if k == 2 else 2]
        expected_x += [x, x][: 1 if k == 2 else 2]
    path = tmp_path / "handmade.fit"
    path.write_bytes(_fit_bytes(records))

    acc, gyro, reader, _ = decode(path)

    assert reader.report.messages == {"accelerometer_data": 4}
    assert reader.report.problems == ["accelerometer samples with invalid values: 1 left out"]
    np.testing.assert_allclose(
        acc["timestamp"].to_numpy(), np.array(expected_t) + ff.FIT_EPOCH_MS, rtol=0, atol=1e-3
    )
    np.testing.assert_allclose(acc["x"].to_numpy(), expected_x, atol=1e-6)
    assert len(gyro) == 0


def test_crc16_matches_fit_tool():
    from fit_tool.utils.crc import crc16 as reference

    data = np.random.default_rng(0).integers(0, 256, 50_003, dtype=np.uint8).tobytes()
    for part in (b"", data[:7], data[:4096], data):
        assert crc16(part) == reference(part)
    assert crc16(data[1000:], crc16(data[:1000])) == reference(data)


def test_chained_fit_files_in_one_file(tmp_path):
    first, second = ff.signals(4, 50, seed=1), ff.signals(4, 50, start_ms=ff.START_MS + 4000)
    one = ff.write_calibrated(tmp_path / "1.fit", first).read_bytes()
    two = ff.write_calibrated(tmp_path / "2.fit", second).read_bytes()
    path = tmp_path / "chained.fit"
    path.write_bytes(one + two)

    acc, _, reader, _ = decode(path)

    assert reader.report.problems == [] and reader.report.complete
    assert_stream(
        acc,
        np.concatenate([first.accel_t, second.accel_t]),
        np.concatenate([first.accel, second.accel]),
        FLOAT32_G,
    )
