"""Typed parameters of the monitoring pipelines (conf/base/parameters_monitoring.yml)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from har_mlops.parameters import Fraction, Number, ParameterGroup, PositiveInt

Positive = Annotated[float, Field(gt=0.0)]


class Sketch(ParameterGroup):
    """Resolution of the reference's per-feature sketches."""

    quantile_levels: PositiveInt
    psi_bins: PositiveInt
    min_stratum_windows: PositiveInt


class ThresholdFloor(ParameterGroup):
    """No per-feature threshold below these (the sketch's resolution)."""

    wasserstein: Positive
    ks: Positive
    psi: Positive


class Calibration(ParameterGroup):
    """How the no-drift limits are calibrated on held-out reference batches."""

    batch_sizes: list[PositiveInt]
    activity_windows: list[PositiveInt]
    train_folds: PositiveInt
    repetitions: PositiveInt
    feature_quantile: Fraction
    share_quantile: Fraction
    prediction_quantile: Fraction
    max_pool_share: Fraction
    min_repetitions: PositiveInt
    threshold_floor: ThresholdFloor
    max_detectable_shift: Positive


class FlatLine(ParameterGroup):
    """A stuck sensor: this many unchanged samples in a channel."""

    min_samples: PositiveInt
    tolerance_ms2: Positive
    tolerance_rads: Positive


class Clipping(ParameterGroup):
    """Samples piled up at a window's extreme, where that extreme is large."""

    min_samples: PositiveInt
    tolerance: Positive
    min_level_ms2: Positive
    min_level_rads: Positive


class Still(ParameterGroup):
    """GGIR-style still windows."""

    max_std_ms2: Positive
    max_range_ms2: Positive


class Gravity(ParameterGroup):
    """The median |a| of still windows must be g within the tolerance."""

    min_still_windows: PositiveInt
    tolerance: Positive
    tolerance_moving: Positive


class Quality(ParameterGroup):
    """Sensor-fault gates per recording and per window."""

    declared_rates_hz: dict[str, Number]
    rate_tolerance: Positive
    max_repaired_share: Fraction
    max_gap_s: Number
    flat_line: FlatLine
    clipping: Clipping
    still: Still
    gravity: Gravity


class MinEffect(ParameterGroup):
    """Smallest changes worth reporting, whatever their significance."""

    mean_confidence_drop: Positive
    low_confidence_increase: Positive
    estimated_accuracy_drop: Positive


class Verdict(ParameterGroup):
    """When the report says ok, warn or retrain."""

    warn_quarantined_share: Fraction
    severe_score_factor: Positive
    retrain_drift_share: Fraction
    min_effect: MinEffect
    retrain_accuracy_drop: Positive


class Behaviour(ParameterGroup):
    """When a change of activity mix or of a participant's day is reported (never a verdict)."""

    min_js_distance: Positive
    min_wear_minutes: Positive
    baseline_days: PositiveInt
    min_baseline_days: PositiveInt
    min_share_change: Fraction
    robust_z: Positive


class Report(ParameterGroup):
    """What the report and its figures show."""

    top_features: PositiveInt
    confidence_bins: PositiveInt


class Monitoring(ParameterGroup):
    """Everything the monitoring and monitoring_reference pipelines read."""

    seed: int
    fail_on_retrain: bool
    sketch: Sketch
    min_reference_windows: PositiveInt
    min_class_windows: PositiveInt
    max_windows_per_activity: PositiveInt
    calibration: Calibration
    quality: Quality
    verdict: Verdict
    behaviour: Behaviour
    report: Report
