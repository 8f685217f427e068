"""Benchmark: choose a training recipe by subject folds of the training + validation subjects.

    python benchmarks/recipe_selection.py --folds 3 --recipe current \
        --recipe ema:training.ema_momentum=0.99 \
        --recipe spectrum:architecture.spectral_bands=8

Each ``--recipe NAME[:key=value;key=value]`` overrides the project's parameters (dotted keys
into the `architecture` and `training` groups, values parsed as YAML). The training and
validation subjects of `kedro run --pipelines data_processing` are pooled and split into
``--folds`` subject folds; each recipe is trained once per fold (the fold's held-out subjects
drive early stopping and the learning-rate schedule, as the validation subjects do in the
pipeline) and scored on them. The test subjects' windows are never read: they are kept for
the one report of the chosen recipe. Prints one row per recipe and fold, then the mean.
For all 12 classes: ``--windows-dir <copy>/data/05_model_input --class-set all`` after
``kedro run --pipelines data_processing --params labels.class_set=all`` in a copy.

``--inner-validation N`` scores the pipeline's situation instead: N of each fold's training
subjects (the same for every recipe and seed) become the validation subjects that drive early
stopping and the schedule, the held-out fold is only scored, and a recipe may set
``training.fit_on_validation`` (then it also fits those N subjects' windows).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]


def load_windows(windows_dir: Path) -> dict[str, np.ndarray]:
    """Training and validation windows pooled into one set."""
    parts = [np.load(windows_dir / f"windows_{s}.npz") for s in ("train", "validation")]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0].files}


def sorted_subjects(subjects) -> list[str]:
    """Distinct subject ids, numerically where they are numbers."""
    return sorted(set(subjects), key=lambda s: int(s) if str(s).isdigit() else s)


def subject_folds(subjects: np.ndarray, n_folds: int) -> list[list[str]]:
    """Subjects dealt round-robin in sorted order into ``n_folds`` folds."""
    ordered = sorted_subjects(subjects.tolist())
    return [ordered[i::n_folds] for i in range(n_folds)]


def inner_validation_subjects(train_subjects: list[str], count: int) -> list[str]:
    """``count`` of a fold's training subjects, spread over their sorted order."""
    ordered = sorted_subjects(train_subjects)
    return ordered[:: max(1, len(ordered) // count)][:count]


def override(group: dict, dotted: str, value) -> None:
    """Sets ``group[a][b]...`` from ``a.b...``."""
    *path, last = dotted.split(".")
    for key in path:
        group = group.setdefault(key, {})
    group[last] = value


def parse_recipe(text: str) -> tuple[str, dict[str, object]]:
    import yaml

    name, _, body = text.partition(":")
    overrides = {}
    for item in filter(None, body.split(";")):
        key, _, value = item.partition("=")
        overrides[key.strip()] = yaml.safe_load(value)
    return name, overrides


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", action="append", required=True)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--only-folds", type=int, nargs="+", default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--windows-dir", type=Path, default=PROJECT / "data/05_model_input")
    parser.add_argument(
        "--class-set", default=None, help="labels.class_set of the windows (e.g. all: 12 classes)"
    )
    parser.add_argument(
        "--inner-validation",
        type=int,
        default=0,
        help="validation subjects taken from each fold's training subjects (0: the held-out fold)",
    )
    parser.add_argument("--out", type=Path, default=None, help="append JSON rows here")
    parser.add_argument(
        "--save-probabilities",
        type=Path,
        default=None,
        help="folder for each recipe and fold's held-out probabilities (NAME_foldK.npz)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import yaml
    from sklearn.metrics import f1_score

    from har_mlops.forward import predict_probabilities
    from har_mlops.pipelines.data_processing.nodes import fit_scaler
    from har_mlops.pipelines.training.nodes import train_model

    base = yaml.safe_load((PROJECT / "conf/base/parameters_training.yml").read_text())
    processing = PROJECT / "conf/base/parameters_data_processing.yml"
    labels = yaml.safe_load(processing.read_text())["labels"]
    if args.class_set:
        labels = {**labels, "class_set": args.class_set}
    windows = load_windows(args.windows_dir)
    folds = subject_folds(windows["subject_id"], args.folds)
    rows = []
    for text in args.recipe:
        name, overrides = parse_recipe(text)
        params = json.loads(json.dumps({k: base[k] for k in ("architecture", "training")}))
        params["training"]["seed"] = args.seed
        for key, value in overrides.items():
            override(params, key, value)
        if not args.inner_validation:
            # The held-out fold is what the recipe is scored on: it must never be fitted.
            params["training"]["fit_on_validation"] = False
        scores = []
        for index, held_out in enumerate(folds):
            if args.only_folds is not None and index not in args.only_folds:
                continue
            mask = np.isin(windows["subject_id"], held_out)
            fold_train = {k: v[~mask] for k, v in windows.items()}
            fold_valid = {k: v[mask] for k, v in windows.items()}
            stopping_set = fold_valid
            if args.inner_validation:
                inner = np.isin(
                    fold_train["subject_id"],
                    inner_validation_subjects(
                        fold_train["subject_id"].tolist(), args.inner_validation
                    ),
                )
                stopping_set = {k: v[inner] for k, v in fold_train.items()}
                fold_train = {k: v[~inner] for k, v in fold_train.items()}
            scaler = fit_scaler(fold_train)
            started = time.perf_counter()
            model, history = train_model(
                fold_train,
                stopping_set,
                scaler,
                {},
                params["architecture"],
                params["training"],
                base["fine_tuning"],
                labels,
            )
            seconds = time.perf_counter() - started
            probabilities = predict_probabilities(model, fold_valid["signals"], scaler, 256)
            macro_f1 = float(
                f1_score(fold_valid["label_index"], probabilities.argmax(axis=1), average="macro")
            )
            row = {
                "recipe": name,
                "fold": index,
                "held_out": held_out,
                "macro_f1": round(macro_f1, 4),
                # An ensemble's history has one loss per member (member0_loss, ...).
                "epochs": max(len(v) for k, v in history.items() if k.endswith("loss")),
                "seconds": round(seconds),
                "overrides": overrides,
            }
            rows.append(row)
            if args.save_probabilities:
                args.save_probabilities.mkdir(parents=True, exist_ok=True)
                np.savez(
                    args.save_probabilities / f"{name}_fold{index}.npz",
                    probabilities=probabilities,
                    label_index=fold_valid["label_index"],
                )
            scores.append(macro_f1)
            print(json.dumps(row), flush=True)
            if args.out:
                with args.out.open("a") as stream:
                    stream.write(json.dumps(row) + "\n")
        print(f"{name}: mean validation-fold macro-F1 {statistics.mean(scores):.4f}", flush=True)


if __name__ == "__main__":
    main()
