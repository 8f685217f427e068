"""Project-specific Kedro datasets (raw recording readers and array storage)."""

from .hapt_zip_dataset import HaptZipDataset
from .model_bundle_dataset import ModelBundleDataset, StartingModelDataset
from .npz_dataset import NpzDataset
from .prediction_log_dataset import PredictionLogDataset
from .recording_index_dataset import RecordingIndexDataset
from .recording_outputs_dataset import MonitoringWindowsDataset, RecordingOutputsDataset
from .reference_profile_dataset import ReferenceProfileDataset
from .wearable_export_dataset import WearableExportDataset

__all__ = [
    "HaptZipDataset",
    "ModelBundleDataset",
    "MonitoringWindowsDataset",
    "NpzDataset",
    "PredictionLogDataset",
    "RecordingIndexDataset",
    "RecordingOutputsDataset",
    "ReferenceProfileDataset",
    "StartingModelDataset",
    "WearableExportDataset",
]
