"""MiniRocket (aeon) on the project's windows: fitted on train + validation, scored on test.

Run by ``benchmarks/training.py --peer minirocket`` in its own virtual environment (aeon pins
numpy and pandas versions the project does not use), so it imports only numpy, scikit-learn
and aeon:

    .venv-peer/bin/python benchmarks/peers/minirocket.py --windows-dir data/05_model_input \\
        --seeds 0 1 2

Prints one JSON line per seed: test macro-F1 and accuracy, fit and predict seconds.

With ``--folds K`` it is scored like a recipe of ``benchmarks/recipe_selection.py`` instead:
fitted on all but one of the K subject folds of the training + validation subjects and
scored on the held-out fold (the same folds), the test subjects never read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from aeon.classification.convolution_based import MiniRocketClassifier
from sklearn.metrics import accuracy_score, f1_score


def load(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Signals as aeon wants them, ``[n, channels, time]`` float64, and the labels."""
    with np.load(folder / f"windows_{split}.npz", allow_pickle=False) as data:
        return data["signals"].transpose(0, 2, 1).astype(np.float64), data["label"].astype(str)


def score_on_folds(args: argparse.Namespace) -> None:
    """One JSON line per seed and held-out fold of recipe_selection.py's subject folds."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from recipe_selection import load_windows, subject_folds

    windows = load_windows(args.windows_dir)
    signals = windows["signals"].transpose(0, 2, 1).astype(np.float64)
    for seed in args.seeds:
        for index, held_out in enumerate(subject_folds(windows["subject_id"], args.folds)):
            mask = np.isin(windows["subject_id"], held_out)
            model = MiniRocketClassifier(random_state=seed, n_jobs=args.n_jobs)
            model.fit(signals[~mask], windows["label_index"][~mask])
            predicted = model.predict(signals[mask])
            macro_f1 = f1_score(windows["label_index"][mask], predicted, average="macro")
            print(
                json.dumps(
                    {"peer": "minirocket", "seed": seed, "fold": index, "held_out": held_out}
                    | {"macro_f1": round(float(macro_f1), 4)}
                ),
                flush=True,
            )


def main() -> None:
    """Fits and scores MiniRocket once per seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows-dir", type=Path, default=Path("data/05_model_input"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--folds", type=int, default=None, help="score on subject folds")
    args = parser.parse_args()
    if args.folds:
        score_on_folds(args)
        return
    parts = [load(args.windows_dir, split) for split in ("train", "validation")]
    x_fit = np.concatenate([p[0] for p in parts])
    y_fit = np.concatenate([p[1] for p in parts])
    x_test, y_test = load(args.windows_dir, "test")
    for seed in args.seeds:
        model = MiniRocketClassifier(random_state=seed, n_jobs=args.n_jobs)
        started = time.perf_counter()
        model.fit(x_fit, y_fit)
        fitted = time.perf_counter()
        predicted = model.predict(x_test)
        done = time.perf_counter()
        print(
            json.dumps(
                {
                    "peer": "minirocket",
                    "seed": seed,
                    "macro_f1": round(float(f1_score(y_test, predicted, average="macro")), 4),
                    "accuracy": round(float(accuracy_score(y_test, predicted)), 4),
                    "fit_windows": int(len(y_fit)),
                    "test_windows": int(len(y_test)),
                    "fit_s": round(fitted - started, 1),
                    "predict_s": round(done - fitted, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
