"""The project's configuration read as ``kedro run`` reads it, for code outside a Kedro session.

The served model, the benchmarks and the tests read parameters and globals through here, so
that interpolations (``${globals:...}``) and environments resolve exactly as in a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def config_loader(conf_source: str | Path = "conf", env: str = "local") -> Any:
    """Kedro's ``OmegaConfigLoader`` over ``conf_source`` with base + ``env``."""
    from kedro.config import OmegaConfigLoader

    from har_mlops.settings import CONFIG_LOADER_ARGS

    return OmegaConfigLoader(
        conf_source=str(conf_source), **{**CONFIG_LOADER_ARGS, "default_run_env": env}
    )


def project_parameters(conf_source: str | Path = "conf", env: str = "local") -> dict[str, Any]:
    """Every parameter group (base + ``env``), interpolations resolved."""
    return dict(config_loader(conf_source, env)["parameters"])


def project_globals(conf_source: str | Path = "conf", env: str = "local") -> dict[str, Any]:
    """The values of ``globals.yml`` (base + ``env``)."""
    return dict(config_loader(conf_source, env)["globals"])
