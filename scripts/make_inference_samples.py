"""Writes the sample recordings of data/01_raw/inference/ from HAPT test-subject recordings.

The shipped model never saw these subjects (UCI test split), so predicting them is a fair
check. Each recording becomes a watch export: epoch-millisecond clock, 2 ms timestamp jitter,
the requested units, and its labels.csv.

    python scripts/make_inference_samples.py                       # m/s^2 and rad/s
    python scripts/make_inference_samples.py --accelerometer-unit milli_g \\
        --gyroscope-unit deg/s --output data/01_raw/inference_milli_g
    python scripts/make_inference_samples.py --fit --output data/01_raw/inference_fit

``--fit`` writes each recording as a Garmin .FIT file instead of the two sensor CSVs
(``accelerometer_data`` / ``gyroscope_data`` messages with calibrated g and deg/s, whole
milliseconds), beside the same labels.csv; it needs fit-tool (``pip install -e ".[dev]"``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from har_mlops.datasets import HaptZipDataset, WearableExportDataset
from har_mlops.sample_data import to_wearable_export

# One experiment each of three UCI test subjects (2, 9, 24).
RECORDINGS = ["exp03_user02", "exp17_user09", "exp48_user24"]
START_EPOCH_MS = 1_767_261_600_000  # 2026-01-01 10:00 UTC


def _as_fit(output: Path, exports: dict) -> None:
    """Replaces each recording's sensor CSVs (in g and deg/s) by one .FIT file."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the FIT writer of tests/
    from tests.fit_files import Truth, write_calibrated

    for rec_id, export in exports.items():
        acc, gyro = export["accelerometer"], export["gyroscope"]
        write_calibrated(
            output / rec_id / f"{rec_id}.fit",
            Truth(
                np.rint(acc["timestamp"].to_numpy()).astype(np.int64),
                acc[["x", "y", "z"]].to_numpy(),
                np.rint(gyro["timestamp"].to_numpy()).astype(np.int64),
                gyro[["x", "y", "z"]].to_numpy(),
            ),
        )
        for stream in ("accelerometer", "gyroscope"):
            (output / rec_id / f"{stream}.csv").unlink()


def main() -> None:
    """Reads the HAPT zip, re-expresses the chosen recordings, writes the export folder."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--zip", type=Path, default=Path("data/01_raw/hapt_rawdata.zip"))
    parser.add_argument("--output", type=Path, default=Path("data/01_raw/inference"))
    parser.add_argument("--accelerometer-unit", default="m/s^2")
    parser.add_argument("--gyroscope-unit", default="rad/s")
    parser.add_argument("--jitter-ms", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fit", action="store_true", help="write .FIT files, not sensor CSVs")
    args = parser.parse_args()
    if args.fit:
        args.accelerometer_unit, args.gyroscope_unit = "g", "deg/s"

    subjects = sorted({int(r.split("user")[1]) for r in RECORDINGS})
    hapt = HaptZipDataset(filepath=str(args.zip), subjects=subjects).load()
    rng = np.random.default_rng(args.seed)
    exports = {
        f"sample_{rec_id}": to_wearable_export(
            hapt[rec_id],
            START_EPOCH_MS + 86_400_000 * day,
            args.accelerometer_unit,
            args.gyroscope_unit,
            rng,
            jitter_ms=args.jitter_ms,
        )
        for day, rec_id in enumerate(RECORDINGS)
    }
    WearableExportDataset(str(args.output), save_args={"float_format": "%.6f"}).save(exports)
    if args.fit:
        _as_fit(args.output, exports)
    for rec_id, export in exports.items():
        minutes = len(export["accelerometer"]) / 50 / 60
        print(f"{args.output / rec_id}: {minutes:.1f} min, subject {export['subject_id']}")


if __name__ == "__main__":
    main()
