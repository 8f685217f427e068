"""MiniRocket (aeon) on the project's windows: fitted on train + validation, scored on test.

Run by ``benchmarks/training.py --peer minirocket`` in its own virtual environment (aeon pins
numpy and pandas versions the project does not use), so it imports only numpy, scikit-learn
and aeon:

    .venv-peer/bin/python benchmarks/peers/minirocket.py --windows-dir data/05_model_input \\
        --seeds 0 1 2

Prints one JSON line per seed: test macro-F1 and accuracy, fit and predict seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from aeon.classification.convolution_based import MiniRocketClassifier
from sklearn.metrics import accuracy_score, f1_score


def load(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Signals as aeon wants them, ``[n, channels, time]`` float64, and the labels."""
    with np.load(folder / f"windows_{split}.npz", allow_pickle=False) as data:
        return data["signals"].transpose(0, 2, 1).astype(np.float64), data["label"].astype(str)


def main() -> None:
    """Fits and scores MiniRocket once per seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows-dir", type=Path, default=Path("data/05_model_input"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args()
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
