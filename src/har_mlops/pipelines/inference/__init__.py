"""Inference: a study folder, recording by recording, on Dask."""

from .pipeline import create_chunk_pipeline, create_pipeline

__all__ = ["create_chunk_pipeline", "create_pipeline"]
