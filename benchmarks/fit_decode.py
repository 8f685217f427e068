"""Benchmark: streaming decode of a day-long 25 Hz accelerometer + gyroscope FIT file.

    python benchmarks/fit_decode.py               # 24 h: 86,400 messages per sensor
    python benchmarks/fit_decode.py --hours 1     # a shorter file

Writes ``--hours`` of 25 Hz calibrated accelerometer (g) and gyroscope (deg/s) data, 25
samples per message, messages of the two sensors interleaved, into a temp folder with
fit-tool (records flushed to disk an hour at a time, so the writer stays small). It then
decodes the file with ``har_mlops.fit.read_fit_imu`` in a fresh child process and prints
the decode seconds, samples per second (both sensors counted), the number of blocks, and
the child's peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) next to
its resident memory just before decoding (imports done), so the decoder's own share shows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FIT_EPOCH_MS = 631_065_600_000
START_MS = 1_700_000_000_000
HZ = 25
PER_MESSAGE = 25


def _messages_for_hour(hour: int, seconds: int, rng: np.random.Generator):
    from fit_tool.profile.messages.accelerometer_data_message import AccelerometerDataMessage
    from fit_tool.profile.messages.gyroscope_data_message import GyroscopeDataMessage

    n = seconds * HZ
    t = np.arange(n) / HZ + hour * 3600
    gait = np.sin(2 * np.pi * 1.8 * t)
    acc = np.column_stack([0.2 * gait, 0.1 * np.cos(t), 1.0 + 0.3 * gait]) + rng.normal(
        0, 0.01, (n, 3)
    )
    gyro = np.column_stack([40 * gait, 15 * np.cos(2 * np.pi * 1.8 * t), 5 * np.sin(t)])
    offsets = [int(v) for v in np.arange(PER_MESSAGE) * (1000 // HZ)]
    for k in range(0, n, PER_MESSAGE):  # one message per second per sensor
        stamp = START_MS + (hour * 3600 + k // HZ) * 1000
        for cls, prefix, values in (
            (AccelerometerDataMessage, "calibrated_accel_", acc),
            (GyroscopeDataMessage, "calibrated_gyro_", gyro),
        ):
            m = cls(local_id=1 if prefix.endswith("accel_") else 2)
            m.timestamp = stamp
            m.timestamp_ms = 0
            m.sample_time_offset = offsets
            chunk = values[k : k + PER_MESSAGE]
            for axis, column in zip("xyz", chunk.T, strict=True):
                setattr(m, prefix + axis, column.tolist())
            yield m


def write_day(path: Path, hours: float) -> int:
    """Writes the file an hour of records at a time; returns the number of IMU messages."""
    from fit_tool.fit_file_builder import FitFileBuilder
    from fit_tool.fit_file_header import FitFileHeader
    from fit_tool.profile.messages.file_id_message import FileIdMessage
    from fit_tool.profile.profile_type import FileType, Manufacturer
    from fit_tool.utils.crc import crc16

    rng = np.random.default_rng(0)
    builder = FitFileBuilder(auto_define=True)
    m = FileIdMessage(local_id=0)
    m.type = FileType.ACTIVITY
    m.manufacturer = Manufacturer.DEVELOPMENT.value
    m.product = 0
    m.serial_number = 1
    m.time_created = START_MS
    builder.add(m)
    total_seconds = round(hours * 3600)
    messages = 0
    size = 0
    header_len = len(FitFileHeader(records_size=0, gen_crc=True).to_bytes())
    with path.open("wb") as fh:
        fh.write(b"\0" * header_len)  # the header needs the final size: written last
        for hour in range(int(np.ceil(total_seconds / 3600))):
            seconds = min(3600, total_seconds - hour * 3600)
            for message in _messages_for_hour(hour, seconds, rng):
                builder.add(message)
                messages += 1
            chunk = b"".join(record.to_bytes() for record in builder.records)
            builder.records.clear()  # keep the definitions, drop the written records
            fh.write(chunk)
            size += len(chunk)
        header = FitFileHeader(records_size=size, gen_crc=True).to_bytes()
        fh.seek(0)
        fh.write(header)
    # The file CRC covers header + records: recompute over the file, streamed.
    crc = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            crc = crc16(block, crc=crc)
    with path.open("ab") as fh:
        fh.write(crc.to_bytes(2, "little"))
    return messages


def decode(path: Path, block_samples: int, check_crc: bool) -> dict:
    import psutil

    from har_mlops.fit import FitImuReader

    rss_before = psutil.Process().memory_info().rss
    reader = FitImuReader(path, block_samples, check_crc=check_crc)
    started = time.perf_counter()
    samples = blocks = 0
    for block in reader.blocks():
        blocks += 1
        samples += len(block.accelerometer) + len(block.gyroscope)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "decode_s": round(seconds, 2),
        "samples": samples,
        "samples_per_s": round(samples / seconds),
        "blocks": blocks,
        "rss_before_decode_mib": round(rss_before / 2**20, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "report_samples": reader.report.samples,
        "problems": reader.report.problems,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--block-samples", type=int, default=50_000)
    parser.add_argument("--no-crc", action="store_true", help="decode without the CRC check")
    parser.add_argument("--decode", type=Path, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.decode:
        print(json.dumps(decode(args.decode, args.block_samples, not args.no_crc)))
        return
    with tempfile.TemporaryDirectory(prefix="fit_bench_") as tmp:
        path = Path(tmp) / "day.fit"
        started = time.perf_counter()
        messages = write_day(path, args.hours)
        write_s = time.perf_counter() - started
        print(
            f"wrote {args.hours:g} h at {HZ} Hz: {messages} IMU messages, "
            f"{path.stat().st_size / 2**20:.1f} MiB in {write_s:.1f} s"
        )
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--decode",
                str(path),
                "--block-samples",
                str(args.block_samples),
                *(["--no-crc"] if args.no_crc else []),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=2))
    crc = "without" if args.no_crc else "with"
    print(
        f"decode ({crc} CRC check): {result['decode_s']} s, {result['samples_per_s']:,} samples/s, "
        f"peak RSS {result['peak_rss_mib']} MiB (before decoding {result['rss_before_decode_mib']} MiB)"
    )


if __name__ == "__main__":
    main()
