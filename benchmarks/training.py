"""Benchmark: the default training pipeline on the full HAPT data, once per seed.

    python benchmarks/training.py [--seeds 42 1 2] [--params labels.class_set=all]

Runs `kedro run --pipelines training --params training.seed=N[,...]` in a fresh process per
seed (the windows of `kedro run --pipelines data_processing` must exist; with a changed class
set, run data_processing with the same --params first, or pass --with-data-processing) and
prints, per seed, the network's and the random forest's test macro-F1 and accuracy, the
epochs trained, the wall time and the peak memory of the run, then the mean over seeds.
Every run is tracked in MLflow and registered like any other training run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
REPORTS = PROJECT / "data/08_reporting"


def run_seed(seed: int, extra_params: str | None, pipelines: str) -> dict:
    """One training run in a child process; figures from the reports it writes."""
    params = f"training.seed={seed}" + (f",{extra_params}" if extra_params else "")
    command = ["kedro", "run", "--pipelines", pipelines, "--params", params]
    started = time.perf_counter()
    with open(PROJECT / f"benchmark_training_seed{seed}.log", "wb") as log:
        child = subprocess.Popen(command, cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT)
        # wait4 gives this child's own peak memory (kedro runs in that one process).
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed; see benchmark_training_seed{seed}.log")
    peak_mb = usage.ru_maxrss / 1024
    network = json.loads((REPORTS / "evaluation_report.json").read_text())
    baseline = json.loads((REPORTS / "baseline_report.json").read_text())
    registration = json.loads((REPORTS / "model_registration.json").read_text())
    return {
        "seed": seed,
        "network_macro_f1": round(network["macro_f1"], 4),
        "network_accuracy": round(network["accuracy"], 4),
        "baseline_macro_f1": round(baseline["macro_f1"], 4),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak_mb),
        "alias": registration.get("alias"),
    }


def main() -> None:
    """Runs every seed and prints one JSON line per seed and a summary line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--params", default=None, help="extra kedro --params, comma-separated")
    parser.add_argument("--with-data-processing", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    pipelines = "data_processing,training" if args.with_data_processing else "training"
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(seed, args.params, pipelines))
        print(json.dumps(rows[-1]), flush=True)
    scores = [r["network_macro_f1"] for r in rows]
    print(
        json.dumps(
            {
                "command": f"kedro run --pipelines {pipelines} --params training.seed=N"
                + (f",{args.params}" if args.params else ""),
                "seeds": args.seeds,
                "network_macro_f1_mean": round(statistics.mean(scores), 4),
                "network_macro_f1_min": min(scores),
                "baseline_macro_f1": rows[-1]["baseline_macro_f1"],
                "wall_s_mean": round(statistics.mean(r["wall_s"] for r in rows), 1),
                "peak_rss_mb_max": max(r["peak_rss_mb"] for r in rows),
            }
        )
    )


if __name__ == "__main__":
    main()
