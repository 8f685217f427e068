"""Benchmark input: the project's windows turned into each recording's walking frame.

    python benchmarks/walking_frame.py --windows-dir data/05_model_input --out /tmp/aligned
    python benchmarks/recipe_selection.py --folds 3 --windows-dir /tmp/aligned --recipe current

A posture angle measured against the recording's own walking gravity vector is a published
lever for sitting vs standing (the network's main confusion): standing holds the trunk, and
the device, about as upright as walking does; sitting tilts it. This script measures the lever
before it is wired into the pipelines: per recording, the gravity direction of its moving
windows (standard deviation of the acceleration magnitude >= ``--min-motion`` m/s^2; every
window of the recording, labelled or not, from ``all_windows_*.npz``) is turned onto one
canonical direction (the mean of the training recordings' directions) by the smallest
rotation, applied to both sensors of every window of that recording. A recording with fewer
than ``--min-windows`` moving windows is left as it is. Writes ``windows_*.npz`` and
``all_windows_*.npz`` with the same keys into ``--out`` and prints each recording's angle.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SPLITS = ("train", "validation", "test")


def walking_gravity(
    signals: np.ndarray, recording_id: np.ndarray, min_motion: float, min_windows: int
) -> dict[str, np.ndarray]:
    """Unit gravity direction of each recording's moving windows; absent with too few."""
    acc = signals[:, :, :3].astype(np.float64)
    mean = acc.mean(axis=1)
    moving = np.linalg.norm(acc, axis=2).std(axis=1) >= min_motion
    directions = {}
    for recording in np.unique(recording_id):
        chosen = moving & (recording_id == recording)
        if chosen.sum() >= min_windows:
            vector = mean[chosen].mean(axis=0)
            directions[str(recording)] = vector / np.linalg.norm(vector)
    return directions


def smallest_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The rotation about source x target that turns unit ``source`` onto unit ``target``."""
    axis = np.cross(source, target)
    cosine = float(source @ target)
    skew = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    # Rodrigues' formula without normalising the axis; undefined only for opposite vectors.
    return np.eye(3) + skew + skew @ skew / (1.0 + cosine)


def align(
    windows: dict[str, np.ndarray], directions: dict[str, np.ndarray], canonical: np.ndarray
) -> dict[str, np.ndarray]:
    """The windows with each recording's sensors turned onto the canonical walking direction."""
    signals = windows["signals"].copy()
    for recording, direction in directions.items():
        chosen = windows["recording_id"] == recording
        if not chosen.any():
            continue
        rotation = smallest_rotation(direction, canonical).astype(np.float32)
        for sensor in (slice(0, 3), slice(3, 6)):
            signals[chosen, :, sensor] = signals[chosen, :, sensor] @ rotation.T
    return {**windows, "signals": signals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows-dir", type=Path, default=Path("data/05_model_input"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--min-motion", type=float, default=1.0, help="m/s^2")
    parser.add_argument("--min-windows", type=int, default=5)
    args = parser.parse_args()

    every = {s: dict(np.load(args.windows_dir / f"all_windows_{s}.npz")) for s in SPLITS}
    directions = {}
    for split in SPLITS:
        directions.update(
            walking_gravity(
                every[split]["signals"],
                every[split]["recording_id"],
                args.min_motion,
                args.min_windows,
            )
        )
    train_recordings = set(every["train"]["recording_id"].tolist())
    canonical = np.mean([v for k, v in directions.items() if k in train_recordings], axis=0)
    canonical /= np.linalg.norm(canonical)
    args.out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        labelled = dict(np.load(args.windows_dir / f"windows_{split}.npz"))
        np.savez(args.out / f"windows_{split}.npz", **align(labelled, directions, canonical))
        np.savez(
            args.out / f"all_windows_{split}.npz", **align(every[split], directions, canonical)
        )
    recordings = sorted({r for s in SPLITS for r in every[s]["recording_id"].tolist()})
    angles = {
        r: round(float(np.degrees(np.arccos(np.clip(directions[r] @ canonical, -1, 1)))), 1)
        if r in directions
        else None
        for r in recordings
    }
    print(json.dumps({"canonical": canonical.round(4).tolist(), "turned_degrees": angles}))


if __name__ == "__main__":
    main()
