"""Benchmark: the default training pipeline on the full HAPT data, once per seed.

    python benchmarks/training.py [--seeds 42 1 2] [--params labels.class_set=all]
    python benchmarks/training.py --peer minirocket        # and aeon's MiniRocket, same run
    python benchmarks/training.py --peer minirocket --peer-only

Runs `kedro run --pipelines training --params training.seed=N[,...]` in a fresh process per
seed (the windows of `kedro run --pipelines data_processing` must exist; with a changed class
set, run data_processing with the same --params first, or pass --with-data-processing) and
prints, per seed, the network's and the random forest's test macro-F1 and accuracy, the
epochs trained, the wall time and the peak memory of the run, then the mean over seeds.
Every run is tracked in MLflow and registered like any other training run.

``--peer minirocket`` also fits aeon's MiniRocket on the same windows (train + validation,
scored on the test subjects), once per seed, in the same run, and prints its rows and mean
beside the network's. aeon needs other numpy/pandas versions than the project, so it runs in
its own virtual environment (``--peer-venv``, default ``.venv-peer``), created and filled with
``pip install aeon`` on first use (needs the package index once).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
REPORTS = PROJECT / "data/08_reporting"
PEER_REQUIREMENTS = ["aeon>=1.6,<1.7"]


def peer_python(venv: Path) -> Path:
    """The peer environment's interpreter, created with aeon installed if it is missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(python), "-c", "import aeon"], check=False, capture_output=True)
    if probe.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS], check=True
        )
    return python


def run_peer(peer: str, seeds: list[int], venv: Path, windows_dir: Path) -> list[dict]:
    """The peer's rows, one per seed, from its script in the peer environment."""
    script = PROJECT / "benchmarks" / "peers" / f"{peer}.py"
    command = [str(peer_python(venv)), str(script), "--windows-dir", str(windows_dir)]
    command += ["--seeds", *map(str, seeds)]
    result = subprocess.run(command, check=False, cwd=PROJECT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def run_seed(seed: int, extra_params: str | None, pipelines: str) -> dict:
    """One training run in a child process; figures from the reports it writes."""
    params = f"training.seed={seed}" + (f",{extra_params}" if extra_params else "")
    # The kedro of this interpreter's environment, whether or not it is on PATH.
    kedro = Path(sys.executable).with_name("kedro")
    command = [str(kedro), "run", "--pipelines", pipelines, "--params", params]
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
    parser.add_argument("--peer", choices=["minirocket"], help="a classical peer, same run")
    parser.add_argument("--peer-only", action="store_true", help="the peer without training")
    parser.add_argument("--peer-venv", type=Path, default=PROJECT / ".venv-peer")
    parser.add_argument("--windows-dir", type=Path, default=PROJECT / "data/05_model_input")
    args = parser.parse_args()
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    pipelines = "data_processing,training" if args.with_data_processing else "training"
    summary: dict = {}
    if args.peer:
        peer_rows = run_peer(args.peer, args.seeds, args.peer_venv, args.windows_dir)
        for row in peer_rows:
            print(json.dumps(row), flush=True)
        peer_scores = [r["macro_f1"] for r in peer_rows]
        summary[f"{args.peer}_macro_f1_mean"] = round(statistics.mean(peer_scores), 4)
        summary[f"{args.peer}_macro_f1_spread"] = round(max(peer_scores) - min(peer_scores), 4)
        if args.peer_only:
            print(json.dumps({"seeds": args.seeds, **summary}))
            return
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
                "network_macro_f1_spread": round(max(scores) - min(scores), 4),
                **summary,
                "baseline_macro_f1": rows[-1]["baseline_macro_f1"],
                "wall_s_mean": round(statistics.mean(r["wall_s"] for r in rows), 1),
                "peak_rss_mb_max": max(r["peak_rss_mb"] for r in rows),
            }
        )
    )


if __name__ == "__main__":
    main()
