"""Drift statistics on quantile sketches: normalised Wasserstein, KS, PSI, Jensen-Shannon.

The reference is kept as a sketch per predicted activity and feature (quantiles at
``n_levels`` mid-point levels, the standard deviation, PSI bin edges and shares), so a
monitoring run compares the current windows against a few kilobytes instead of every
training window. All functions are vectorised over features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

METRICS = ("wasserstein", "ks", "psi")
# Shares are floored at this before the PSI log ratio (an empty bin would be infinite).
PSI_FLOOR = 1e-4


def quantile_levels(n_levels: int) -> np.ndarray:
    """Mid-point levels ``(k + 0.5) / n``: no level sits on the noisy minimum or maximum."""
    return (np.arange(n_levels) + 0.5) / n_levels


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values [n, F]`` in each bin defined by interior ``edges [B-1, F]``: ``[B, F]``."""
    n_bins, n_features = edges.shape[0] + 1, values.shape[1]
    bins = (values[:, None, :] >= edges[None, :, :]).sum(axis=1)
    flat = (bins + np.arange(n_features) * n_bins).ravel()
    counts = np.bincount(flat, minlength=n_bins * n_features).reshape(n_features, n_bins).T
    return counts / max(len(values), 1)


def sketch(values: np.ndarray, n_levels: int, n_psi_bins: int) -> dict[str, np.ndarray]:
    """Quantiles, standard deviation and PSI bins of each column of ``values [n, F]``."""
    edges = np.quantile(values, np.linspace(0.0, 1.0, n_psi_bins + 1)[1:-1], axis=0)
    return {
        "windows": np.asarray(len(values)),
        "quantiles": np.quantile(values, quantile_levels(n_levels), axis=0),
        "std": values.std(axis=0),
        "psi_edges": edges,
        "psi_shares": bin_shares(values, edges),
    }


def _sketch_cdf(quantiles: np.ndarray, points: np.ndarray) -> np.ndarray:
    """CDF of a quantile sketch ``[L, F]`` at ``points [P, F]``: share of levels at or below."""
    return (quantiles[None, :, :] <= points[:, None, :]).mean(axis=1)


def drift_statistics(
    values: np.ndarray, reference: dict[str, np.ndarray], spread: np.ndarray
) -> dict[str, np.ndarray]:
    """Effect sizes of ``values [n, F]`` against a reference sketch, one per feature and metric.

    - ``wasserstein``: W1 between the two quantile functions, in units of ``spread``
      (the reference standard deviation of the feature in this activity);
    - ``ks``: the largest CDF difference, both CDFs read from sketches at both sketches' points;
    - ``psi``: population stability index over the reference decile bins.
    """
    ref_q = np.asarray(reference["quantiles"])
    levels = quantile_levels(ref_q.shape[0])
    cur_q = np.quantile(values, levels, axis=0)
    points = np.concatenate([ref_q, cur_q])
    ks = np.abs(_sketch_cdf(ref_q, points) - _sketch_cdf(cur_q, points)).max(axis=0)
    wasserstein = np.abs(cur_q - ref_q).mean(axis=0) / spread
    ref_shares = np.maximum(np.asarray(reference["psi_shares"]), PSI_FLOOR)
    cur_shares = np.maximum(bin_shares(values, np.asarray(reference["psi_edges"])), PSI_FLOOR)
    psi = ((cur_shares - ref_shares) * np.log(cur_shares / ref_shares)).sum(axis=0)
    return {"wasserstein": wasserstein, "ks": ks, "psi": psi}


def reference_spread(class_std: np.ndarray, pooled_std: np.ndarray) -> np.ndarray:
    """Within-activity standard deviation, floored at 1 % of the pooled one (constant features)."""
    return np.maximum(class_std, 0.01 * pooled_std + 1e-12)


def class_mix(predicted: np.ndarray, classes: list[str]) -> np.ndarray:
    """Share of windows predicted as each class, in ``classes`` order."""
    counts = (np.asarray(predicted)[:, None] == np.asarray(classes)[None, :]).sum(axis=0)
    return counts / max(counts.sum(), 1)


def js_distance(mix: np.ndarray, reference_mix: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2: 0 identical, 1 disjoint) between two class mixes."""
    if mix.sum() == 0:
        return float("nan")
    return float(jensenshannon(mix, reference_mix, base=2))


def fit_atc_threshold(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Average-thresholded-confidence threshold: as many windows above it as were correct."""
    return float(np.quantile(confidence, 1.0 - correct.mean()))


def prediction_summary(
    predicted: np.ndarray,
    confidence: np.ndarray,
    classes: list[str],
    low_confidence_threshold: float,
    atc_threshold: float,
) -> dict[str, Any]:
    """Class mix, mean confidence, low-confidence share and the label-free accuracy estimate."""
    if len(confidence) == 0:
        nan = float("nan")
        return {
            "class_mix": np.zeros(len(classes)),
            "mean_confidence": nan,
            "low_confidence_share": nan,
            "estimated_accuracy": nan,
        }
    return {
        "class_mix": class_mix(predicted, classes),
        "mean_confidence": float(confidence.mean()),
        "low_confidence_share": float((confidence < low_confidence_threshold).mean()),
        "estimated_accuracy": float((confidence > atc_threshold).mean()),
    }


def prediction_deltas(current: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
    """Prediction drift as effect sizes where larger is worse."""
    return {
        "js_distance": js_distance(
            np.asarray(current["class_mix"]), np.asarray(reference["class_mix"])
        ),
        "mean_confidence_drop": reference["mean_confidence"] - current["mean_confidence"],
        "low_confidence_increase": current["low_confidence_share"]
        - reference["low_confidence_share"],
        "estimated_accuracy_drop": reference["estimated_accuracy"] - current["estimated_accuracy"],
    }


def clustered_batches(
    recording_codes: np.ndarray, size: int, repetitions: int, rng: np.random.Generator
) -> np.ndarray:
    """Indices ``[repetitions, size]`` of batches made of consecutive windows of recordings.

    ``recording_codes`` must be grouped (all windows of a recording together, in time order).
    Each batch strings randomly ordered recordings together from a random start, as a
    monitoring run over a few consecutive recordings would: neighbouring windows of one
    subject are alike, so drawing windows independently would understate the noise floor.
    """
    codes = np.asarray(recording_codes)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    counts = np.diff(np.r_[starts, codes.size])
    order = np.argsort(rng.random((repetitions, counts.size)), axis=1)
    ends = np.cumsum(counts[order], axis=1)
    offset = np.floor(rng.random(repetitions) * counts[order[:, 0]])
    position = (offset[:, None] + np.arange(size)[None, :]).astype(np.int64) % codes.size
    slot = (position[:, :, None] >= ends[:, None, :]).sum(axis=2)
    recording = np.take_along_axis(order, slot, axis=1)
    within = position - (np.take_along_axis(ends, slot, axis=1) - counts[recording])
    return starts[recording] + within
