"""Per-window summary features, shared by the classical baseline and drift monitoring."""

from __future__ import annotations

import numpy as np

from har_mlops.contract import CHANNELS

_PER_CHANNEL = ("mean", "std", "min", "max", "rms", "iqr", "dominant_hz", "spectral_energy")


def feature_names() -> list[str]:
    """Names of the columns ``window_features`` returns, in order."""
    names = [f"{c}_{f}" for c in CHANNELS for f in _PER_CHANNEL]
    for sensor in ("acc", "gyro"):
        names += [f"{sensor}_mag_{f}" for f in ("mean", "std", "min", "max")]
    names += ["acc_xy_corr", "acc_xz_corr", "acc_yz_corr"]
    return names


def window_features(signals: np.ndarray, sampling_rate_hz: float) -> np.ndarray:
    """Computes ``feature_names()`` for windows ``[n, window, 6]`` in SI units (vectorised)."""
    x = signals.astype(np.float64, copy=False)
    n, size, _ = x.shape
    q25, q75 = np.percentile(x, [25, 75], axis=1)
    centred = x - x.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(centred, axis=1)) ** 2
    freqs = np.fft.rfftfreq(size, d=1.0 / sampling_rate_hz)
    per_channel = np.stack(
        [
            x.mean(axis=1),
            x.std(axis=1),
            x.min(axis=1),
            x.max(axis=1),
            np.sqrt((x**2).mean(axis=1)),
            q75 - q25,
            freqs[1:][power[:, 1:, :].argmax(axis=1)],
            power[:, 1:, :].sum(axis=1) / size**2,
        ],
        axis=2,
    ).reshape(n, -1)
    magnitudes = []
    for sl in (slice(0, 3), slice(3, 6)):
        mag = np.linalg.norm(x[:, :, sl], axis=2)
        magnitudes.append(np.stack([mag.mean(1), mag.std(1), mag.min(1), mag.max(1)], axis=1))
    std = centred[:, :, :3].std(axis=1) + 1e-12
    corr = [
        (centred[:, :, i] * centred[:, :, j]).mean(axis=1) / (std[:, i] * std[:, j])
        for i, j in ((0, 1), (0, 2), (1, 2))
    ]
    return np.column_stack([per_channel, *magnitudes, *corr])
