"""Typed parameters of the training pipeline (conf/base/parameters_training.yml)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from har_mlops.parameters import Fraction, ParameterGroup, PositiveInt


class RandomKernels(ParameterGroup):
    """MiniRocket's fixed dilated kernels in the wide path (layers.RandomKernelFeatures)."""

    dilations: PositiveInt
    biases: PositiveInt  # thresholds (features) per kernel output
    sample_windows: PositiveInt  # training windows the thresholds are quantiles of
    seed: int


class Architecture(ParameterGroup):
    """Sizes of the 1D-CNN-BiLSTM."""

    conv_filters: list[PositiveInt]
    conv_kernel_sizes: list[PositiveInt]
    pool_after: list[int]
    pool_size: PositiveInt
    lstm_units: PositiveInt
    dense_units: PositiveInt
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)]
    window_statistics: bool
    window_correlations: bool = False
    gravity_split_kernel: PositiveInt | None = None
    spectral_bands: PositiveInt | None = None
    # raw: the deep path sees the standardised signals; centred: minus each window's mean.
    deep_path_input: Literal["raw", "centred"] = "raw"
    random_kernels: RandomKernels | None = None


class LrSchedule(ParameterGroup):
    """ReduceLROnPlateau on the validation loss, or a cosine decay over the epochs."""

    kind: Literal["plateau", "cosine"] = "plateau"
    factor: Annotated[float, Field(gt=0.0, lt=1.0)]
    patience: int
    min_lr: float


class EarlyStopping(ParameterGroup):
    """Early stopping on the validation subjects."""

    enabled: bool = True
    monitor: str
    patience: int
    start_from_epoch: int = 0
    restore_best_weights: bool = False


class Rotation(ParameterGroup):
    """Random 3-D rotations of both sensors."""

    enabled: bool
    max_degrees: float


class Scaling(ParameterGroup):
    """Random per-window amplitude scaling."""

    enabled: bool
    sigma: float


class Jitter(ParameterGroup):
    """Additive noise, as a share of each channel's spread."""

    enabled: bool
    sigma: float


class Augmentation(ParameterGroup):
    """Augmentations applied to training batches only."""

    rotation: Rotation
    scaling: Scaling
    jitter: Jitter


class WidePath(ParameterGroup):
    """How the wide path (a linear rule on window statistics) is fitted."""

    # joint: with the deep path by gradient descent; logistic: first, as a logistic regression
    # on the training windows, then frozen (the same rule whatever the seed).
    fit: Literal["joint", "logistic"] = "joint"
    inverse_regularisation: Annotated[float, Field(gt=0.0)] = 1.0


class Training(ParameterGroup):
    """Optimiser, schedule, stopping, weighting and augmentation of the network."""

    seed: int
    deterministic_ops: bool
    epochs: PositiveInt
    batch_size: PositiveInt
    learning_rate: Annotated[float, Field(gt=0.0)]
    weight_decay: Annotated[float, Field(ge=0.0)]
    lr_schedule: LrSchedule
    early_stopping: EarlyStopping
    class_weighting: Literal["balanced", "none"]
    augmentation: Augmentation
    ema_momentum: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    ensemble_members: PositiveInt = 1
    wide_path: WidePath = WidePath()
    # Fit on the training and validation subjects together: only when nothing is decided on
    # the validation subjects during the fit (cosine schedule, no early stopping).
    fit_on_validation: bool = False


class FineTuning(ParameterGroup):
    """How a run that starts from a model bundle (``init_from``) adapts it."""

    # A new softmax head when the run's classes differ from the bundle's (auto) or always.
    new_head: Literal["auto", "always"]
    frozen_blocks: Annotated[int, Field(ge=0)]
    frozen_recurrent: bool = False
    # A trainable linear mix of the input channels in front (identity at the start).
    input_adapter: bool = False
    # Where the adapter starts: the identity, or the turn that takes the user's class gravity
    # onto the bundle's (classes of the same name; a device worn another way).
    adapter_start: Literal["identity", "gravity"] = "identity"
    # The shared classes' gravity directions must span this angle to fix a turn.
    gravity_min_angle_degrees: Annotated[float, Field(gt=0.0, le=180.0)] = 20.0
    # False keeps the adapter at its start: a turn estimated from every window's gravity is
    # not then refitted to the few labelled people's windows.
    adapter_learns: bool = True
    learning_rate: Annotated[float, Field(gt=0.0)]
    # Epochs in which only the layers the bundle lacks (input adapter, new head) learn, at
    # warm_up_learning_rate, before the reused layers chosen to learn are released.
    warm_up_epochs: Annotated[int, Field(ge=0)] = 0
    warm_up_learning_rate: Annotated[float, Field(gt=0.0)] = 0.01
    # A new head's rows for the classes the bundle also has (same name) start as the bundle's
    # rows, so that those classes are recognised from the first step; the others start fresh.
    shared_class_rows: bool = False
    # An ensemble bundle's members fine-tuned together through their average (joint) or each
    # on its own loss and seed, then averaged (separate, as from scratch).
    members: Literal["joint", "separate"] = "joint"


class Baseline(ParameterGroup):
    """The random-forest baseline on per-window features."""

    n_estimators: PositiveInt
    min_samples_leaf: PositiveInt
    n_jobs: int
    seed: int


class Comparison(ParameterGroup):
    """The paired bootstrap over test subjects that the gate decides by."""

    replicates: PositiveInt
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)]
    seed: int
    promote_on_tie: bool


class Registry(ParameterGroup):
    """MLflow model registry and its quality gate."""

    enabled: bool
    model_name: str
    min_macro_f1: Fraction
    comparison: Comparison
