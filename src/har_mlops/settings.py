"""Project settings (see https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Soft merge lets an environment (e.g. `test`, `wearable`) override single keys of a
    # parameter group instead of restating the whole group.
    "merge_strategy": {"parameters": "soft"},
}
