"""har-mlops: wearable IMU recordings to activity predictions."""

__version__ = "0.1.0"
