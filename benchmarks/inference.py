"""Benchmark: 24 hours of 50 Hz, 6-axis watch export through `kedro run --pipelines inference`.

    python benchmarks/inference.py [--hours 24]

Builds the recording once (tiling HAPT test-subject recordings end to end on one clock, in
the wearable export format) under data/01_raw/benchmark_24h/, then runs the inference
pipeline on it in a fresh process through a Kedro session and prints wall time, windows per
second, time per node and peak memory (max RSS of that process).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
TEST_SUBJECTS = [2, 4, 9, 10, 12, 13, 18, 20, 24]
START_EPOCH_MS = 1_767_261_600_000


def build_recording(folder: Path, hours: float) -> None:
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


def _peak_rss_mb() -> float:
    """The process' high-water mark of resident memory so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(folder: Path) -> None:
    """Runs the inference pipeline once and prints the figures (child process)."""
    from kedro.framework.hooks import hook_impl
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    class NodeTimer:
        def __init__(self):
            self.started: dict[str, float] = {}
            self.elapsed: dict[str, float] = {}
            self.io: dict[str, float] = {}
            self.peak_mb: dict[str, float] = {}
            self.pipeline_started = float("nan")

        @hook_impl
        def before_node_run(self, node):
            self.started[node.name] = time.perf_counter()

        @hook_impl
        def after_node_run(self, node):
            self.elapsed[node.name] = time.perf_counter() - self.started[node.name]
            self.peak_mb[node.name] = _peak_rss_mb()

        @hook_impl
        def before_dataset_loaded(self, dataset_name):
            self.started[f"load {dataset_name}"] = time.perf_counter()

        @hook_impl
        def after_dataset_loaded(self, dataset_name):
            key = f"load {dataset_name}"
            self.io[key] = time.perf_counter() - self.started[key]

        @hook_impl
        def before_dataset_saved(self, dataset_name):
            self.started[f"save {dataset_name}"] = time.perf_counter()

        @hook_impl
        def after_dataset_saved(self, dataset_name):
            key = f"save {dataset_name}"
            self.io[key] = time.perf_counter() - self.started[key]

        @hook_impl
        def before_pipeline_run(self):
            self.pipeline_started = time.perf_counter()

    started = time.perf_counter()
    bootstrap_project(PROJECT)
    timer = NodeTimer()
    with KedroSession.create(
        project_path=PROJECT, runtime_params={"inference_dir": str(folder)}
    ) as session:
        session._hook_manager.register(timer)
        session.run(pipeline_names=["inference"])
    wall = time.perf_counter() - started
    predictions = pd.read_parquet(PROJECT / "data/07_model_output/window_predictions.parquet")
    peak_mb = _peak_rss_mb()
    figures = {
        "wall_s_including_kedro_start": round(wall, 2),
        "nodes_s": round(sum(timer.elapsed.values()), 2),
        "windows": len(predictions),
        "windows_per_s_end_to_end": round(len(predictions) / wall),
        "peak_rss_mb": round(peak_mb),
        "per_node_s": {k: round(v, 2) for k, v in timer.elapsed.items()},
        # Catalog reads and writes of more than 50 ms (the rest is in-memory hand-offs).
        "io_s": {k: round(v, 2) for k, v in timer.io.items() if v > 0.05},
        "peak_rss_mb_after_node": {k: round(v) for k, v in timer.peak_mb.items()},
        "session_start_to_pipeline_start_s": round(timer.pipeline_started - started, 2),
    }
    print(json.dumps(figures, indent=2))


def main() -> None:
    """Prepares the recording if needed, then measures in a fresh process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--folder", type=Path, default=PROJECT / "data/01_raw/benchmark_24h")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.folder)
        return
    if not (args.folder / "day_24h" / "accelerometer.csv").is_file():
        started = time.perf_counter()
        build_recording(args.folder, args.hours)
        print(f"Built {args.hours} h recording in {time.perf_counter() - started:.0f} s")
    print(f"$ python benchmarks/inference.py --hours {args.hours}")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--measure", "--folder", str(args.folder)], check=True
    )
    # What a user waits for: interpreter start, imports, Kedro session, pipeline, writing.
    print(f"process wall time (start to exit): {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
