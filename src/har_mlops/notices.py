"""The known notices of the libraries this project pins, kept out of the run log.

They would otherwise open every ``kedro run`` log, and a user can do nothing about them.
Matched by message, so any other warning of the same libraries still shows. MLflow's notice
is raised while Kedro loads its plugins' commands, before the project's settings are imported,
and inside MLflow's own ``simplefilter("once")``, which overrides any ``warnings`` filter; so
:func:`ignore_known_notices` runs as a ``kedro.init`` entry point (pyproject.toml) and also
filters the ``py.warnings`` logger Kedro routes warnings to.
"""

from __future__ import annotations

import logging
import re
import warnings

KNOWN_NOTICES = (
    # omegaconf, called by kedro's config loader and by kedro-mlflow.
    r"register_new_resolver\(\) is deprecated",
    # MLflow, about kedro-mlflow's own pyfunc class, when kedro-mlflow is imported.
    r"(\x1b\[\d+m)?Add type hints to the `predict` method",
    # Monitoring reads the inference pipeline's outputs by their namespaced names on purpose.
    r"One or more dataset names contain '\.' characters",
)


class KnownNoticesFilter(logging.Filter):
    """Drops the log records of captured warnings that are known notices."""

    _pattern = re.compile("|".join(KNOWN_NOTICES))

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a known notice."""
        return self._pattern.search(record.getMessage()) is None


def ignore_known_notices() -> None:
    """Filters :data:`KNOWN_NOTICES` out of ``warnings`` and out of the ``py.warnings`` log."""
    for message in KNOWN_NOTICES:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)
    captured = logging.getLogger("py.warnings")
    if not any(isinstance(f, KnownNoticesFilter) for f in captured.filters):
        captured.addFilter(KnownNoticesFilter())
