"""New wearable recordings to per-window activities, summaries and timelines."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
