"""The service's ``HAR_*`` settings, parsed and checked at startup (names in docs/serving.md)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as SourceError

ENV_PREFIX = "HAR_"
DEFAULT_MODEL_URI = "models:/har_cnn_bilstm@champion"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MONITORING_REPORT = "data/08_reporting/monitoring_report.json"
# conf/base/globals.yml `prediction_log` names the same file for `kedro run --env served`.
DEFAULT_PREDICTION_LOG = "data/07_model_output/prediction_log.sqlite"
DEFAULT_PREDICTION_LOG_MAX_ROWS = 1_000_000
DEFAULT_PREDICTION_LOG_MAX_DAYS = 30.0

SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
SIZE_FORM = "a byte count (8388608) or a size with unit (512KiB, 8MiB, 8MB, 1GiB)"
_SIZE = re.compile(r"^\s*(?P<number>\d+)\s*(?P<unit>[a-z]*)\s*$", re.IGNORECASE)
# Environment names of the fields whose name is not HAR_<FIELD>.
_ENV_NAMES = {"tracking_uri": "HAR_TRACKING_URI (or MLFLOW_TRACKING_URI)"}


class SettingsError(ValueError):
    """Settings the service cannot start with; the message names each variable and why."""


def parse_size(value: Any) -> int:
    """Bytes from an integer or a string like ``8MiB``, ``512 kib``, ``8MB``."""
    if isinstance(value, bool):
        raise ValueError(f"expected {SIZE_FORM}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        unit = match["unit"].lower() if match else None
        if unit not in SIZE_UNITS:
            raise ValueError(f"expected {SIZE_FORM}")
        size = int(match["number"]) * SIZE_UNITS[unit]
    if size <= 0:
        raise ValueError(f"must be positive; expected {SIZE_FORM}")
    return size


def _empty_is_none(value: Any) -> Any:
    """An empty variable means unset (``HAR_MODEL_URI=`` turns the registry off)."""
    return None if isinstance(value, str) and not value.strip() else value


def _split_paths(value: Any) -> Any:
    """``a:b`` (PATH style) into ``("a", "b")``; an empty string into None."""
    if isinstance(value, str):
        return tuple(p for p in value.split(":") if p) or None
    return value


ByteSize = Annotated[int, BeforeValidator(parse_size)]
OptionalStr = Annotated[str | None, BeforeValidator(_empty_is_none)]


class _EnvSource(EnvSettingsSource):
    """The environment, with ``HAR_FALLBACK_PATHS`` as a PATH-style list rather than JSON."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        """The raw string for the path list (split by its validator), JSON for the others."""
        if field_name == "fallback_paths":
            return value
        return super().decode_complex_value(field_name, field, value)


class ServingSettings(BaseSettings):
    """Service configuration: ``HAR_*`` environment variables, or keyword arguments (tests)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, populate_by_name=True, extra="ignore")

    model_uri: OptionalStr = DEFAULT_MODEL_URI
    model_path: OptionalStr = None
    tracking_uri: str = Field(
        DEFAULT_TRACKING_URI,
        validation_alias=AliasChoices("HAR_TRACKING_URI", "MLFLOW_TRACKING_URI"),
    )
    # None: the folders `kedro run --pipelines inference` would use (globals.model_folders).
    fallback_paths: Annotated[tuple[str, ...] | None, BeforeValidator(_split_paths)] = None
    conf_source: str = "conf"
    conf_env: str = "local"
    max_body_bytes: ByteSize = DEFAULT_MAX_BODY_BYTES
    # Validation repairs unsorted or duplicated timestamps in batch runs; an online client
    # sending them has a bug worth hearing about, so the API rejects them by default.
    reject_repaired: bool = True
    predict_threads: int = Field(1, ge=1)
    # Unset: no authentication (the launcher then only binds loopback addresses).
    api_token: Annotated[SecretStr | None, BeforeValidator(_empty_is_none)] = None
    # Prometheus multiprocess folder the launcher prepares; None: a fresh temporary one.
    metrics_dir: OptionalStr = None
    monitoring_report: str = DEFAULT_MONITORING_REPORT
    # The prediction log monitoring reads (serving/prediction_log.py); empty path: off.
    prediction_log: OptionalStr = DEFAULT_PREDICTION_LOG
    prediction_log_max_rows: int = Field(DEFAULT_PREDICTION_LOG_MAX_ROWS, ge=1)
    # 0 keeps every day.
    prediction_log_max_days: float = Field(DEFAULT_PREDICTION_LOG_MAX_DAYS, ge=0)
    prediction_log_signals: bool = False
    prediction_log_recording_id: Literal["hash", "raw", "none"] = "hash"
    prediction_log_salt: Annotated[SecretStr | None, BeforeValidator(_empty_is_none)] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment; no .env or secrets files."""
        return init_settings, _EnvSource(settings_cls)

    @classmethod
    def from_env(cls) -> ServingSettings:
        """Reads the ``HAR_*`` variables; :class:`SettingsError` names the invalid ones."""
        return load_settings()


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return _ENV_NAMES.get(field, ENV_PREFIX + field.upper())


def _describe(error: dict[str, Any]) -> str:
    """One invalid setting: its variable and pydantic's reason (never the value)."""
    field = str(error["loc"][0]) if error["loc"] else "?"
    message = error["msg"].removeprefix("Value error, ")
    return f"{env_name(field)}: {message}"


def load_settings(**overrides: Any) -> ServingSettings:
    """The settings from the environment (``overrides`` win); SettingsError when invalid."""
    try:
        return ServingSettings(**overrides)
    except ValidationError as exc:
        # The values stay out of the message: HAR_API_TOKEN is a secret.
        lines = [_describe(error) for error in exc.errors()]
        raise SettingsError("Invalid serving settings: " + "; ".join(lines)) from None
    except SourceError as exc:
        raise SettingsError(f"Invalid serving settings: {exc}") from None
