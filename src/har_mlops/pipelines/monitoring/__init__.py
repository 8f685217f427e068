"""Data quality, data drift and prediction drift against the training reference."""

from .pipeline import create_pipeline, create_reference_pipeline

__all__ = ["create_pipeline", "create_reference_pipeline"]
