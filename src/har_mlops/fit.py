"""Streaming reader of Garmin .FIT IMU data (accelerometer and gyroscope), built on fitdecode.

A FIT file is decoded message by message with :class:`fitdecode.FitReader` (MIT licence) and
the IMU samples are handed out in blocks of at most ``block_samples`` rows per sensor, so that
a day-long file never sits decoded in memory. Each block holds two DataFrames,
``accelerometer`` and ``gyroscope``, with the columns

* ``timestamp``: float64, milliseconds since the Unix epoch (UTC);
* ``x``, ``y``, ``z``: float64, **accelerometer in g, gyroscope in deg/s**. These units are
  fixed by the reader whatever the FIT message carried (milli-g values are divided by 1000).

Messages read (names, units and scales from fitdecode's profile, ``fitdecode/profile.py``):

* ``accelerometer_data`` (165) / ``gyroscope_data`` (164): up to 30 samples per message, each
  at ``timestamp`` + ``timestamp_ms`` + ``sample_time_offset[i]`` (ms). Values are taken, in
  this order of preference, from ``calibrated_accel_*`` (g, float32) /
  ``calibrated_gyro_*`` (deg/s, float32); for the accelerometer
  ``compressed_calibrated_accel_*`` (mG, sint16); else the raw ``accel_*`` / ``gyro_*`` ADC
  counts (uint16) calibrated with the latest ``three_d_sensor_calibration`` (167) of the same
  ``sensor_type`` seen earlier in the file::

      calibrated = M @ ((raw - level_shift - offset_cal) * calibration_factor / calibration_divisor)

  with ``M`` the 3x3 row-major ``orientation_matrix`` (profile scale 65535, applied by
  fitdecode), ``calibration_factor`` in g (accelerometer) or deg/s (gyroscope) per count.
  Raw samples read before any calibration of their sensor are left out and reported
  ("unknown calibration").
* ``hsa_accelerometer_data`` (302): ``accel_*`` arrays (mG, profile scale 1.024), samples
  ``sampling_interval`` ms apart from ``timestamp`` + ``timestamp_ms``.
* ``hsa_gyroscope_data`` (376): ``gyro_*`` arrays (deg/s, profile scale 28.57143), samples
  ``sampling_interval`` apart, which the profile gives in **1/32768 s** (not ms).

Time rule: ``timestamp`` is a FIT ``date_time`` (seconds since 1989-12-31 00:00 UTC, i.e.
Unix seconds - 631065600). Once a ``timestamp_correlation`` (162) message has been read, the
timestamps of all following IMU messages are taken as **system time** and converted to UTC
with the latest correlation: ``utc = t + (correlation.timestamp - correlation.system_timestamp)``,
both sides with their millisecond parts (``timestamp_ms`` / ``system_timestamp_ms``, else the
1/32768 s ``fractional_*`` fields). IMU messages before any correlation are taken as UTC,
except those whose ``timestamp`` is below 0x10000000 (the FIT marker of system time, seconds
since power-on): these cannot be placed and are left out and reported.

Decoding problems (truncated file, CRC error, bad header, parse error) never escape as a
traceback: the samples decoded before the error are kept and the problem is written to the
:class:`FitReport` of the file.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import fitdecode
import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

FIT_EPOCH_S = 631_065_600  # 1989-12-31T00:00:00Z in Unix seconds
FIT_SYSTEM_TIME_MAX = 0x10000000  # date_time values below this are seconds since power-on
STREAMS = ("accelerometer", "gyroscope")
UNITS = {
    "timestamp": "ms since Unix epoch (UTC)",
    "accelerometer": "g",
    "gyroscope": "deg/s",
}
COLUMNS = ["timestamp", "x", "y", "z"]

# Global message numbers (fitdecode/profile.py MESSAGE_TYPES).
MESG_TIMESTAMP_CORRELATION = 162
MESG_GYROSCOPE_DATA = 164
MESG_ACCELEROMETER_DATA = 165
MESG_THREE_D_SENSOR_CALIBRATION = 167
MESG_HSA_ACCELEROMETER_DATA = 302
MESG_HSA_GYROSCOPE_DATA = 376
IMU_MESSAGES = {
    MESG_ACCELEROMETER_DATA: "accelerometer",
    MESG_GYROSCOPE_DATA: "gyroscope",
    MESG_HSA_ACCELEROMETER_DATA: "accelerometer",
    MESG_HSA_GYROSCOPE_DATA: "gyroscope",
}
SENSOR_TYPES = {0: "accelerometer", 1: "gyroscope"}  # profile type sensor_type

# Field numbers.
F_TIMESTAMP = 253
F_TIMESTAMP_MS = 0
F_SAMPLE_TIME_OFFSET = 1
F_RAW_XYZ = (2, 3, 4)  # accel_x/y/z, gyro_x/y/z: counts (uint16)
F_CALIBRATED_XYZ = (5, 6, 7)  # calibrated_accel_* (g), calibrated_gyro_* (deg/s): float32
F_COMPRESSED_XYZ = (8, 9, 10)  # compressed_calibrated_accel_*: mG (sint16)
F_HSA_SAMPLING_INTERVAL = 1
F_HSA_XYZ = (2, 3, 4)  # hsa accel_*: mG (scale 1.024); hsa gyro_*: deg/s (scale 28.57143)
HSA_INTERVAL_MS = {
    MESG_HSA_ACCELEROMETER_DATA: 1.0,  # sampling_interval in ms
    MESG_HSA_GYROSCOPE_DATA: 1000.0 / 32768.0,  # sampling_interval in 1/32768 s
}
HSA_TO_UNIT = {MESG_HSA_ACCELEROMETER_DATA: 1e-3, MESG_HSA_GYROSCOPE_DATA: 1.0}


@dataclass
class FitBlock:
    """IMU samples of one stretch of a FIT file, in file order (not aligned across sensors)."""

    accelerometer: pd.DataFrame
    gyroscope: pd.DataFrame


@dataclass
class FitReport:
    """What was read from one FIT file, and what went wrong."""

    path: str
    messages: dict[str, int] = field(default_factory=dict)  # data messages per message name
    samples: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))
    first_timestamp_ms: dict[str, float] = field(default_factory=dict)  # per stream
    last_timestamp_ms: dict[str, float] = field(default_factory=dict)  # per stream
    units: dict[str, str] = field(default_factory=lambda: dict(UNITS))
    time_base: str = "utc"  # or "system time via timestamp_correlation"
    complete: bool = False  # the decoder reached the end of the file without error
    problems: list[str] = field(default_factory=list)

    @property
    def first_ms(self) -> float | None:
        """Earliest sample time of the file over both sensors, None without samples."""
        return min(self.first_timestamp_ms.values(), default=None)

    @property
    def last_ms(self) -> float | None:
        """Latest sample time of the file over both sensors, None without samples."""
        return max(self.last_timestamp_ms.values(), default=None)

    @property
    def ok(self) -> bool:
        return not self.problems


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: np.empty(0, dtype=np.float64) for c in COLUMNS})


def _array(value) -> np.ndarray:
    """A fitdecode field value (scalar, tuple with None for invalid, or None) as float64."""
    if value is None:
        return np.empty(0, dtype=np.float64)
    return np.atleast_1d(np.asarray(value, dtype=np.float64))


def _ms_part(ms, fraction) -> float:
    if ms is not None:
        return float(ms)
    if fraction is not None:
        return float(fraction) * 1000.0  # fitdecode applied the 1/32768 scale: seconds
    return 0.0


@dataclass
class _Calibration:
    level_shift: float
    offset: np.ndarray  # (3,)
    gain: float  # calibration_factor / calibration_divisor
    matrix: np.ndarray  # (3, 3), row-major orientation matrix

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """(n, 3) counts -> (n, 3) calibrated values: M @ ((raw - shift - offset) * gain)."""
        return ((raw - self.level_shift - self.offset) * self.gain) @ self.matrix.T


class _StreamBuffer:
    """Per-message arrays of one sensor, concatenated only when a block is cut."""

    def __init__(self) -> None:
        self.times: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.count = 0

    def add(self, times: np.ndarray, values: np.ndarray) -> None:
        self.times.append(times)
        self.values.append(values)
        self.count += len(times)

    def take(self, limit: int) -> pd.DataFrame:
        """Removes and returns the first ``limit`` buffered samples (all if fewer)."""
        if self.count == 0:
            return _empty_frame()
        times = np.concatenate(self.times)
        values = np.concatenate(self.values)
        head_t, head_v = times[:limit], values[:limit]
        rest_t, rest_v = times[limit:], values[limit:]
        self.times = [rest_t] if len(rest_t) else []
        self.values = [rest_v] if len(rest_t) else []
        self.count = len(rest_t)
        return pd.DataFrame(
            {"timestamp": head_t, "x": head_v[:, 0], "y": head_v[:, 1], "z": head_v[:, 2]}
        )


class FitImuReader:
    """Streams the IMU samples of one FIT file; ``report`` is complete once ``blocks()`` ends.

    >>> reader = FitImuReader("watch.fit")
    >>> for block in reader.blocks():
    ...     handle(block.accelerometer, block.gyroscope)
    >>> reader.report.problems
    """

    def __init__(
        self, path: str | Path, block_samples: int = 50_000, *, check_crc: bool = True
    ) -> None:
        """``check_crc=False`` skips fitdecode's CRC computation (close to half of the
        decode time, benchmarks/fit_decode.py) and so cannot report CRC errors."""
        if block_samples < 1:
            raise ValueError(f"block_samples must be >= 1, got {block_samples}")
        self.path = Path(path)
        self.block_samples = int(block_samples)
        self.check_crc = check_crc
        self.report = FitReport(path=str(self.path))

    # -- public -------------------------------------------------------------------------------

    def blocks(self) -> Iterator[FitBlock]:
        """Yields :class:`FitBlock` s of at most ``block_samples`` rows per sensor.

        Blocks are full (``block_samples`` rows of each sensor that has that many left) but
        the last ones; the two frames of a block cover about the same stretch of the file,
        in file order, but are not aligned sample by sample.
        """
        self.report = FitReport(path=str(self.path))
        self._messages: Counter[str] = Counter()
        self._calibrations: dict[str, _Calibration] = {}
        self._correlation_ms: float | None = None  # UTC - system time, in ms
        self._left_out: Counter[str] = Counter()
        self._buffers = {s: _StreamBuffer() for s in STREAMS}
        self._stopped = False
        try:
            with fitdecode.FitReader(
                str(self.path),
                processor=None,  # raw date_time ints; profile scales are still applied
                check_crc=(
                    fitdecode.CrcCheck.RAISE if self.check_crc else fitdecode.CrcCheck.DISABLED
                ),
                error_handling=fitdecode.ErrorHandling.IGNORE,
            ) as fit:
                for frame in fit:
                    if frame.frame_type != fitdecode.FIT_FRAME_DATA:
                        continue
                    self._messages[frame.name] += 1
                    try:
                        self._handle(frame)
                    except (ValueError, TypeError, IndexError) as exc:  # malformed fields
                        self._left_out[f"{frame.name} messages not interpretable ({exc})"] += 1
                    yield from self._full_blocks()
            self.report.complete = True
        except fitdecode.FitEOFError as exc:
            self._problem(f"truncated: the file ends inside a record ({exc})")
        except fitdecode.FitCRCError as exc:
            self._problem(f"CRC error: {exc}")
        except fitdecode.FitHeaderError as exc:
            kind = "truncated" if "truncated" in str(exc) else "header error"
            self._problem(f"{kind}: {exc}")
        except fitdecode.FitError as exc:  # FitParseError and any other decoder error
            self._problem(f"parse error: {exc}")
        except OSError as exc:
            self._problem(f"cannot read the file: {exc}")
        except GeneratorExit:  # the caller stopped iterating: not a problem of the file
            self._stopped = True
            raise
        finally:
            self._finish()
        while any(b.count for b in self._buffers.values()):
            yield self._cut(self.block_samples)
        self._buffers = {s: _StreamBuffer() for s in STREAMS}

    # -- message handling ---------------------------------------------------------------------

    def _handle(self, frame) -> None:
        num = frame.global_mesg_num
        if num in IMU_MESSAGES:
            fields = {fd.def_num: fd for fd in frame.fields}
            if num in (MESG_HSA_ACCELEROMETER_DATA, MESG_HSA_GYROSCOPE_DATA):
                self._hsa_message(num, fields)
            else:
                self._imu_message(IMU_MESSAGES[num], fields)
        elif num == MESG_THREE_D_SENSOR_CALIBRATION:
            self._calibration_message({fd.def_num: fd for fd in frame.fields})
        elif num == MESG_TIMESTAMP_CORRELATION:
            self._correlation_message({fd.def_num: fd for fd in frame.fields})

    @staticmethod
    def _value(fields, num):
        fd = fields.get(num)
        return None if fd is None else fd.value

    def _base_ms(self, fields, stream: str, n: int) -> float | None:
        """UTC ms (Unix epoch) of a message's timestamp + timestamp_ms, None if unplaceable."""
        ts = fields.get(F_TIMESTAMP)
        if ts is None or ts.raw_value is None:
            self._left_out[f"{stream} samples without a timestamp"] += n
            return None
        seconds = int(ts.raw_value)
        ms = seconds * 1000.0 + _ms_part(self._value(fields, F_TIMESTAMP_MS), None)
        if self._correlation_ms is not None:
            ms += self._correlation_ms
        elif seconds < FIT_SYSTEM_TIME_MAX:
            self._left_out[f"{stream} samples in system time before any timestamp_correlation"] += n
            return None
        return ms + FIT_EPOCH_S * 1000.0

    def _imu_message(self, stream: str, fields) -> None:
        offsets = _array(self._value(fields, F_SAMPLE_TIME_OFFSET))
        calibration = None
        if all(f in fields for f in F_CALIBRATED_XYZ):
            axes = [_array(fields[f].value) for f in F_CALIBRATED_XYZ]
            scale = 1.0
        elif stream == "accelerometer" and all(f in fields for f in F_COMPRESSED_XYZ):
            axes = [_array(fields[f].value) for f in F_COMPRESSED_XYZ]
            scale = 1e-3  # mG -> g
        elif all(f in fields for f in F_RAW_XYZ):
            axes = [_array(fields[f].value) for f in F_RAW_XYZ]
            scale = 1.0
            calibration = self._calibrations.get(stream)
            if calibration is None:
                self._left_out[f"{stream} raw samples with unknown calibration"] += len(axes[0])
                return
        else:
            self._left_out[f"{stream} messages without x/y/z values"] += 1
            return
        n = min(len(offsets), *(len(a) for a in axes))
        if n != max(len(offsets), *(len(a) for a in axes)):
            self._left_out[f"{stream} samples beyond the shortest of offsets/x/y/z"] += (
                max(len(offsets), *(len(a) for a in axes)) - n
            )
        if n == 0:
            return
        base = self._base_ms(fields, stream, n)
        if base is None:
            return
        values = np.column_stack([a[:n] for a in axes])
        if calibration is not None:
            values = calibration.apply(values)
        elif scale != 1.0:
            values = values * scale
        self._add(stream, base + offsets[:n], values)

    def _hsa_message(self, num: int, fields) -> None:
        stream = IMU_MESSAGES[num]
        axes = [_array(self._value(fields, f)) for f in F_HSA_XYZ]
        n = min(len(a) for a in axes)
        if n == 0:
            self._left_out[f"{stream} messages without x/y/z values"] += 1
            return
        interval = self._value(fields, F_HSA_SAMPLING_INTERVAL)
        if interval is None:
            self._left_out[f"{stream} HSA samples without sampling_interval"] += n
            return
        base = self._base_ms(fields, stream, n)
        if base is None:
            return
        step_ms = float(interval) * HSA_INTERVAL_MS[num]
        values = np.column_stack([a[:n] for a in axes]) * HSA_TO_UNIT[num]
        self._add(stream, base + np.arange(n) * step_ms, values)

    def _calibration_message(self, fields) -> None:
        sensor = fields.get(0)
        stream = SENSOR_TYPES.get(None if sensor is None else sensor.raw_value)
        if stream is None:
            return  # compass / magnetometer: not read here
        factor = self._value(fields, 1)
        divisor = self._value(fields, 2)
        level_shift = self._value(fields, 3)
        offset = _array(self._value(fields, 4))
        matrix = _array(self._value(fields, 5))
        if factor is None or not divisor or level_shift is None:
            self._problem(f"{stream} calibration without factor/divisor/level_shift: ignored")
            return
        if len(offset) != 3:
            offset = np.zeros(3) if len(offset) == 0 else np.resize(offset, 3)
        if len(matrix) != 9 or not np.isfinite(matrix).all():
            self._problem(
                f"{stream} calibration with a malformed orientation_matrix: identity used"
            )
            matrix = np.eye(3).ravel()
        self._calibrations[stream] = _Calibration(
            level_shift=float(level_shift),
            offset=np.nan_to_num(offset),
            gain=float(factor) / float(divisor),
            matrix=matrix.reshape(3, 3),
        )

    def _correlation_message(self, fields) -> None:
        ts = fields.get(F_TIMESTAMP)
        sys_ts = fields.get(1)
        if ts is None or sys_ts is None or ts.raw_value is None or sys_ts.raw_value is None:
            self._problem("timestamp_correlation without timestamp/system_timestamp: ignored")
            return
        utc_ms = int(ts.raw_value) * 1000.0 + _ms_part(
            self._value(fields, 4), self._value(fields, 0)
        )
        sys_ms = int(sys_ts.raw_value) * 1000.0 + _ms_part(
            self._value(fields, 5), self._value(fields, 2)
        )
        self._correlation_ms = utc_ms - sys_ms
        self.report.time_base = "system time via timestamp_correlation"

    # -- blocks -------------------------------------------------------------------------------

    def _add(self, stream: str, times: np.ndarray, values: np.ndarray) -> None:
        keep = np.isfinite(times) & np.isfinite(values).all(axis=1)
        if not keep.all():
            self._left_out[f"{stream} samples with invalid values"] += int((~keep).sum())
            times, values = times[keep], values[keep]
        if len(times) == 0:
            return
        report = self.report
        report.samples[stream] += len(times)
        lo, hi = float(times.min()), float(times.max())
        report.first_timestamp_ms[stream] = min(report.first_timestamp_ms.get(stream, lo), lo)
        report.last_timestamp_ms[stream] = max(report.last_timestamp_ms.get(stream, hi), hi)
        self._buffers[stream].add(times, values)

    def _full_blocks(self) -> Iterator[FitBlock]:
        """Cuts a block once both sensors have ``block_samples`` buffered, or one has twice
        that (a file with one sensor, or sensors written far apart): at most
        2 x block_samples + one message per sensor is ever buffered."""
        limit = self.block_samples
        counts = [b.count for b in self._buffers.values()]
        while min(counts) >= limit or max(counts) >= 2 * limit:
            yield self._cut(limit)
            counts = [b.count for b in self._buffers.values()]

    def _cut(self, limit: int) -> FitBlock:
        return FitBlock(**{s: self._buffers[s].take(limit) for s in STREAMS})

    def _problem(self, text: str) -> None:
        logger.warning("%s: %s", self.path, text)
        self.report.problems.append(text)

    def _finish(self) -> None:
        self.report.messages = dict(self._messages)
        if self._stopped:
            return
        for what, count in self._left_out.items():
            self._problem(f"{what}: {count} left out")
        if not any(self.report.samples.values()) and not any(
            self._messages.get(name) for name in _IMU_MESSAGE_NAMES
        ):
            self._problem("no IMU messages")


_IMU_MESSAGE_NAMES = (
    "accelerometer_data",
    "gyroscope_data",
    "hsa_accelerometer_data",
    "hsa_gyroscope_data",
)


def read_fit_imu(
    path: str | Path, block_samples: int = 50_000, *, check_crc: bool = True
) -> Iterator[FitBlock]:
    """Streams the IMU samples of a FIT file in blocks (see :class:`FitImuReader`).

    Accelerometer in g, gyroscope in deg/s, timestamps in ms since the Unix epoch (UTC).
    Use :class:`FitImuReader` directly to get the file's :class:`FitReport` afterwards.
    """
    return FitImuReader(path, block_samples, check_crc=check_crc).blocks()


def read_fit_recording(
    paths: Iterable[str | Path], block_samples: int = 50_000
) -> tuple[pd.DataFrame, pd.DataFrame, list[FitReport]]:
    """Reads several FIT files of one recording whole and joins them in time order.

    Files are ordered by their first sample time (files without samples last); the joined
    frames are then stably sorted by timestamp. Returns (accelerometer, gyroscope, reports),
    the reports in the joined order. Everything is held in memory: for tests and small data.
    """
    parts = []
    for path in paths:
        reader = FitImuReader(path, block_samples)
        frames: dict[str, list[pd.DataFrame]] = {s: [] for s in STREAMS}
        for block in reader.blocks():
            frames["accelerometer"].append(block.accelerometer)
            frames["gyroscope"].append(block.gyroscope)
        parts.append((reader.report, frames))
    parts.sort(key=lambda p: (p[0].first_ms is None, p[0].first_ms or 0.0))
    joined = []
    for stream in STREAMS:
        frames = [f for _, fr in parts for f in fr[stream]]
        df = pd.concat(frames, ignore_index=True) if frames else _empty_frame()
        df = df.sort_values("timestamp", kind="stable", ignore_index=True)
        joined.append(df)
    return joined[0], joined[1], [report for report, _ in parts]
