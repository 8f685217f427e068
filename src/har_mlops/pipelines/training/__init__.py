"""CNN-BiLSTM training with a classical baseline, MLflow tracking and registry."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
