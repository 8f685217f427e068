"""Project settings (see https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

import os
from pathlib import Path

from har_mlops.hooks import RunSummaryHook, TypedParamsMlflowHook
from har_mlops.notices import ignore_known_notices

ignore_known_notices()

# TensorFlow prints a CUDA initialisation error on machines without an NVIDIA driver; on
# those, keep its C++ log to fatal messages (a user's own setting wins).
if not Path("/proc/driver/nvidia/version").exists():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Dask's scheduler, nannies and workers log every start, connection and shutdown at INFO;
# the run log keeps their warnings (a worker lost, memory pressure). Dask sets its loggers'
# levels when it is imported, after Kedro's logging.yml, so its own setting is the one that
# holds (a user's DASK_LOGGING__DISTRIBUTED wins).
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

# kedro-mlflow's hook, subclassed to log typed parameter groups as nested keys.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow", "kedro_mlflow")
HOOKS = (TypedParamsMlflowHook(), RunSummaryHook())

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Soft merge lets an environment (e.g. `test`, `wearable`) override single keys of a
    # parameter group instead of restating the whole group.
    "merge_strategy": {"parameters": "soft"},
}
