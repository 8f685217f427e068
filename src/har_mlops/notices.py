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

# Log records (logger name: message) that say the project does what it means to do.
KNOWN_LOG_NOTICES = {
    # The catalog's "{default}" pattern makes every unnamed dataset an in-memory hand-off
    # without copies, on purpose; Kedro warns once per dataset that it matches.
    "kedro.io.catalog_config_resolver": r"Config from the dataset pattern '\{default\}'",
}


class KnownNoticesFilter(logging.Filter):
    """Drops the log records matching ``pattern``."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a known notice."""
        return self.pattern.search(record.getMessage()) is None


def _add_filter(logger_name: str, pattern: str) -> None:
    """Adds a :class:`KnownNoticesFilter` to a logger, once."""
    target = logging.getLogger(logger_name)
    if not any(isinstance(f, KnownNoticesFilter) for f in target.filters):
        target.addFilter(KnownNoticesFilter(pattern))


def ignore_known_notices() -> None:
    """Filters the known notices out of ``warnings`` and out of the run log."""
    for message in KNOWN_NOTICES:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)
    _add_filter("py.warnings", "|".join(KNOWN_NOTICES))
    for logger_name, pattern in KNOWN_LOG_NOTICES.items():
        _add_filter(logger_name, pattern)
