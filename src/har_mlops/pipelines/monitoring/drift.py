"""Drift statistics on quantile sketches: normalised Wasserstein, KS, PSI, Jensen-Shannon.

The reference is kept as a sketch per predicted activity and feature (quantiles at
``n_levels`` mid-point levels, the standard deviation, PSI bin edges and shares), so a
monitoring run compares the current windows against a few kilobytes instead of every
training window. All functions are vectorised over features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import nnls
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


def strata_sketch(
    values: np.ndarray, labels: np.ndarray, edges: np.ndarray, n_levels: int, min_windows: int
) -> dict[str, Any] | None:
    """Quantiles ``[S, L, F]`` and PSI shares ``[S, B, F]`` of each stratum of ``values [n, F]``.

    A stratum is a true label with at least ``min_windows`` windows (``""`` the unlabelled
    ones); the remaining windows form one ``other`` stratum when they are enough. None when
    fewer than two strata result: the activity's sketch is then used as it is.
    """
    names, counts = np.unique(np.asarray(labels).astype(str), return_counts=True)
    big = names[counts >= min_windows]
    groups = [(str(name), np.asarray(labels) == name) for name in big]
    rest = ~np.isin(np.asarray(labels).astype(str), big)
    if rest.sum() >= min_windows:
        groups.append(("other", rest))
    if len(groups) < 2:
        return None
    levels = quantile_levels(n_levels)
    return {
        "labels": [name if name else "unlabelled" for name, _ in groups],
        "windows": [int(mask.sum()) for _, mask in groups],
        "quantiles": np.stack([np.quantile(values[mask], levels, axis=0) for _, mask in groups]),
        "psi_shares": np.stack([bin_shares(values[mask], edges) for _, mask in groups]),
    }


def _sketch_cdf(quantiles: np.ndarray, points: np.ndarray) -> np.ndarray:
    """CDF of sketches ``[..., L, F]`` at ``points [..., P, F]``: share of levels at or below."""
    return (quantiles[..., None, :, :] <= points[..., :, None, :]).mean(axis=-2)


def _fit_weights(cdf_current: np.ndarray, cdf_strata: np.ndarray) -> np.ndarray:
    """Mixture weights ``[R, S]`` (>= 0, summing to 1) whose CDF best fits each batch's.

    Least squares over every grid point and feature at once: ``cdf_current [R, G, F]`` against
    ``sum_s w_s cdf_strata[s] [S, G, F]``. One QR of the shared design, then a tiny
    non-negative least-squares problem per batch with the sum-to-one row weighted heavily.
    """
    design = cdf_strata.reshape(cdf_strata.shape[0], -1).T  # [G*F, S]
    q, r = np.linalg.qr(design)
    targets = cdf_current.reshape(cdf_current.shape[0], -1) @ q  # [R, S]
    penalty = 1e3 * max(float(np.abs(r).max()), 1.0)
    system = np.vstack([r, np.full((1, r.shape[1]), penalty)])
    weights = np.stack([nnls(system, np.r_[t, penalty])[0] for t in targets])
    return weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)


def mixture_reference(
    current_quantiles: np.ndarray, reference: dict[str, Any]
) -> dict[str, np.ndarray]:
    """The reference re-mixed to each batch's composition: quantiles ``[R, L, F]``, PSI shares.

    An activity's reference windows are strata (the activity itself, the unlabelled stretches
    between activities, other activities the model files under it). A batch may hold them in
    other proportions than the reference (a day spent sitting still has fewer of the in-between
    windows); its windows are compared with the mixture of strata that fits them best. A sensor
    fault or a new placement changes the windows in a way no mixture of clean strata explains.
    """
    strata = reference["strata"]
    stratum_q = np.asarray(strata["quantiles"], dtype=float)  # [S, L, F]
    grid = np.asarray(reference["quantiles"], dtype=float)  # [L, F]
    weights = _fit_weights(
        _sketch_cdf(current_quantiles, grid[None]),
        _sketch_cdf(stratum_q, grid[None]),
    )
    # The mixture's CDF is a step function jumping only at its strata's points.
    points = np.sort(stratum_q.reshape(-1, stratum_q.shape[-1]), axis=0)  # [P, F]
    cdf_points = _sketch_cdf(stratum_q, points[None])  # [S, P, F]
    mixed = np.einsum("rs,spf->rpf", weights, cdf_points)
    levels = quantile_levels(grid.shape[0])
    index = (mixed[:, :, None, :] < levels[None, None, :, None] - 1e-12).sum(axis=1)
    index = np.minimum(index, points.shape[0] - 1)
    quantiles = np.take_along_axis(points[None], index, axis=1)  # [R, L, F]
    shares = np.einsum("rs,sbf->rbf", weights, np.asarray(strata["psi_shares"], dtype=float))
    return {"quantiles": quantiles, "psi_shares": shares, "weights": weights}


def batch_statistics(
    values: np.ndarray, reference: dict[str, Any], spread: np.ndarray
) -> dict[str, np.ndarray]:
    """``drift_statistics`` of each of ``R`` equal-size batches ``values [R, n, F]``: ``[R, F]``.

    One vectorised pass, so calibrating thousands of no-drift batches stays in seconds. With
    ``reference["strata"]`` each batch is compared with its best-fitting mixture of strata
    (``mixture_reference``) and ``weights [R, S]`` are returned too.
    """
    levels = quantile_levels(np.asarray(reference["quantiles"]).shape[0])
    cur_q = np.moveaxis(np.quantile(values, levels, axis=1), 0, 1)  # [R, L, F]
    result: dict[str, np.ndarray] = {}
    if reference.get("strata"):
        mixture = mixture_reference(cur_q, reference)
        ref_q, ref_shares = mixture["quantiles"], mixture["psi_shares"]
        result["weights"] = mixture["weights"]
    else:
        ref_q = np.broadcast_to(np.asarray(reference["quantiles"], dtype=float), cur_q.shape)
        ref_shares = np.asarray(reference["psi_shares"], dtype=float)[None]
    ref_shares = np.maximum(ref_shares, PSI_FLOOR)
    points = np.concatenate([ref_q, cur_q], axis=1)
    ks = np.abs(_sketch_cdf(ref_q, points) - _sketch_cdf(cur_q, points)).max(axis=1)
    wasserstein = np.abs(cur_q - ref_q).mean(axis=1) / spread
    edges = np.asarray(reference["psi_edges"])
    n_batches, n, n_features = values.shape
    n_bins = edges.shape[0] + 1
    bins = (values[:, :, None, :] >= edges[None, None]).sum(axis=2)  # [R, n, F]
    flat = (np.arange(n_batches)[:, None, None] * n_features + np.arange(n_features)) * n_bins
    counts = np.bincount((flat + bins).ravel(), minlength=n_batches * n_features * n_bins)
    cur_shares = np.maximum(
        counts.reshape(n_batches, n_features, n_bins).transpose(0, 2, 1) / max(n, 1), PSI_FLOOR
    )
    psi = ((cur_shares - ref_shares) * np.log(cur_shares / ref_shares)).sum(axis=1)
    return {"wasserstein": wasserstein, "ks": ks, "psi": psi, **result}


def drift_statistics(
    values: np.ndarray, reference: dict[str, np.ndarray], spread: np.ndarray
) -> dict[str, np.ndarray]:
    """Effect sizes of ``values [n, F]`` against a reference sketch, one per feature and metric.

    - ``wasserstein``: W1 between the two quantile functions, in units of ``spread``
      (the reference standard deviation of the feature in this activity);
    - ``ks``: the largest CDF difference, both CDFs read from sketches at both sketches' points;
    - ``psi``: population stability index over the reference decile bins;
    - ``weights``: with strata, the mixture the windows were compared with.
    """
    batched = batch_statistics(np.asarray(values)[None], reference, spread)
    return {metric: result[0] for metric, result in batched.items()}


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


CONFIDENCE_FIGURES = ("mean_confidence", "low_confidence_share", "estimated_accuracy")


def per_class_summary(
    predicted: np.ndarray,
    confidence: np.ndarray,
    classes: list[str],
    low_confidence_threshold: float,
    atc_threshold: float,
) -> dict[str, np.ndarray]:
    """``CONFIDENCE_FIGURES`` within each predicted class ``[C]`` (NaN for an absent class)."""
    member = np.asarray(predicted)[:, None] == np.asarray(classes)[None, :]  # [n, C]
    counts = member.sum(axis=0)
    values = {
        "mean_confidence": confidence,
        "low_confidence_share": confidence < low_confidence_threshold,
        "estimated_accuracy": confidence > atc_threshold,
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            name: (member * np.asarray(v, dtype=float)[:, None]).sum(axis=0) / counts
            for name, v in values.items()
        }


def expected_at_mix(mix: np.ndarray, reference: dict[str, Any]) -> dict[str, float]:
    """The reference's confidence figures reweighted to the class mix ``mix [C]``.

    Confidence differs between activities (sitting and standing are often confused), so a
    batch with more of a hard activity has a lower mean confidence with nothing wrong; its
    expectation is each class's reference figure weighted by the current mix. A class the
    reference never predicted counts at the reference's overall figure.
    """
    per_class = reference.get("per_class")
    if per_class is None or np.asarray(mix).sum() == 0:
        return {name: reference[name] for name in CONFIDENCE_FIGURES}
    return {
        name: float(
            np.sum(
                np.asarray(mix)
                * np.where(
                    np.isfinite(np.asarray(per_class[name], dtype=float)),
                    np.asarray(per_class[name], dtype=float),
                    reference[name],
                )
            )
        )
        for name in CONFIDENCE_FIGURES
    }


def prediction_deltas(current: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
    """Prediction drift as effect sizes where larger is worse, at the current class mix.

    ``js_distance`` is the change of class mix itself (a behaviour finding); the confidence
    figures are compared with the reference's expectation at the current mix, so only a change
    *within* activities counts.
    """
    expected = expected_at_mix(current["class_mix"], reference)
    return {
        "js_distance": js_distance(
            np.asarray(current["class_mix"]), np.asarray(reference["class_mix"])
        ),
        "mean_confidence_drop": expected["mean_confidence"] - current["mean_confidence"],
        "low_confidence_increase": current["low_confidence_share"]
        - expected["low_confidence_share"],
        "estimated_accuracy_drop": expected["estimated_accuracy"] - current["estimated_accuracy"],
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
