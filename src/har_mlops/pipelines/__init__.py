"""Modular pipelines, one package each."""
