"""An activity timeline smoothed by a hidden Markov model over consecutive windows.

Activities last many windows, so a single window that disagrees with its neighbours is mostly
a misclassification. As in actinet, the windows' class probabilities are the emissions of an
HMM whose transition matrix is estimated from the training label sequences, and the Viterbi
path through each gap-free run of windows is the smoothed timeline. Smoothing reads the model's
probabilities and the windows' times only, never a label.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Per-step transition kinds of the Viterbi trellis (see _transition_stack).
_WITHIN_RUN, _RUN_START, _PADDING = 0, 1, 2


def window_hop_ms(window_size: int, overlap: float, target_rate_hz: float) -> float:
    """Time between consecutive window starts, as the windowing node cuts them."""
    step = max(1, round(int(window_size) * (1.0 - float(overlap))))
    return step * 1000.0 / float(target_rate_hz)


def time_order(start_ms: np.ndarray, recording_id: np.ndarray | None) -> np.ndarray:
    """Indices sorting windows by recording, then start time (stable)."""
    start = np.asarray(start_ms)
    if recording_id is None:
        return np.argsort(start, kind="stable")
    return np.lexsort((start, np.asarray(recording_id)))


def contiguous_runs(
    start_ms: np.ndarray,
    recording_id: np.ndarray | None,
    hop_ms: float,
    tolerance_ms: float,
) -> np.ndarray:
    """Run id per window (sorted by recording, then start): a new run at each recording or gap."""
    start = np.asarray(start_ms, dtype=np.float64)
    if start.ndim != 1:
        raise ValueError(f"start_ms must be one-dimensional, got shape {start.shape}")
    if start.size == 0:
        return np.empty(0, dtype=np.int64)
    new_run = np.ones(start.size, dtype=bool)
    new_run[1:] = np.abs(np.diff(start) - float(hop_ms)) > float(tolerance_ms)
    if recording_id is not None:
        recording = np.asarray(recording_id)
        if recording.shape != start.shape:
            raise ValueError(f"recording_id has {recording.size} entries, start_ms {start.size}")
        new_run[1:] |= recording[1:] != recording[:-1]
    return np.cumsum(new_run) - 1


def class_indices(labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """Index of each label in ``classes``; -1 for labels outside them."""
    names = np.asarray(labels).astype(str)
    codes = np.full(names.size, -1, dtype=np.int64)
    for index, name in enumerate(classes):
        codes[names == name] = index
    return codes


def estimate_transitions(
    labels: np.ndarray,
    run_ids: np.ndarray,
    classes: list[str],
    pseudocount: float,
) -> dict[str, Any]:
    """Row-normalised label-to-label transition counts within runs, plus the class prior."""
    if pseudocount <= 0:
        raise ValueError(f"pseudocount must be positive, got {pseudocount}")
    codes = class_indices(labels, classes)
    runs = np.asarray(run_ids)
    if runs.shape != codes.shape:
        raise ValueError(f"run_ids has {runs.size} entries, labels {codes.size}")
    # A pair counts only when both windows are of the class set and in the same run: a window
    # of any other label (a postural transition, unlabelled) breaks the chain.
    pair = (codes[:-1] >= 0) & (codes[1:] >= 0) & (runs[1:] == runs[:-1])
    k = len(classes)
    counts = np.zeros((k, k), dtype=np.float64)
    np.add.at(counts, (codes[:-1][pair], codes[1:][pair]), 1.0)
    smoothed = counts + float(pseudocount)
    transition = smoothed / smoothed.sum(axis=1, keepdims=True)
    labelled = codes[codes >= 0]
    frequency = np.bincount(labelled, minlength=k) + float(pseudocount)
    logger.info(
        "Estimated activity transitions from %d windows (%d within-run transitions, "
        "%d between different classes)",
        labelled.size,
        int(pair.sum()),
        int(counts.sum() - np.trace(counts)),
    )
    return {
        "classes": list(classes),
        "transition": transition.tolist(),
        "prior": (frequency / frequency.sum()).tolist(),
        "windows": int(labelled.size),
        "transitions_counted": int(pair.sum()),
    }


def _checked_tables(transitions: dict[str, Any], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The transition matrix and prior as arrays, checked against the number of classes."""
    classes = list(transitions["classes"])
    if len(classes) != n_classes:
        raise ValueError(
            f"Transitions are for {len(classes)} classes {classes}, "
            f"but the probabilities have {n_classes} columns"
        )
    transition = np.asarray(transitions["transition"], dtype=np.float64)
    prior = np.asarray(transitions["prior"], dtype=np.float64)
    if transition.shape != (n_classes, n_classes) or prior.shape != (n_classes,):
        raise ValueError(
            f"Transition matrix {transition.shape} and prior {prior.shape} do not match "
            f"{n_classes} classes"
        )
    if (transition <= 0).any() or (prior <= 0).any():
        raise ValueError("Transition probabilities and the prior must be positive")
    return transition, prior


def _transition_stack(log_transition: np.ndarray, log_prior: np.ndarray) -> np.ndarray:
    """Log transition scores ``[kind, from, to]`` for a step within a run, at a run start, padding.

    A run start scores every predecessor alike (the prior), so the path restarts there and the
    previous run ends on its own best state; padding carries the state over at no cost.
    """
    k = log_prior.size
    padding = np.full((k, k), -np.inf)
    np.fill_diagonal(padding, 0.0)
    return np.stack([log_transition, np.broadcast_to(log_prior, (k, k)), padding])


def _step(score: np.ndarray, transition: np.ndarray, back: np.ndarray) -> np.ndarray:
    """One max-plus step ``max_i score[c, s, i] + transition[c, i, j]``, its argmax into ``back``.

    A loop over the few predecessor states: numpy's argmax over a short axis is several times
    slower than these whole-array comparisons (the first maximum wins ties, as argmax's does).
    """
    best = score[:, :, 0, None] + transition[:, None, 0, :]
    back[...] = 0
    for i in range(1, score.shape[2]):
        candidate = score[:, :, i, None] + transition[:, None, i, :]
        np.putmask(back, candidate > best, i)
        np.maximum(best, candidate, out=best)
    return best


def _viterbi_log(log_emission: np.ndarray, kinds: np.ndarray, stack: np.ndarray) -> np.ndarray:
    """Best state path for log emissions ``[n, k]`` and per-step transition kinds ``[n]``.

    Vectorised over time in chunks: each chunk's best paths are computed at once for every state
    it may be entered from, the chunks are then joined by a short Viterbi pass over their
    ``[k, k]`` score matrices, and each chunk is traced back from the state it was entered in.
    """
    n, k = log_emission.shape
    size = max(1, math.isqrt(n - 1) + 1)  # chunk length ~ sqrt(n): ~2 sqrt(n) sequential steps
    chunks = -(-n // size)
    pad = chunks * size - n
    emission = np.concatenate([log_emission, np.zeros((pad, k))]).reshape(chunks, size, k)
    kind = np.concatenate([kinds, np.full(pad, _PADDING)]).reshape(chunks, size)
    # score[c, s, j]: best score within chunk c of a path entered from state s, now in state j.
    score = stack[kind[:, 0]] + emission[:, 0, None, :]
    back = np.zeros((chunks, size, k, k), dtype=np.min_scalar_type(k))
    for t in range(1, size):
        score = _step(score, stack[kind[:, t]], back[:, t])
        score += emission[:, t, None, :]
    # Join the chunks: entered_from[c, j] is the best state to enter chunk c from, for it to
    # end in state j.
    entered_from = np.zeros((chunks, k), dtype=np.int64)
    total = score[0, 0]  # chunk 0 opens a run: its scores do not depend on the entry state
    for c in range(1, chunks):
        candidates = total[:, None] + score[c]
        entered_from[c] = candidates.argmax(axis=0)
        total = candidates[entered_from[c], np.arange(k)]
    last = np.empty(chunks, dtype=np.int64)
    entry = np.zeros(chunks, dtype=np.int64)
    last[-1] = int(total.argmax())
    for c in range(chunks - 1, 0, -1):
        entry[c] = entered_from[c, last[c]]
        last[c - 1] = entry[c]
    # Trace every chunk back from its last state, all chunks at once.
    path = np.empty((chunks, size), dtype=np.int64)
    path[:, -1] = last
    rows = np.arange(chunks)
    for t in range(size - 1, 0, -1):
        path[:, t - 1] = back[rows, t, entry, path[:, t]]
    return path.reshape(-1)[:n]


def viterbi(
    probabilities: np.ndarray,
    run_ids: np.ndarray,
    transitions: dict[str, Any],
    probability_floor: float = 1e-6,
) -> np.ndarray:
    """Most likely class index per window, the path restarting at every run.

    Emissions are the model's class probabilities divided by the training class prior: the
    network outputs posteriors, and posterior / prior is proportional to the likelihood an HMM
    needs (the hybrid HMM's scaled likelihood). A run's first window is scored by the prior, so
    there its score is the network's own posterior. Probabilities are clipped to
    ``probability_floor`` before the logarithm, so that no window can veto a class outright.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be [windows, classes], got shape {probs.shape}")
    n, k = probs.shape
    transition, prior = _checked_tables(transitions, k)
    runs = np.asarray(run_ids)
    if runs.shape != (n,):
        raise ValueError(f"run_ids has shape {runs.shape}, probabilities have {n} windows")
    if n == 0:
        return np.empty(0, dtype=np.int64)
    log_prior = np.log(prior)
    log_emission = np.log(np.maximum(probs, probability_floor)) - log_prior
    kinds = np.full(n, _WITHIN_RUN, dtype=np.int64)
    kinds[0] = _RUN_START
    kinds[1:][runs[1:] != runs[:-1]] = _RUN_START
    return _viterbi_log(log_emission, kinds, _transition_stack(np.log(transition), log_prior))


def smooth_predictions(
    probabilities: np.ndarray,
    start_ms: np.ndarray,
    recording_id: np.ndarray | None,
    transitions: dict[str, Any],
    hop_ms: float,
    gap_tolerance_ms: float,
    probability_floor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed class indices and run ids of windows sorted by recording, then start."""
    runs = contiguous_runs(start_ms, recording_id, hop_ms, gap_tolerance_ms)
    return viterbi(probabilities, runs, transitions, probability_floor), runs
