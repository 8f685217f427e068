"""Streaming reader of Garmin .FIT IMU data (accelerometer and gyroscope).

A FIT file is read a chunk at a time; its records are walked and the IMU records of each
definition decoded at once with numpy (:mod:`har_mlops.fit_binary`), with message names,
field scales and offsets from fitdecode's FIT profile (MIT licence). The IMU samples are handed
out in blocks of at most ``block_samples`` rows per sensor, so that a day-long file never sits
decoded in memory. Each block holds two DataFrames,
``accelerometer`` and ``gyroscope``, with the columns

* ``timestamp``: float64, milliseconds since the Unix epoch (UTC);
* ``x``, ``y``, ``z``: float64, **accelerometer in g, gyroscope in deg/s**. These units are
  fixed by the reader whatever the FIT message carried (milli-g values are divided by 1000).

Messages read (names, units and scales as in fitdecode's profile, ``fitdecode/profile.py``):

* ``accelerometer_data`` (165) / ``gyroscope_data`` (164): up to 30 samples per message, each
  at ``timestamp`` + ``timestamp_ms`` + ``sample_time_offset[i]`` (ms). Values are taken, in
  this order of preference, from ``calibrated_accel_*`` (g, float32) /
  ``calibrated_gyro_*`` (deg/s, float32); for the accelerometer
  ``compressed_calibrated_accel_*`` (mG, sint16); else the raw ``accel_*`` / ``gyro_*`` ADC
  counts (uint16) calibrated with the latest ``three_d_sensor_calibration`` (167) of the same
  ``sensor_type`` seen earlier in the file::

      calibrated = M @ ((raw - level_shift - offset_cal) * calibration_factor / calibration_divisor)

  with ``M`` the 3x3 row-major ``orientation_matrix`` (profile scale 65535), ``calibration_factor`` in g (accelerometer) or deg/s (gyroscope) per count.
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

Decoding problems (truncated file, CRC error, bad header, undefined local message) never
escape as a traceback: the samples decoded before the error are kept and the problem is written to the
:class:`FitReport` of the file.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import fitdecode
import numpy as np
import pandas as pd

from har_mlops.fit_binary import (
    Definition,
    FitCrcError,
    FitFormatError,
    FitTruncatedError,
    RecordBatch,
    Walker,
    crc16,
    parse_header,
)

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


def _ms_part(ms: float | None, fraction: float | None, fraction_scale: float) -> float:
    """Milliseconds of a time from its ``*_ms`` field, else its 1/``fraction_scale`` s one."""
    if ms is not None:
        return ms
    if fraction is not None:
        return fraction / fraction_scale * 1000.0
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
        """``check_crc=False`` skips the CRC computation and so cannot report CRC errors."""
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
        self._messages: Counter[int] = Counter()
        self._calibrations: dict[str, _Calibration] = {}
        self._correlation_ms: float | None = None  # UTC - system time, in ms
        self._left_out: Counter[str] = Counter()
        self._buffers = {s: _StreamBuffer() for s in STREAMS}
        self._stopped = False
        try:
            with self.path.open("rb") as handle:
                yield from self._read_files(handle)
            self.report.complete = True
        except FitTruncatedError as exc:
            self._problem(f"truncated: {exc}")
        except FitCrcError as exc:
            self._problem(f"CRC error: {exc}")
        except FitFormatError as exc:
            kind = (
                "header error" if "header" in str(exc) or "FIT file" in str(exc) else "parse error"
            )
            self._problem(f"{kind}: {exc}")
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

    # -- decoding -----------------------------------------------------------------------------

    def _read_files(self, handle: BinaryIO) -> Iterator[FitBlock]:
        """Every FIT file of the stream (a file may chain several), header to CRC."""
        chunk_bytes = min(max(self.block_samples * 16, 1 << 16), 1 << 24)
        first = True
        while True:
            head = handle.read(14)
            if not head and not first:
                return
            first = False
            header = parse_header(head)
            crc = 0
            if header.size == 12:
                handle.seek(-2, 1)
                head = head[:12]
            if self.check_crc:
                if header.crc is not None and crc16(head[:12]) != header.crc:
                    raise FitCrcError(
                        f"header: stored {header.crc:#06x}, computed {crc16(head[:12]):#06x}"
                    )
                crc = crc16(head)
            walker = Walker()
            remaining = header.data_size
            pending = b""
            while remaining > 0:
                chunk = handle.read(min(chunk_bytes, remaining))
                if not chunk:
                    raise FitTruncatedError(
                        f"the file ends inside a record, {remaining} of {header.data_size} "
                        "data bytes missing"
                    )
                remaining -= len(chunk)
                if self.check_crc:
                    crc = crc16(chunk, crc)
                data = pending + chunk
                batch, stop = walker.walk(data, 0, len(data))
                self._decode(data, batch, walker.definitions)
                yield from self._full_blocks()
                pending = data[stop:]
            if pending:
                raise FitFormatError(f"the last record is incomplete ({len(pending)} bytes)")
            stored = handle.read(2)
            if len(stored) < 2:
                raise FitTruncatedError("the file ends before its CRC")
            if self.check_crc and int.from_bytes(stored, "little") != crc:
                raise FitCrcError(
                    f"stored {int.from_bytes(stored, 'little'):#06x}, computed {crc:#06x}"
                )

    def _decode(self, data: bytes, batch: RecordBatch, definitions: list[Definition]) -> None:
        """The IMU samples of a batch of records, in file order.

        Calibration and correlation messages change how the records after them are read, so
        the batch is cut at each one; within a stretch, each definition's records are read
        at once.
        """
        if not batch.positions:
            return
        buffer = np.frombuffer(data, dtype=np.uint8)
        positions = np.asarray(batch.positions, dtype=np.int64)
        index = np.asarray(batch.definitions, dtype=np.int64)
        numbers = np.array([d.global_num for d in definitions], dtype=np.int64)[index]
        self._messages.update(dict(zip(*np.unique(numbers, return_counts=True), strict=True)))
        compressed = np.full(len(positions), np.nan)
        if batch.compressed_times:
            at = np.fromiter(batch.compressed_times, dtype=np.int64)
            compressed[at] = np.fromiter(batch.compressed_times.values(), dtype=np.float64)
        state_changes = np.flatnonzero(
            (numbers == MESG_THREE_D_SENSOR_CALIBRATION) | (numbers == MESG_TIMESTAMP_CORRELATION)
        )
        start = 0
        for cut in [*state_changes.tolist(), len(positions)]:
            self._decode_stretch(
                buffer, positions, index, numbers, compressed, start, cut, definitions
            )
            if cut < len(positions):
                definition = definitions[index[cut]]
                payload = buffer[positions[cut] : positions[cut] + definition.size][None]
                if numbers[cut] == MESG_THREE_D_SENSOR_CALIBRATION:
                    self._calibration_message(definition, payload)
                else:
                    self._correlation_message(definition, payload, compressed[cut])
            start = cut + 1

    def _decode_stretch(
        self, buffer, positions, index, numbers, compressed, start, stop, definitions
    ) -> None:
        """The IMU records ``start:stop`` of a batch, read under the same calibration/clock."""
        if stop <= start:
            return
        imu = np.isin(numbers[start:stop], list(IMU_MESSAGES))
        if not imu.any():
            return
        rows = np.flatnonzero(imu) + start
        parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {s: [] for s in STREAMS}
        for definition_index in np.unique(index[rows]).tolist():
            definition = definitions[definition_index]
            mine = rows[index[rows] == definition_index]
            payloads = buffer[positions[mine, None] + np.arange(definition.size)]
            stream = IMU_MESSAGES[definition.global_num]
            try:
                if definition.global_num in HSA_INTERVAL_MS:
                    decoded = self._hsa_records(definition, payloads, compressed[mine])
                else:
                    decoded = self._imu_records(stream, definition, payloads, compressed[mine])
            except (ValueError, TypeError, IndexError) as exc:  # malformed fields
                name = _message_name(definition.global_num)
                self._left_out[f"{name} messages not interpretable ({exc})"] += len(mine)
                continue
            if decoded is not None:
                times, values, per_record = decoded
                parts[stream].append((np.repeat(mine, per_record), times, values))
        for stream, pieces in parts.items():
            if not pieces:
                continue
            order = np.concatenate([p[0] for p in pieces])
            times = np.concatenate([p[1] for p in pieces])
            values = np.concatenate([p[2] for p in pieces])
            if len(pieces) > 1:  # several definitions interleaved: back to file order
                sort = np.argsort(order, kind="stable")
                times, values = times[sort], values[sort]
            self._add(stream, times, values)

    def _base_ms(
        self,
        definition: Definition,
        payloads: np.ndarray,
        compressed: np.ndarray,
        stream: str,
        per_record: int,
    ) -> np.ndarray:
        """UTC ms (Unix epoch) of each record's timestamp + timestamp_ms; NaN if unplaceable."""
        seconds = definition.values(payloads, F_TIMESTAMP)
        seconds = compressed if seconds is None else seconds[:, 0]
        missing = np.isnan(seconds)
        if missing.any():
            self._left_out[f"{stream} samples without a timestamp"] += (
                int(missing.sum()) * per_record
            )
        ms = definition.values(payloads, F_TIMESTAMP_MS)
        base = seconds * 1000.0 + (0.0 if ms is None else np.nan_to_num(ms[:, 0]))
        if self._correlation_ms is not None:
            base = base + self._correlation_ms
        else:
            system = ~missing & (seconds < FIT_SYSTEM_TIME_MAX)
            if system.any():
                self._left_out[
                    f"{stream} samples in system time before any timestamp_correlation"
                ] += int(system.sum()) * per_record
                base[system] = np.nan
        return base + FIT_EPOCH_S * 1000.0

    def _imu_records(
        self, stream: str, definition: Definition, payloads: np.ndarray, compressed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, int] | None:
        """accelerometer_data / gyroscope_data records: (times, values [n, 3], per record)."""
        fields = definition.fields
        calibration = None
        scale = 1.0
        if all(f in fields for f in F_CALIBRATED_XYZ):
            chosen = F_CALIBRATED_XYZ
        elif stream == "accelerometer" and all(f in fields for f in F_COMPRESSED_XYZ):
            chosen, scale = F_COMPRESSED_XYZ, 1e-3  # mG -> g
        elif all(f in fields for f in F_RAW_XYZ):
            chosen = F_RAW_XYZ
            calibration = self._calibrations.get(stream)
            if calibration is None:
                counts = min(fields[f].count for f in F_RAW_XYZ)
                self._left_out[f"{stream} raw samples with unknown calibration"] += counts * len(
                    payloads
                )
                return None
        else:
            self._left_out[f"{stream} messages without x/y/z values"] += len(payloads)
            return None
        axes = [definition.values(payloads, f) for f in chosen]
        offsets = definition.values(payloads, F_SAMPLE_TIME_OFFSET)
        lengths = [0 if offsets is None else offsets.shape[1], *(a.shape[1] for a in axes)]
        n = min(lengths)
        if n != max(lengths):
            self._left_out[f"{stream} samples beyond the shortest of offsets/x/y/z"] += (
                max(lengths) - n
            ) * len(payloads)
        if n == 0:
            return None
        base = self._base_ms(definition, payloads, compressed, stream, n)
        placed = ~np.isnan(base)
        times = (base[placed, None] + offsets[placed, :n]).ravel()
        values = np.stack([a[placed, :n] for a in axes], axis=-1).reshape(-1, 3)
        if calibration is not None:
            values = calibration.apply(values)
        elif scale != 1.0:
            values = values * scale
        return times, values, np.where(placed, n, 0)

    def _hsa_records(
        self, definition: Definition, payloads: np.ndarray, compressed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """hsa_accelerometer_data / hsa_gyroscope_data records, spaced by their interval."""
        num = definition.global_num
        stream = IMU_MESSAGES[num]
        profile_fields = fitdecode.profile.MESSAGE_TYPES[num].fields
        axes = [definition.values(payloads, f) for f in F_HSA_XYZ]
        if any(a is None for a in axes):
            self._left_out[f"{stream} messages without x/y/z values"] += len(payloads)
            return None
        axes = [a / (profile_fields[f].scale or 1.0) for a, f in zip(axes, F_HSA_XYZ, strict=True)]
        n = min(a.shape[1] for a in axes)
        interval = definition.values(payloads, F_HSA_SAMPLING_INTERVAL)
        interval = np.full(len(payloads), np.nan) if interval is None else interval[:, 0]
        if np.isnan(interval).any():
            self._left_out[f"{stream} HSA samples without sampling_interval"] += (
                int(np.isnan(interval).sum()) * n
            )
        base = self._base_ms(definition, payloads, compressed, stream, n)
        placed = ~np.isnan(base) & ~np.isnan(interval)
        step_ms = interval[placed] * HSA_INTERVAL_MS[num]
        times = (base[placed, None] + np.arange(n) * step_ms[:, None]).ravel()
        values = np.stack([a[placed, :n] for a in axes], axis=-1).reshape(-1, 3) * HSA_TO_UNIT[num]
        return times, values, np.where(placed, n, 0)

    def _calibration_message(self, definition: Definition, payload: np.ndarray) -> None:
        def first(number: int) -> float | None:
            values = definition.values(payload, number)
            return None if values is None or np.isnan(values[0, 0]) else float(values[0, 0])

        sensor = first(0)
        stream = SENSOR_TYPES.get(None if sensor is None else int(sensor))
        if stream is None:
            return  # compass / magnetometer: not read here
        factor, divisor, level_shift = first(1), first(2), first(3)
        offset = definition.values(payload, 4)
        offset = np.zeros(3) if offset is None else offset[0]
        matrix = definition.values(payload, 5)
        if factor is None or not divisor or level_shift is None:
            self._problem(f"{stream} calibration without factor/divisor/level_shift: ignored")
            return
        if len(offset) != 3:
            offset = np.zeros(3) if len(offset) == 0 else np.resize(offset, 3)
        if matrix is None or matrix.shape[1] != 9 or not np.isfinite(matrix).all():
            self._problem(
                f"{stream} calibration with a malformed orientation_matrix: identity used"
            )
            matrix = np.eye(3).reshape(1, 9)
        else:
            matrix = (
                matrix
                / fitdecode.profile.MESSAGE_TYPES[MESG_THREE_D_SENSOR_CALIBRATION].fields[5].scale
            )
        self._calibrations[stream] = _Calibration(
            level_shift=level_shift,
            offset=np.nan_to_num(offset),
            gain=factor / divisor,
            matrix=matrix.reshape(3, 3),
        )

    def _correlation_message(
        self, definition: Definition, payload: np.ndarray, compressed_time: float
    ) -> None:
        def first(number: int) -> float | None:
            values = definition.values(payload, number)
            return None if values is None or np.isnan(values[0, 0]) else float(values[0, 0])

        utc_s = first(F_TIMESTAMP)
        if utc_s is None and not np.isnan(compressed_time):
            utc_s = float(compressed_time)
        system_s = first(1)
        if utc_s is None or system_s is None:
            self._problem("timestamp_correlation without timestamp/system_timestamp: ignored")
            return
        fraction = fitdecode.profile.MESSAGE_TYPES[MESG_TIMESTAMP_CORRELATION].fields[0].scale
        utc_ms = utc_s * 1000.0 + _ms_part(first(4), first(0), fraction)
        system_ms = system_s * 1000.0 + _ms_part(first(5), first(2), fraction)
        self._correlation_ms = utc_ms - system_ms
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
        that (a file with one sensor, or sensors written far apart); a read chunk of the file
        holds about one block, so memory stays a few blocks whatever the file's length."""
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
        self.report.messages = {
            _message_name(num): int(count) for num, count in sorted(self._messages.items())
        }
        if self._stopped:
            return
        for what, count in self._left_out.items():
            self._problem(f"{what}: {count} left out")
        if not any(self.report.samples.values()) and not any(
            self.report.messages.get(name) for name in _IMU_MESSAGE_NAMES
        ):
            self._problem("no IMU messages")


def _message_name(number: int) -> str:
    """The FIT profile's name of a global message number (``unknown_<n>`` if it has none)."""
    message = fitdecode.profile.MESSAGE_TYPES.get(number)
    return message.name if message is not None else f"unknown_{number}"


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
