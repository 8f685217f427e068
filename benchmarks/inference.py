"""Benchmark: a study of day-long 50 Hz watch exports through `kedro run --pipelines inference`.

    python benchmarks/inference.py --days 7 --workers 1,2
    python benchmarks/inference.py --days 7 --workers 2 --single-export

Builds one 24-hour recording once (HAPT test-subject recordings tiled end to end on one clock,
in the wearable export format, under data/01_raw/benchmark_24h/), then a study folder of
``--days`` day-long recordings, each shifted to its own calendar day and spread over
``--participants`` participants (data/01_raw/benchmark_study_<N>d/); ``--single-export``
writes the same days as ONE long export instead (read in time chunks). For each worker count
it runs the inference pipeline in a fresh process with ``inference.cohort.force=true`` and
prints total wall time, seconds per day of data, windows per second, the time of the
processing part (the predict_recordings node) and the peak memory of the whole process tree,
Dask workers included (resident memory and proportional set size, each summed over all processes, sampled
every 0.2 s).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

PROJECT = Path(__file__).resolve().parents[1]
TEST_SUBJECTS = [2, 4, 9, 10, 12, 13, 18, 20, 24]
START_EPOCH_MS = 1_767_261_600_000
DAY_MS = 86_400_000
STREAMS = ("accelerometer.csv", "gyroscope.csv")


def build_day(folder: Path, hours: float = 24.0) -> None:
    """Tiles HAPT test-subject experiments into one continuous recording of ``hours``."""
    from har_mlops.datasets import HaptZipDataset, WearableExportDataset
    from har_mlops.sample_data import to_wearable_export

    hapt = HaptZipDataset(str(PROJECT / "data/01_raw/hapt_rawdata.zip"), subjects=TEST_SUBJECTS)
    recordings = hapt.load()
    n_target = int(hours * 3600 * 50)
    acc = pd.concat([r["accelerometer"] for r in recordings.values()], ignore_index=True)
    gyro = pd.concat([r["gyroscope"] for r in recordings.values()], ignore_index=True)
    idx = np.resize(np.arange(len(acc)), n_target)
    timeline = {"subject_id": "benchmark", "labels": None}
    for name, frame in (("accelerometer", acc), ("gyroscope", gyro)):
        tiled = frame.iloc[idx].reset_index(drop=True)
        tiled["timestamp"] = np.arange(n_target) * 20.0
        timeline[name] = tiled
    export = to_wearable_export(
        timeline, START_EPOCH_MS, "m/s^2", "rad/s", np.random.default_rng(0), jitter_ms=2.0
    )
    WearableExportDataset(str(folder), save_args={"float_format": "%.6f"}).save({"day_24h": export})


def _shifted(source: Path, days: int) -> pa.Table:
    """The day's CSV with its clock moved ``days`` days on."""
    table = pacsv.read_csv(source)
    shifted = pc.add(table["timestamp"], pa.scalar(float(days * DAY_MS)))
    return table.set_column(table.schema.get_field_index("timestamp"), "timestamp", shifted)


def build_study(day: Path, folder: Path, days: int, participants: int, single: bool) -> None:
    """``days`` day-long recordings over ``participants`` participants, or one long export."""
    folder.mkdir(parents=True)
    options = pacsv.WriteOptions(include_header=True)
    if single:
        target = folder / "week"
        target.mkdir()
        (target / "metadata.json").write_text(json.dumps({"subject_id": "P1", "timezone": "UTC"}))
        for stream in STREAMS:
            with pacsv.CSVWriter(
                target / stream, _shifted(day / stream, 0).schema, write_options=options
            ) as w:
                for d in range(days):
                    w.write_table(_shifted(day / stream, d))
        return
    for d in range(days):
        target = folder / f"day{d:02d}"
        target.mkdir()
        meta = {"subject_id": f"P{d % participants + 1}", "timezone": "Europe/Berlin"}
        (target / "metadata.json").write_text(json.dumps(meta))
        for stream in STREAMS:
            pacsv.write_csv(_shifted(day / stream, d // participants), target / stream, options)


def _tree_memory(process: psutil.Process) -> tuple[int, int]:
    """Resident memory (RSS) and proportional set size (PSS) summed over a process tree.

    RSS counts the shared library pages every TensorFlow process maps (~0.4 GB each) once per
    process; PSS shares them out, so its sum is what the tree takes from the machine.
    """
    rss = pss = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            info = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += info.pss
    return rss, pss


def run_once(folder: Path, workers: int, log: Path) -> dict:
    """One `kedro run` in a fresh process; its wall time, peak tree memory and log figures."""
    params = (
        f"inference_dir={folder},inference.cohort.n_workers={workers},inference.cohort.force=true"
    )
    command = [sys.executable, "-m", "kedro", "run", "--pipelines", "inference", "--params", params]
    print(f"$ {' '.join(command)}", flush=True)
    started = time.perf_counter()
    peak_rss = peak_pss = 0
    with log.open("w") as out:
        child = subprocess.Popen(command, cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT)
        watched = psutil.Process(child.pid)
        while child.poll() is None:
            rss, pss = _tree_memory(watched)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.2)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"kedro run failed ({child.returncode}); see {log}")
    run = json.loads((PROJECT / "data/08_reporting/inference_run.json").read_text())
    return {
        "workers": workers,
        "wall_s": round(wall, 1),
        "processing_s": run.get("processing_s"),
        "windows": run["windows"],
        "processed": run["processed"],
        "failed": len(run["failed"]),
        "peak_tree_rss_gb": round(peak_rss / 1e9, 2),
        "peak_tree_pss_gb": round(peak_pss / 1e9, 2),
    }


def main() -> None:
    """Builds the data if needed, then measures each worker count in a fresh process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--participants", type=int, default=2)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--single-export", action="store_true")
    args = parser.parse_args()
    day_folder = PROJECT / "data/01_raw/benchmark_24h"
    if not (day_folder / "day_24h" / "accelerometer.csv").is_file():
        started = time.perf_counter()
        build_day(day_folder)
        print(f"Built the 24 h recording in {time.perf_counter() - started:.0f} s")
    kind = "single" if args.single_export else f"{args.participants}p"
    study = PROJECT / f"data/01_raw/benchmark_study_{args.days}d_{kind}"
    if not study.is_dir():
        started = time.perf_counter()
        build_study(day_folder / "day_24h", study, args.days, args.participants, args.single_export)
        print(f"Built {study.name} in {time.perf_counter() - started:.0f} s")
    results = []
    for workers in (int(w) for w in args.workers.split(",")):
        result = run_once(study, workers, PROJECT / f"data/08_reporting/benchmark_{workers}w.log")
        result["s_per_day"] = round(result["wall_s"] / args.days, 2)
        result["windows_per_s"] = round(result["windows"] / result["wall_s"])
        print(json.dumps(result), flush=True)
        results.append(result)
    if len(results) > 1 and all(r["processing_s"] for r in results):
        base = results[0]
        for r in results[1:]:
            speedup = base["processing_s"] / r["processing_s"]
            print(
                f"processing part: {r['workers']} workers {speedup:.2f}x the throughput of "
                f"{base['workers']} ({base['processing_s']} s -> {r['processing_s']} s)"
            )


if __name__ == "__main__":
    main()
