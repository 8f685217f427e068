"""The monitoring reference profile: JSON, read from the first folder that holds one."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

logger = logging.getLogger(__name__)


class ReferenceProfileDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """``<folder>/<filename>`` JSON from the first of ``paths`` that has it.

    Like ModelBundleDataset, by default the profile of the last trained model
    (``data/06_models``) and else the one shipped with the pretrained model
    (``data/06_models/pretrained``). Saving writes to the first of ``paths``.
    """

    def __init__(
        self,
        paths: list[str],
        filename: str = "reference_profile.json",
        metadata: dict | None = None,
    ):
        if not paths:
            raise DatasetError("ReferenceProfileDataset needs at least one folder in paths")
        self._paths = [Path(p) for p in paths]
        # Kedro makes a catalog's `filename` absolute (project root); only the name is meant.
        self._filename = Path(filename).name
        self.metadata = metadata

    def _load(self) -> dict[str, Any]:
        for folder in self._paths:
            path = folder / self._filename
            if path.is_file():
                logger.info("Using the reference profile %s", path)
                return json.loads(path.read_text())
        raise DatasetError(
            f"No {self._filename} in any of {[str(p) for p in self._paths]}; run "
            "`kedro run --pipelines monitoring_reference` (or training) first"
        )

    def _save(self, data: dict[str, Any]) -> None:
        path = self._paths[0] / self._filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, allow_nan=False) + "\n")

    def _exists(self) -> bool:
        return any((folder / self._filename).is_file() for folder in self._paths)

    def _describe(self) -> dict[str, Any]:
        return {"paths": [str(p) for p in self._paths], "filename": self._filename}
