"""A dict of numpy arrays stored as one ``.npz`` file (kedro-datasets has no numpy dataset)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset


class NpzDataset(AbstractDataset[dict[str, np.ndarray], dict[str, np.ndarray]]):
    """Saves and loads ``{name: array}`` with ``np.savez`` (no pickle, so strings must be unicode)."""

    def __init__(self, filepath: str, compress: bool = False, metadata: dict | None = None):
        self._filepath = Path(filepath)
        self._compress = compress
        self.metadata = metadata

    def _load(self) -> dict[str, np.ndarray]:
        with np.load(self._filepath, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}

    def _save(self, data: dict[str, np.ndarray]) -> None:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        writer = np.savez_compressed if self._compress else np.savez
        with self._filepath.open("wb") as handle:
            writer(handle, **{name: np.asarray(value) for name, value in data.items()})

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "compress": self._compress}

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def preview(self) -> dict[str, Any]:
        """Shapes and dtypes for kedro-viz."""
        arrays = self._load()
        return {
            "columns": ["array", "shape", "dtype"],
            "index": list(range(len(arrays))),
            "data": [[k, str(v.shape), str(v.dtype)] for k, v in arrays.items()],
        }
