"""Writes the shipped pretrained model's smoothing transitions, and measures what smoothing gains.

The training pipeline estimates `activity_transitions` for the model it trains; the pretrained
model shipped in data/06_models/pretrained/ needs its own, estimated the same way from the full
HAPT training windows:

    kedro run --pipelines data_processing           # writes data/05_model_input/*.npz
    python scripts/estimate_transitions.py          # writes pretrained/activity_transitions.json
    python scripts/estimate_transitions.py --evaluate   # ...and scores window-level vs smoothed

``--evaluate`` predicts every window of the test subjects (all_windows_test.npz) with the shipped
model, smooths them and prints window-level and smoothed macro-F1 and accuracy, as the training
pipeline's evaluate_smoothing node does for a freshly trained model. Parameters are the
project's (conf/base + ``--env``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from har_mlops.config import project_parameters
from har_mlops.contract import class_names, contract_scaler
from har_mlops.datasets import NpzDataset
from har_mlops.model_io import load_bundle_folder
from har_mlops.parameters import Labels, Prediction, Resampling, Smoothing, Windowing
from har_mlops.pipelines.training.nodes import estimate_activity_transitions, evaluate_smoothing

PROJECT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Estimates and writes the transitions; with ``--evaluate``, scores the shipped model."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--env", default="local", help="configuration environment (default local)")
    parser.add_argument("--model-folder", type=Path, default=PROJECT / "data/06_models/pretrained")
    parser.add_argument("--windows", type=Path, default=PROJECT / "data/05_model_input")
    parser.add_argument("--evaluate", action="store_true", help="also score on all_windows_test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    params = project_parameters(PROJECT / "conf", args.env)
    labels = Labels.model_validate(params["labels"])
    windowing = Windowing.model_validate(params["windowing"])
    resampling = Resampling.model_validate(params["resampling"])
    smoothing = Smoothing.model_validate(params["smoothing"])

    windows_train = NpzDataset(str(args.windows / "windows_train.npz")).load()
    transitions = estimate_activity_transitions(
        windows_train, labels, windowing, resampling, smoothing
    )
    target = args.model_folder / "activity_transitions.json"
    target.write_text(json.dumps(transitions, indent=2) + "\n")
    print(
        f"Wrote {target} ({transitions['windows']} windows, "
        f"{transitions['transitions_counted']} transitions counted)"
    )
    if not args.evaluate:
        return

    bundle = load_bundle_folder(args.model_folder)
    if bundle["contract"]["class_names"] != class_names(labels):
        raise SystemExit(
            f"The model predicts {bundle['contract']['class_names']}, "
            f"the parameters name {class_names(labels)}"
        )
    report = evaluate_smoothing(
        bundle["model"],
        NpzDataset(str(args.windows / "all_windows_test.npz")).load(),
        contract_scaler(bundle["contract"]),
        transitions,
        labels,
        windowing,
        resampling,
        Prediction.model_validate(params["inference"]["prediction"]),
        smoothing,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
