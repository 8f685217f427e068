"""FIT files written at test time with fit-tool (BSD-3), from numpy arrays.

Every writer takes the truth as arrays (times in ms since the Unix epoch, values in g or
deg/s) and returns the path written; the tests decode it with ``har_mlops.fit`` and compare.
Timestamps are whole milliseconds (sample periods of 20 ms / 40 ms at 50 / 25 Hz).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fit_tool.fit_file_builder import FitFileBuilder
from fit_tool.profile.messages.accelerometer_data_message import AccelerometerDataMessage
from fit_tool.profile.messages.file_id_message import FileIdMessage
from fit_tool.profile.messages.gyroscope_data_message import GyroscopeDataMessage
from fit_tool.profile.messages.hsa_accelerometer_data_message import HsaAccelerometerDataMessage
from fit_tool.profile.messages.hsa_gyroscope_data_message import HsaGyroscopeDataMessage
from fit_tool.profile.messages.record_message import RecordMessage
from fit_tool.profile.messages.three_d_sensor_calibration_message import (
    ThreeDSensorCalibrationMessage,
)
from fit_tool.profile.messages.timestamp_correlation_message import TimestampCorrelationMessage
from fit_tool.profile.profile_type import FileType, Manufacturer, SensorType

FIT_EPOCH_MS = 631_065_600_000
START_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z, a whole second
LOCAL_IDS = {
    "file_id": 0,
    "accelerometer": 1,
    "gyroscope": 2,
    "calibration": 3,
    "correlation": 4,
    "record": 5,
    "hsa_accelerometer": 6,
    "hsa_gyroscope": 7,
}
# fit-tool reuses a definition for a later message with SHORTER arrays and pads them with
# zeros (not invalid values): a message shorter than the first gets its own local id.
SHORT_MESSAGE_LOCAL_ID_SHIFT = 8
ROT_Z_90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Calibration:
    """A three_d_sensor_calibration: calibrated = M @ ((raw - shift - offset) * factor / divisor)."""

    sensor: str  # "accelerometer" | "gyroscope"
    factor: int
    divisor: int
    level_shift: int
    offset: tuple[int, int, int]
    matrix: np.ndarray  # (3, 3), row-major

    @property
    def gain(self) -> float:
        return self.factor / self.divisor

    def to_counts(self, values: np.ndarray) -> np.ndarray:
        """(n, 3) calibrated values -> (n, 3) uint16 ADC counts (rounded)."""
        body = values @ np.linalg.inv(self.matrix).T / self.gain
        counts = np.rint(body + self.level_shift + np.asarray(self.offset))
        return np.clip(counts, 0, 65534).astype(np.int64)  # 65535 is the invalid value

    def from_counts(self, counts: np.ndarray) -> np.ndarray:
        return ((counts - self.level_shift - np.asarray(self.offset)) * self.gain) @ self.matrix.T


ACCEL_CAL = Calibration("accelerometer", 1, 4096, 32768, (12, -20, 5), ROT_Z_90)
GYRO_CAL = Calibration("gyroscope", 1, 16, 32768, (-3, 7, 0), ROT_Z_90)
# A recalibration: other offsets and gain, and a 90 degree rotation about x.
ACCEL_RECAL = Calibration(
    "accelerometer", 2, 4096, 32768, (-40, 3, 30), np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
)


# -- synthetic signals --------------------------------------------------------------------------


def sample_times(n: int, hz: int, start_ms: int = START_MS) -> np.ndarray:
    period = 1000 // hz
    assert period * hz == 1000, "whole-millisecond periods only"
    return start_ms + np.arange(n, dtype=np.int64) * period


def hapt_like(n: int, hz: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """HAPT-like wrist signals: (accelerometer g, gyroscope deg/s), each (n, 3).

    Gravity on a slowly turning wrist plus a ~1.8 Hz gait oscillation and noise, walking
    for the first half and near-still (standing) for the second.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n) / hz
    walking = (t < t[-1] / 2).astype(float) if n else t
    tilt = 0.3 * np.sin(2 * np.pi * 0.05 * t)
    gait = np.sin(2 * np.pi * 1.8 * t)
    acc = np.column_stack(
        [
            np.sin(tilt) + 0.25 * walking * gait,
            0.1 * np.cos(2 * np.pi * 0.9 * t) * walking,
            np.cos(tilt) + 0.35 * walking * np.sin(2 * np.pi * 3.6 * t),
        ]
    )
    gyro = np.column_stack(
        [
            40 * walking * gait,
            15 * walking * np.cos(2 * np.pi * 1.8 * t),
            5 * np.sin(2 * np.pi * 0.05 * t),
        ]
    )
    acc += rng.normal(0, 0.01, acc.shape)
    gyro += rng.normal(0, 0.5, gyro.shape)
    return acc, gyro


# -- message factories --------------------------------------------------------------------------


def _local_id(kind: str, n: int, per_message: int) -> int:
    return LOCAL_IDS[kind] + (SHORT_MESSAGE_LOCAL_ID_SHIFT if n < per_message else 0)


def _whole_second(ms: int) -> int:
    return ms - ms % 1000


def file_id(time_ms: int = START_MS) -> FileIdMessage:
    m = FileIdMessage(local_id=LOCAL_IDS["file_id"])
    m.type = FileType.ACTIVITY
    m.manufacturer = Manufacturer.DEVELOPMENT.value
    m.product = 0
    m.serial_number = 0x12345678
    m.time_created = _whole_second(time_ms)
    return m


def calibration_message(
    cal: Calibration, time_ms: int = START_MS
) -> ThreeDSensorCalibrationMessage:
    m = ThreeDSensorCalibrationMessage(local_id=LOCAL_IDS["calibration"])
    m.timestamp = _whole_second(time_ms)
    m.sensor_type = (
        SensorType.ACCELEROMETER if cal.sensor == "accelerometer" else SensorType.GYROSCOPE
    )
    m.calibration_factor = cal.factor
    m.calibration_divisor = cal.divisor
    m.level_shift = cal.level_shift
    m.offset_cal = [int(v) for v in cal.offset]
    m.orientation_matrix = [float(v) for v in cal.matrix.ravel()]
    return m


def correlation_message(utc_ms: int, system_ms: int) -> TimestampCorrelationMessage:
    """timestamp_correlation: the UTC time ``utc_ms`` was system time ``system_ms`` (both ms)."""
    m = TimestampCorrelationMessage(local_id=LOCAL_IDS["correlation"])
    m.timestamp = _whole_second(utc_ms)
    m.timestamp_ms = utc_ms % 1000
    # fit-tool takes date_time values as Unix ms: shift the FIT-epoch system seconds.
    m.system_timestamp = _whole_second(system_ms) + FIT_EPOCH_MS
    m.system_timestamp_ms = system_ms % 1000
    return m


def imu_messages(
    sensor: str,
    times_ms: np.ndarray,
    values: np.ndarray,
    *,
    encoding: str = "calibrated",
    calibration: Calibration | None = None,
    per_message: int = 25,
    system_time: bool = False,
) -> Iterator[AccelerometerDataMessage | GyroscopeDataMessage]:
    """accelerometer_data / gyroscope_data messages of ``per_message`` samples each.

    encoding: "calibrated" (float32 g or deg/s), "compressed" (accelerometer only, sint16 mG)
    or "raw" (uint16 counts made with ``calibration``). ``system_time``: ``times_ms`` are
    system time (ms since power-on), written as FIT date_time values below 0x10000000.
    """
    cls = AccelerometerDataMessage if sensor == "accelerometer" else GyroscopeDataMessage
    prefix = "accel" if sensor == "accelerometer" else "gyro"
    if encoding == "raw":
        assert calibration is not None and calibration.sensor == sensor
        payload = calibration.to_counts(values)
    elif encoding == "compressed":
        assert sensor == "accelerometer"
        payload = np.rint(values * 1000.0).astype(np.int64)
    else:
        payload = values
    names = {
        "calibrated": f"calibrated_{prefix}_",
        "compressed": f"compressed_calibrated_{prefix}_",
        "raw": f"{prefix}_",
    }[encoding]
    for start in range(0, len(times_ms), per_message):
        t = times_ms[start : start + per_message]
        m = cls(local_id=_local_id(sensor, len(t), per_message))
        second = _whole_second(int(t[0]))
        m.timestamp = second + (FIT_EPOCH_MS if system_time else 0)
        m.timestamp_ms = int(t[0]) - second
        m.sample_time_offset = [int(v) for v in t - t[0]]
        chunk = payload[start : start + per_message]
        cast = float if encoding == "calibrated" else int
        for axis, column in zip("xyz", chunk.T, strict=True):
            setattr(m, names + axis, [cast(v) for v in column])
        yield m


def hsa_messages(
    sensor: str, times_ms: np.ndarray, values: np.ndarray, per_message: int = 25
) -> Iterator[HsaAccelerometerDataMessage | HsaGyroscopeDataMessage]:
    """hsa_accelerometer_data (values in g, written as mG) / hsa_gyroscope_data (deg/s).

    The HSA sampling interval is ms for the accelerometer and 1/32768 s for the gyroscope
    (FIT profile); the gyroscope interval written is the nearest 1/32768 s count.
    """
    period_ms = int(times_ms[1] - times_ms[0])
    for start in range(0, len(times_ms), per_message):
        t0 = int(times_ms[start])
        chunk = values[start : start + per_message]
        second = _whole_second(t0)
        if sensor == "accelerometer":
            m = HsaAccelerometerDataMessage(
                local_id=_local_id("hsa_accelerometer", len(chunk), per_message)
            )
            m.sampling_interval = period_ms
            data, prefix = chunk * 1000.0, "accel_"
        else:
            m = HsaGyroscopeDataMessage(
                local_id=_local_id("hsa_gyroscope", len(chunk), per_message)
            )
            m.sampling_interval = round(period_ms * 32768 / 1000)
            data, prefix = chunk, "gyro_"
        m.timestamp = second
        m.timestamp_ms = t0 - second
        for axis, column in zip("xyz", data.T, strict=True):
            setattr(m, prefix + axis, [float(v) for v in column])
        yield m


def interleave(*streams: Iterator) -> list:
    """Messages of several sensors alternated one by one, as a device writes them."""
    out = []
    iterators = [iter(s) for s in streams]
    while iterators:
        for it in list(iterators):
            try:
                out.append(next(it))
            except StopIteration:
                iterators.remove(it)
    return out


def write_fit(path: Path, messages) -> Path:
    builder = FitFileBuilder(auto_define=True)
    builder.add_all(list(messages))
    path = Path(path)
    builder.build().to_file(str(path))
    return path


# -- the fixtures -------------------------------------------------------------------------------


@dataclass
class Truth:
    """What a fixture wrote: times (ms since the Unix epoch) and values, per sensor."""

    accel_t: np.ndarray
    accel: np.ndarray
    gyro_t: np.ndarray
    gyro: np.ndarray


def signals(seconds: float, hz: int, start_ms: int = START_MS, seed: int = 0) -> Truth:
    n = int(seconds * hz)
    acc, gyro = hapt_like(n, hz, seed)
    t = sample_times(n, hz, start_ms)
    return Truth(t, acc, t.copy(), gyro)


def write_calibrated(path: Path, truth: Truth, per_message: int = 25) -> Path:
    """(a) calibrated_accel_* (g) and calibrated_gyro_* (deg/s) float32 fields."""
    return write_fit(
        path,
        [
            file_id(int(truth.accel_t[0])),
            *interleave(
                imu_messages("accelerometer", truth.accel_t, truth.accel, per_message=per_message),
                imu_messages("gyroscope", truth.gyro_t, truth.gyro, per_message=per_message),
            ),
        ],
    )


def write_compressed(path: Path, truth: Truth) -> Path:
    """compressed_calibrated_accel_* (sint16 mG); no gyroscope."""
    return write_fit(
        path,
        [
            file_id(int(truth.accel_t[0])),
            *imu_messages("accelerometer", truth.accel_t, truth.accel, encoding="compressed"),
        ],
    )


def write_raw(
    path: Path, truth: Truth, accel_cal: Calibration = ACCEL_CAL, gyro_cal: Calibration = GYRO_CAL
) -> Path:
    """(b) raw counts + three_d_sensor_calibration (90 degree rotation about z)."""
    return write_fit(
        path,
        [
            file_id(int(truth.accel_t[0])),
            calibration_message(accel_cal),
            calibration_message(gyro_cal),
            *interleave(
                imu_messages(
                    "accelerometer",
                    truth.accel_t,
                    truth.accel,
                    encoding="raw",
                    calibration=accel_cal,
                ),
                imu_messages(
                    "gyroscope", truth.gyro_t, truth.gyro, encoding="raw", calibration=gyro_cal
                ),
            ),
        ],
    )


def write_recalibrated(path: Path, truth: Truth, split: int) -> Path:
    """(c) accelerometer raw counts, calibrated with ACCEL_CAL before sample ``split`` and
    with ACCEL_RECAL (written mid-file) from it on. ``split`` must be a multiple of 25."""
    assert split % 25 == 0
    t, v = truth.accel_t, truth.accel
    return write_fit(
        path,
        [
            file_id(int(t[0])),
            calibration_message(ACCEL_CAL),
            *imu_messages(
                "accelerometer", t[:split], v[:split], encoding="raw", calibration=ACCEL_CAL
            ),
            calibration_message(ACCEL_RECAL, int(t[split])),
            *imu_messages(
                "accelerometer", t[split:], v[split:], encoding="raw", calibration=ACCEL_RECAL
            ),
        ],
    )


def write_uncalibrated(path: Path, truth: Truth) -> Path:
    """Raw accelerometer counts with no three_d_sensor_calibration at all."""
    return write_fit(
        path,
        [
            file_id(int(truth.accel_t[0])),
            *imu_messages(
                "accelerometer", truth.accel_t, truth.accel, encoding="raw", calibration=ACCEL_CAL
            ),
        ],
    )


def write_system_time(path: Path, truth: Truth, system_start_ms: int = 123_456_789) -> Path:
    """(d) IMU timestamps in system time (ms since power-on) + a timestamp_correlation.

    Sample i of ``truth`` is written at system time ``system_start_ms + (t_i - t_0)``; the
    correlation says UTC ``t_0`` was system time ``system_start_ms``.
    """
    shift = system_start_ms - int(truth.accel_t[0])
    return write_fit(
        path,
        [
            file_id(int(truth.accel_t[0])),
            correlation_message(int(truth.accel_t[0]), system_start_ms),
            *interleave(
                imu_messages("accelerometer", truth.accel_t + shift, truth.accel, system_time=True),
                imu_messages("gyroscope", truth.gyro_t + shift, truth.gyro, system_time=True),
            ),
        ],
    )


def write_hsa(path: Path, truth: Truth) -> Path:
    """hsa_accelerometer_data (mG) and hsa_gyroscope_data (deg/s) health-snapshot messages."""
    return write_fit(
        path,
        [
            file_id(int(truth.accel_t[0])),
            *interleave(
                hsa_messages("accelerometer", truth.accel_t, truth.accel),
                hsa_messages("gyroscope", truth.gyro_t, truth.gyro),
            ),
        ],
    )


def write_truncated(path: Path, truth: Truth, cut_bytes: int = 1000) -> Path:
    """(e) a valid calibrated file with its last ``cut_bytes`` bytes cut off."""
    write_calibrated(path, truth)
    data = path.read_bytes()
    path.write_bytes(data[:-cut_bytes])
    return path


def write_bad_crc(path: Path, truth: Truth) -> Path:
    """A valid calibrated file whose final CRC bytes are flipped."""
    write_calibrated(path, truth)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    data[-2] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def write_no_imu(path: Path, start_ms: int = START_MS) -> Path:
    """(f) file_id and a few record messages (heart rate), no IMU message."""
    records = []
    for i in range(5):
        m = RecordMessage(local_id=LOCAL_IDS["record"])
        m.timestamp = start_ms + 1000 * i
        m.heart_rate = 70 + i
        records.append(m)
    return write_fit(path, [file_id(start_ms), *records])
