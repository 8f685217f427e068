"""Typed parameter groups shared by several pipelines and the served model.

Kedro 1.7 instantiates a pydantic model for every ``params:`` input whose node argument is
annotated with one, before the run starts: a typo (``--params training.sed=1``) or a wrong type
(``--params windowing.window_size=abc``) fails then, with the key named, not hours into a run.

The groups also read as the mappings they replace (``windowing["window_size"]``), because the
same node functions are called with plain dictionaries: by the served model (from the JSON
configuration logged with it), by notebooks and by tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from har_mlops.units import UNIT_FACTORS

# Rates and durations keep the type the configuration gave them (50 stays 50, not 50.0), so
# that reports quoting them read as the configuration does.
Number = int | float
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
Vector3 = Annotated[list[float], Field(min_length=3, max_length=3)]
AccelerometerUnit = Literal[tuple(UNIT_FACTORS["accelerometer"])]
GyroscopeUnit = Literal[tuple(UNIT_FACTORS["gyroscope"])]


class ParameterGroup(BaseModel, Mapping):
    """A validated, immutable parameter group; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(type(self).model_fields)

    def __len__(self) -> int:
        return len(type(self).model_fields)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dictionaries (JSON, MLflow params)."""
        return self.model_dump(mode="json")


class RawSource(ParameterGroup):
    """What the recordings' files hold: units, calibration offsets, label renaming."""

    accelerometer_unit: AccelerometerUnit
    gyroscope_unit: GyroscopeUnit
    accelerometer_offset: Vector3 = [0.0, 0.0, 0.0]
    gyroscope_offset: Vector3 = [0.0, 0.0, 0.0]
    label_map: dict[str, str] = {}


class StillWindow(ParameterGroup):
    """GGIR-style still windows, limits in m/s^2 at 1 g."""

    max_std_ms2: Annotated[float, Field(gt=0)]
    max_range_ms2: Annotated[float, Field(gt=0)]


class GravityAtRest(ParameterGroup):
    """The median |a| of still windows must be 1 g within the tolerance."""

    min_still_windows: Annotated[int, Field(gt=0)]
    tolerance: Annotated[float, Field(gt=0)]
    tolerance_moving: Annotated[float, Field(gt=0)]


class UnitCheck(ParameterGroup):
    """The accelerometer's magnitude at rest, checked before predicting."""

    on_mismatch: Literal["reject", "warn"]
    window_s: Annotated[float, Field(gt=0)]
    still: StillWindow
    gravity: GravityAtRest


class Validation(ParameterGroup):
    """Limits beyond which rows are bad and a recording is rejected."""

    max_bad_row_fraction: Fraction
    accelerometer_limit_ms2: Annotated[float, Field(gt=0)]
    gyroscope_limit_rads: Annotated[float, Field(gt=0)]
    plausible_rate_hz: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]
    unit_check: UnitCheck


class Resampling(ParameterGroup):
    """The uniform grid both streams are merged and resampled onto."""

    target_rate_hz: Annotated[Number, Field(gt=0)]
    merge_tolerance_ms: Annotated[Number, Field(ge=0)]
    max_gap_ms: Annotated[Number, Field(gt=0)]


class Windowing(ParameterGroup):
    """Fixed-length windows and how a window gets its label."""

    window_size: PositiveInt
    overlap: Annotated[float, Field(ge=0.0, lt=1.0)]
    label_policy: Literal["single", "majority"]
    majority_share: Fraction


class Labels(ParameterGroup):
    """The class set the model predicts, chosen by name among ``class_sets``."""

    class_set: str
    class_sets: dict[str, list[str]]

    @model_validator(mode="after")
    def _known_class_set(self) -> Labels:
        """``class_set`` names one of ``class_sets``."""
        if self.class_set not in self.class_sets:
            raise ValueError(
                f"class_set {self.class_set!r} is not one of {sorted(self.class_sets)}"
            )
        return self


class Split(ParameterGroup):
    """Subject-wise split: fixed test subjects, validation subjects given or drawn."""

    test_subjects: list[int | str]
    validation_subjects: list[int | str] = []
    validation_fraction: Fraction = 0.15
    seed: int = 42


class Prediction(ParameterGroup):
    """How windows are predicted and when a prediction is flagged."""

    low_confidence_threshold: Fraction
    batch_size: PositiveInt
    jit_compile: bool = True


class Smoothing(ParameterGroup):
    """HMM (Viterbi) smoothing of consecutive windows' predictions within gap-free runs."""

    enabled: bool = True
    pseudocount: Annotated[float, Field(gt=0)]
    gap_tolerance_ms: Annotated[Number, Field(ge=0)]
    probability_floor: Annotated[float, Field(gt=0.0, lt=1.0)]


class Cohort(ParameterGroup):
    """How a study folder is processed: chunks, workers, reuse of earlier outputs."""

    # None: each recording in one piece (fine for short recordings, not for week-long ones).
    chunk_minutes: Annotated[Number, Field(gt=0)] | None = 60
    read_block_mb: Annotated[Number, Field(gt=0)] = 4
    n_workers: PositiveInt = 2
    threads_per_worker: PositiveInt = 1
    memory_limit: str = "auto"
    # An existing Dask cluster (``tcp://host:8786``); n_workers is then not used.
    scheduler_address: str | None = None
    # Recompute every recording even when its outputs match model, contract and input files.
    force: bool = False
    # Windows per recording kept with their signals for monitoring (evenly spread).
    monitoring_windows: Annotated[int, Field(ge=0)] = 2000
    # No Dask: every recording in this process (the reference the Dask path must equal).
    sequential: bool = False


class NonWear(ParameterGroup):
    """When still windows mean the device lay somewhere unworn (see docs/daily_outputs.md)."""

    # A window is still when its accelerometer standard deviation is below this (milli-g) on
    # at least ``axes_required`` of the three axes.
    std_threshold_mg: Annotated[Number, Field(gt=0)]
    axes_required: Annotated[int, Field(ge=1, le=3)]
    # Still stretches this long or longer are non-wear; shorter ones are still, worn time.
    min_minutes: Annotated[Number, Field(gt=0)]
    # A gap in the recording longer than this ends a still stretch.
    gap_tolerance_s: Annotated[Number, Field(ge=0)]


class Serving(ParameterGroup):
    """The served model: default request units and the compiled batch buckets."""

    raw_source: RawSource
    min_bucket: PositiveInt
    max_bucket: PositiveInt
    jit_compile: bool = True

    @model_validator(mode="after")
    def _ordered_buckets(self) -> Serving:
        """``min_bucket <= max_bucket``."""
        if self.min_bucket > self.max_bucket:
            raise ValueError(f"min_bucket {self.min_bucket} > max_bucket {self.max_bucket}")
        return self


class PredictorConfig(ParameterGroup):
    """Everything the served model's preprocessing and prediction need, besides the weights.

    Logged with every model as ``predictor_config.json``; built from the project parameters
    for a bundle that carries none.
    """

    contract: dict[str, Any]
    validation: Validation
    resampling: Resampling
    windowing: Windowing
    labels: Labels
    prediction: Prediction
    serving: Serving

    @classmethod
    def from_parameters(
        cls,
        contract: dict[str, Any],
        validation: Mapping[str, Any],
        resampling: Mapping[str, Any],
        windowing: Mapping[str, Any],
        labels: Mapping[str, Any],
        prediction: Mapping[str, Any],
        serving: Mapping[str, Any],
    ) -> PredictorConfig:
        """From the parameter groups the inference pipeline and the service read."""
        groups = {
            "validation": validation,
            "resampling": resampling,
            "windowing": windowing,
            "labels": labels,
            "prediction": prediction,
            "serving": serving,
        }
        return cls.model_validate(
            {"contract": contract} | {name: _plain(group) for name, group in groups.items()}
        )


def _plain(group: Mapping[str, Any] | ParameterGroup) -> Any:
    """A typed group as plain data; plain data unchanged."""
    return group.to_dict() if isinstance(group, ParameterGroup) else group
