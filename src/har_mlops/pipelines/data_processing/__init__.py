"""Raw recordings to validated, windowed, subject-split datasets."""

from .pipeline import create_pipeline, create_preprocessing_pipeline

__all__ = ["create_pipeline", "create_preprocessing_pipeline"]
