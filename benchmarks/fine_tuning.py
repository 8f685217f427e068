"""Benchmark: fine-tuning a model bundle vs training from scratch, with few labelled subjects.

    python benchmarks/fine_tuning.py [--subjects 2 4 8] [--seeds 0 1] \
        [--variant "adapter:input_adapter=true;frozen_blocks=3;frozen_recurrent=true"]

The scenario, built from HAPT: the device is worn in another orientation, so every window
(train, validation and test) is turned by one fixed rotation (``--rotation-degrees``, Euler
xyz), and only the first N training subjects (sorted by id; ``--subjects``) are labelled.
For each N and seed the network is trained (default parameters) from scratch on those
subjects, and fine-tuned from the bundle (``--bundle``, default the shipped pretrained model)
with the project's ``fine_tuning`` parameters (each ``--variant NAME:key=value;...`` runs
another set of overrides of them, named NAME); the
validation subjects are never fitted (they drive early stopping and the schedule when those
are on), and macro-F1 is measured on the rotated test subjects. Prints one JSON row per run,
then the table of means. ``--score-on unlabelled-training`` scores on the training subjects that are never labelled (those after
the first max(--subjects)) instead. The shipped bundle was trained on those subjects, which
favours fine-tuning there; ``--score-subjects`` with a ``--bundle`` trained without them scores
on people neither model has seen: that is how the ``fine_tuning`` defaults are chosen, so that
the test subjects stay for the report (docs/benchmarks.md gives the commands).

The windows are those of `kedro run --pipelines data_processing` (data/05_model_input).

The second scenario, 12 classes from 6: the bundle knows the six basic activities, the user
labels all twelve (postural transitions too) on N subjects. Run data_processing with
``--params labels.class_set=all`` in a copy of the project, then
``--windows-dir <copy>/data/05_model_input --class-set all --rotation-degrees 0 0 0``: the
fine-tuned model gets a new 12-class head on the bundle's feature layers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import yaml

PROJECT = Path(__file__).resolve().parents[1]


def rotated(windows: dict[str, np.ndarray], rotation: np.ndarray) -> dict[str, np.ndarray]:
    """The windows as a device turned by ``rotation`` would have recorded them."""
    signals = windows["signals"].copy()
    signals[:, :, :3] = signals[:, :, :3] @ rotation.T
    signals[:, :, 3:] = signals[:, :, 3:] @ rotation.T
    return {**windows, "signals": signals}


def first_subjects(
    windows: dict[str, np.ndarray], n: int, rest: bool = False
) -> dict[str, np.ndarray]:
    """The windows of the first ``n`` subjects by numeric id (of the others if ``rest``)."""
    chosen = sorted(set(windows["subject_id"].tolist()), key=int)[:n]
    keep = np.isin(windows["subject_id"], chosen) != rest
    return {key: value[keep] for key, value in windows.items()}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subjects", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variant", action="append", default=None)
    parser.add_argument("--no-scratch", action="store_true", help="only the fine-tuned runs")
    parser.add_argument(
        "--class-set", default=None, help="labels.class_set of the windows (e.g. all: 12 classes)"
    )
    parser.add_argument("--rotation-degrees", type=float, nargs=3, default=[90.0, 0.0, 45.0])
    parser.add_argument("--bundle", default="pretrained", help="init_from: pretrained|path|URI")
    parser.add_argument("--windows-dir", type=Path, default=PROJECT / "data/05_model_input")
    parser.add_argument(
        "--score-on",
        choices=["test", "unlabelled-training"],
        default="test",
        help="test: the report; unlabelled-training: the training subjects after the first "
        "max(--subjects), to choose fine-tuning parameters without the test subjects",
    )
    parser.add_argument(
        "--score-subjects",
        nargs="+",
        default=None,
        help="score on only these subjects of the windows' test split: the held-out subjects "
        "of a bundle (--bundle) trained without them, to choose fine-tuning parameters on "
        "people neither the bundle nor the test report uses",
    )
    return parser.parse_args()


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    """Mean macro-F1 per number of labelled subjects and arm, and the gain over scratch."""
    print(f"\nrotation {args.rotation_degrees} deg (xyz); bundle {args.bundle}; seeds {args.seeds}")
    names = list(dict.fromkeys(r["model"] for r in rows))
    print("| labelled subjects | " + " | ".join(names) + " | gain |")
    print("|---" * (len(names) + 2) + "|")
    for n_subjects in args.subjects:
        means = [
            statistics.mean(
                r["macro_f1"] for r in rows if r["subjects"] == n_subjects and r["model"] == name
            )
            for name in names
        ]
        gain = max(means[1:]) - means[0] if len(means) > 1 else float("nan")
        cells = " | ".join(f"{m:.4f}" for m in means)
        print(f"| {n_subjects} | {cells} | {gain:+.4f} |")


def main() -> None:
    args = parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from scipy.spatial.transform import Rotation
    from sklearn.metrics import f1_score

    from har_mlops.datasets import StartingModelDataset
    from har_mlops.forward import predict_probabilities
    from har_mlops.pipelines.data_processing.nodes import fit_scaler
    from har_mlops.pipelines.training.nodes import choose_model_scaler, train_model

    conf = PROJECT / "conf/base"
    params = yaml.safe_load((conf / "parameters_training.yml").read_text())
    processing = yaml.safe_load((conf / "parameters_data_processing.yml").read_text())
    labels, windowing = processing["labels"], processing["windowing"]
    if args.class_set:
        labels = {**labels, "class_set": args.class_set}
    resampling = processing["resampling"]
    rotation = Rotation.from_euler("xyz", args.rotation_degrees, degrees=True).as_matrix()
    split = {
        name: rotated(dict(np.load(args.windows_dir / f"windows_{name}.npz")), rotation)
        for name in ("train", "validation", "test")
    }
    variants = [("fine-tuned", {})]
    if args.variant:
        variants = []
        for text in args.variant:
            name, _, body = text.partition(":")
            overrides = dict(item.split("=", 1) for item in filter(None, body.split(";")))
            variants.append((name, {k: yaml.safe_load(v) for k, v in overrides.items()}))
    scored = split["test"]
    if args.score_on == "unlabelled-training":
        scored = first_subjects(split["train"], max(args.subjects), rest=True)
    if args.score_subjects:
        if args.bundle == "pretrained":
            raise SystemExit("--score-subjects needs a --bundle trained without those subjects")
        keep = np.isin(scored["subject_id"].astype(str), args.score_subjects)
        missing = set(args.score_subjects) - set(scored["subject_id"][keep].astype(str).tolist())
        if missing:
            raise SystemExit(f"--score-subjects {sorted(missing)}: not in the scored windows")
        scored = {key: value[keep] for key, value in scored.items()}
    rows = []
    for n_subjects in args.subjects:
        train = first_subjects(split["train"], n_subjects)
        for seed in args.seeds:
            # The scenario is N labelled subjects: the validation subjects are never fitted,
            # whatever training.fit_on_validation says (both arms alike).
            training = {**params["training"], "seed": seed, "fit_on_validation": False}
            arms = variants if args.no_scratch else [("scratch", None), *variants]
            for name, overrides in arms:
                starting = (
                    {}
                    if overrides is None
                    else StartingModelDataset(
                        init_from=args.bundle, pretrained=str(PROJECT / "data/06_models/pretrained")
                    ).load()
                )
                fine_tuning = {**params["fine_tuning"], **(overrides or {})}
                scaler = choose_model_scaler(
                    fit_scaler(train), starting, windowing, resampling, labels
                )
                started = time.perf_counter()
                model, history = train_model(
                    train,
                    split["validation"],
                    scaler,
                    starting,
                    params["architecture"],
                    training,
                    fine_tuning,
                    labels,
                )
                seconds = time.perf_counter() - started
                predicted = predict_probabilities(model, scored["signals"], scaler, 256)
                macro_f1 = f1_score(
                    scored["label_index"], predicted.argmax(axis=1), average="macro"
                )
                row = {
                    "subjects": n_subjects,
                    "windows": len(train["label_index"]),
                    "seed": seed,
                    "model": name,
                    "macro_f1": round(float(macro_f1), 4),
                    # Without the warm-up; an ensemble from scratch has one loss per member.
                    "epochs": max(
                        len(values)
                        for key, values in history.items()
                        if key.endswith("loss") and not key.startswith("warm_up_")
                    ),
                    "seconds": round(seconds),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    print_table(rows, args)


if __name__ == "__main__":
    main()
