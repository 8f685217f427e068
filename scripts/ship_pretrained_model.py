"""Copies the last `kedro run --pipelines training` model into data/06_models/pretrained/.

The shipped copy lets a fresh clone run inference without training. Run it only after a
training run with the default parameters (tests/test_pretrained_model.py checks the contract
still matches them).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

FILES = {
    "data/06_models/har_cnn_bilstm.keras": "har_cnn_bilstm.keras",
    "data/06_models/model_contract.json": "model_contract.json",
    "data/08_reporting/evaluation_report.json": "evaluation_report.json",
    "data/08_reporting/baseline_report.json": "baseline_report.json",
    # Written by the same training run (the monitoring reference nodes are part of it).
    "data/06_models/reference_profile.json": "reference_profile.json",
    # The smoothing's transition matrix, estimated by the same run from its training labels.
    "data/06_models/activity_transitions.json": "activity_transitions.json",
}


def main() -> None:
    """Copies the model bundle and writes a short metrics summary beside it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--note", default="", help="how the model was trained (command, seed)")
    args = parser.parse_args()
    target = args.project / "data/06_models/pretrained"
    target.mkdir(parents=True, exist_ok=True)
    for source, name in FILES.items():
        shutil.copy2(args.project / source, target / name)
    report = json.loads((target / "evaluation_report.json").read_text())
    baseline = json.loads((target / "baseline_report.json").read_text())
    summary = {
        "network": {k: report[k] for k in ("accuracy", "macro_f1", "weighted_f1")},
        "baseline_random_forest": {k: baseline[k] for k in ("accuracy", "macro_f1", "weighted_f1")},
        "test_subjects": report["test_subjects"],
        "note": args.note,
    }
    (target / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    size_kb = (target / "har_cnn_bilstm.keras").stat().st_size / 1024
    print(f"Shipped model ({size_kb:.0f} KB) to {target}: {json.dumps(summary['network'])}")


if __name__ == "__main__":
    main()
