"""Online serving: one predictor (the inference pipeline's node functions), as MLflow pyfunc and HTTP API.

Nothing here imports TensorFlow at import time; models are loaded on demand.
"""
