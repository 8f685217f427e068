"""Writes a demo folder of smartwatch exports from HAPT, good recordings and bad ones.

Each HAPT experiment of the chosen subjects becomes one export folder (epoch-ms clock,
timestamp jitter, the declared units, the gyroscope at its own rate). Alongside, recordings
that exercise validation: some it must reject, some it must repair. Run from the project root:

    python scripts/make_wearable_demo.py
    kedro run --env wearable_demo --pipelines data_processing

then read data/08_reporting/validation_report.json.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from har_mlops.datasets import HaptZipDataset, WearableExportDataset
from har_mlops.sample_data import to_wearable_export

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HOUR_MS = 3_600_000
# bad_recordings() edits rows up to 801 of the source slice (50 Hz).
MIN_BAD_SOURCE_S = 20.0

# What validation should say about each bad recording (shown after writing).
EXPECTED = {
    "bad_empty_accelerometer": "rejected: accelerometer.csv is an empty file",
    "bad_header_only_gyroscope": "rejected: gyroscope.csv has a header and no rows",
    "bad_missing_column": "rejected: accelerometer.csv has no z column",
    "bad_missing_gyroscope": "rejected: no gyroscope.csv",
    "bad_too_short": "rejected: 2 s, shorter than one window",
    "repaired_non_numeric": "accepted: 5 non-numeric accelerometer rows dropped",
    "repaired_duplicated_unsorted": "accepted: 3 swapped pairs sorted, 4 duplicates dropped",
}


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hapt-zip", type=Path, default=PROJECT_ROOT / "data" / "01_raw" / "hapt_rawdata.zip"
    )
    parser.add_argument(
        "--output", type=Path, default=PROJECT_ROOT / "data" / "01_raw" / "wearable_demo"
    )
    parser.add_argument(
        "--subjects",
        type=int,
        nargs="+",
        default=[1, 2, 3, 4, 5, 6],
        help="HAPT subjects to export (conf/wearable_demo's split must name some of them)",
    )
    parser.add_argument("--accelerometer-unit", default="m/s^2", help="g | milli_g | m/s^2")
    parser.add_argument("--gyroscope-unit", default="rad/s", help="rad/s | deg/s")
    parser.add_argument("--gyroscope-rate-hz", type=float, default=40.0)
    parser.add_argument("--jitter-ms", type=float, default=3.0)
    parser.add_argument("--start-epoch-ms", type=float, default=1_700_000_000_000.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--bad-source-crop-s",
        type=float,
        nargs=2,
        default=[5.0, 65.0],
        help="slice of the first subject's first experiment the bad recordings are cut from",
    )
    parser.add_argument("--no-bad", action="store_true", help="write the good recordings only")
    parser.add_argument("--clean", action="store_true", help="delete the whole output folder first")
    return parser.parse_args()


def bad_recordings(
    source: dict[str, Any], short: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Recordings validation must reject or repair, and files to write as raw text."""
    acc, gyro = source["accelerometer"], source["gyroscope"]
    base = {"labels": source["labels"], "subject_id": source["subject_id"]}

    non_numeric = acc.astype({"x": object})
    non_numeric.loc[[10, 200, 400, 600, 800], "x"] = "ERR"

    # Three separated adjacent pairs swapped (3 descents), four rows written twice in a row.
    order = np.arange(len(acc))
    for i in (100, 300, 500):
        order[[i, i + 1]] = order[[i + 1, i]]
    order = np.insert(order, [51, 251, 451, 651], [50, 250, 450, 650])
    shuffled = acc.iloc[order].reset_index(drop=True)

    recordings = {
        "bad_empty_accelerometer": {**base, "accelerometer": None, "gyroscope": gyro},
        "bad_header_only_gyroscope": {**base, "accelerometer": acc, "gyroscope": gyro.iloc[:0]},
        "bad_missing_column": {
            **base,
            "accelerometer": acc.drop(columns="z"),
            "gyroscope": gyro,
        },
        "bad_missing_gyroscope": {**base, "accelerometer": acc, "gyroscope": None},
        "bad_too_short": short,
        "repaired_non_numeric": {**base, "accelerometer": non_numeric, "gyroscope": gyro},
        "repaired_duplicated_unsorted": {**base, "accelerometer": shuffled, "gyroscope": gyro},
    }
    raw_text = {"bad_empty_accelerometer/accelerometer.csv": ""}
    return recordings, raw_text


def main() -> None:
    """Reads HAPT, writes the good exports and the bad ones, prints what was written."""
    args = parse_args()
    low, high = args.bad_source_crop_s
    if high - low < MIN_BAD_SOURCE_S:
        raise SystemExit(f"--bad-source-crop-s must span at least {MIN_BAD_SOURCE_S:g} s")
    output: Path = args.output
    if args.clean and output.exists():
        shutil.rmtree(output)
    hapt = HaptZipDataset(filepath=str(args.hapt_zip), subjects=args.subjects).load()
    missing = sorted(set(args.subjects) - {int(r["subject_id"]) for r in hapt.values()})
    if missing:
        raise SystemExit(f"HAPT has no subject(s) {missing}")
    rng = np.random.default_rng(args.seed)
    options = {
        "accelerometer_unit": args.accelerometer_unit,
        "gyroscope_unit": args.gyroscope_unit,
        "rng": rng,
        "jitter_ms": args.jitter_ms,
        "gyroscope_rate_hz": args.gyroscope_rate_hz,
    }
    exports = {
        rec_id: to_wearable_export(hapt[rec_id], args.start_epoch_ms + i * HOUR_MS, **options)
        for i, rec_id in enumerate(sorted(hapt))
    }
    raw_text: dict[str, str] = {}
    if not args.no_bad:
        first = sorted(hapt)[0]
        start = args.start_epoch_ms + len(exports) * HOUR_MS
        crop = tuple(args.bad_source_crop_s)
        source = to_wearable_export(hapt[first], start, crop_s=crop, **options)
        short = to_wearable_export(
            hapt[first], start + HOUR_MS, crop_s=(crop[0], crop[0] + 2.0), **options
        )
        bad, raw_text = bad_recordings(source, short)
        exports |= bad

    for rec_id in exports:
        if (output / rec_id).exists():
            shutil.rmtree(output / rec_id)  # no stale file from an earlier run survives
    WearableExportDataset(path=str(output)).save(exports)
    for relative, text in raw_text.items():
        (output / relative).write_text(text)

    print(f"Wrote {len(exports)} recordings to {output}")
    print(
        f"  units: accelerometer {args.accelerometer_unit}, gyroscope {args.gyroscope_unit} "
        f"at {args.gyroscope_rate_hz:g} Hz; timestamp jitter +-{args.jitter_ms:g} ms"
    )
    for rec_id, record in exports.items():
        rows = {
            s: "-" if record[s] is None else len(record[s]) for s in ("accelerometer", "gyroscope")
        }
        note = EXPECTED.get(rec_id, "good")
        print(
            f"  {rec_id:30s} subject {record['subject_id']:>3s}  "
            f"acc {rows['accelerometer']!s:>6s}  gyro {rows['gyroscope']!s:>6s}  {note}"
        )


if __name__ == "__main__":
    main()
