"""Nodes of the inference pipeline over a study folder: plan, predict (Dask), sum up, report."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from har_mlops.contract import CHANNELS, ContractMismatchError, class_names, contract_mismatches
from har_mlops.datasets.recording_outputs_dataset import RecordingOutputs
from har_mlops.parameters import (
    Cohort,
    Labels,
    NonWear,
    Prediction,
    RawSource,
    Resampling,
    Smoothing,
    Validation,
    Windowing,
)

from .cohort import ChainSettings, model_fingerprint, run_jobs
from .daily import combine_daily
from .nodes import score_windows
from .report import plot_actogram, plot_daily_minutes, render_html_report

logger = logging.getLogger(__name__)


def chain_settings(
    raw_source: RawSource,
    validation: Validation,
    resampling: Resampling,
    windowing: Windowing,
    labels: Labels,
    prediction: Prediction,
    smoothing: Smoothing,
    non_wear: NonWear,
    cohort: Cohort,
) -> ChainSettings:
    """Every parameter the per-recording chain reads, in one object shipped to the workers."""
    return ChainSettings(
        raw_source,
        validation,
        resampling,
        windowing,
        labels,
        prediction,
        smoothing,
        non_wear,
        cohort,
    )


def plan_recordings(
    inference_recordings: dict[str, dict[str, Any]],
    previous_recording_outputs: RecordingOutputs,
    model_bundle: Mapping[str, Any],
    activity_transitions: dict[str, Any],
    cohort_settings: ChainSettings,
) -> dict[str, Any]:
    """Which recordings to (re)compute and which to skip; the contract is checked first."""
    contract = model_bundle["contract"]
    windowing, resampling = cohort_settings.windowing, cohort_settings.resampling
    mismatches = contract_mismatches(
        contract,
        (windowing["window_size"], len(CHANNELS)),
        windowing["window_size"],
        windowing["overlap"],
        resampling["target_rate_hz"],
        class_names(cohort_settings.labels),
    )
    if mismatches:
        raise ContractMismatchError(
            f"Input breaks the preprocessing contract of {model_bundle.get('source', 'the model')}:"
            "\n  " + "\n  ".join(mismatches)
        )
    if not inference_recordings:
        raise ValueError(
            "No recording folder in the inference input folder (inference_dir, by default "
            "data/01_raw/inference): each recording is a sub-folder with its CSV files"
        )
    model_version = model_fingerprint(model_bundle, activity_transitions)
    settings_version = cohort_settings.fingerprint()
    previous = previous_recording_outputs.manifests()
    jobs, skipped = [], []
    for recording_id, entry in inference_recordings.items():
        fingerprint = {
            "model": model_version,
            "settings": settings_version,
            "inputs": entry["files"],
        }
        done = previous.get((entry["subject_id"], recording_id))
        if (
            not cohort_settings.cohort.force
            and done is not None
            and done.get("status") == "done"
            and done.get("fingerprint") == fingerprint
        ):
            skipped.append(recording_id)
            continue
        size = sum((f or {}).get("size", 0) for f in entry["files"].values())
        jobs.append(
            {
                "recording_id": recording_id,
                "subject_id": entry["subject_id"],
                "entry": entry,
                "fingerprint": fingerprint,
                "size": size,
                "model_source": model_bundle.get("source", "the model"),
            }
        )
    logger.info(
        "%d recording(s): %d to process, %d unchanged since the last run (skipped)",
        len(inference_recordings),
        len(jobs),
        len(skipped),
    )
    return {
        "jobs": jobs,
        "skipped": skipped,
        "model_version": model_version,
        "settings_version": settings_version,
        "model_source": model_bundle.get("source"),
    }


def predict_recordings(
    recording_plan: dict[str, Any],
    model_bundle: Mapping[str, Any],
    activity_transitions: dict[str, Any],
    cohort_settings: ChainSettings,
) -> Iterator[dict[str, Any]]:
    """Each planned recording's result, yielded (and so written) as soon as it is ready."""
    started = time.perf_counter()
    counts = {"done": 0, "failed": 0}
    for result in run_jobs(
        recording_plan["jobs"], model_bundle, activity_transitions, cohort_settings
    ):
        counts[result["manifest"]["status"]] += 1
        yield result
    logger.info(
        "Recordings: %d processed, %d skipped, %d failed in %.1f s",
        counts["done"],
        len(recording_plan["skipped"]),
        counts["failed"],
        time.perf_counter() - started,
    )


def report_run(
    recording_plan: dict[str, Any], recording_outputs: RecordingOutputs
) -> tuple[dict[str, Any], dict[str, Any]]:
    """This run's account (processed, skipped, failed with reasons) and the validation report."""
    manifests = recording_outputs.manifests()
    planned = {job["recording_id"] for job in recording_plan["jobs"]}
    ours = {
        k: m for k, m in manifests.items() if k[1] in planned or k[1] in recording_plan["skipped"]
    }
    failed = [
        {"subject_id": s, "recording_id": r, "reason": m.get("reason", "")}
        for (s, r), m in ours.items()
        if m.get("status") == "failed"
    ]
    run = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_source": recording_plan["model_source"],
        "model_version": recording_plan["model_version"],
        "settings_version": recording_plan["settings_version"],
        "recordings": len(ours),
        "processed": sum(1 for (_, r), m in ours.items() if r in planned and m["status"] == "done"),
        "skipped": len(recording_plan["skipped"]),
        "failed": failed,
        "windows": int(sum(m.get("windows", 0) for m in ours.values())),
    }
    this_run = [m for (_, r), m in ours.items() if r in planned and "finished_at" in m]
    if this_run:
        # From the first recording's start to the last one's end, on the workers: the
        # processing part, without starting the cluster and the workers.
        run["processing_s"] = round(
            max(m["finished_at"] for m in this_run) - min(m["started_at"] for m in this_run), 2
        )
    entries = [m["validation"] for m in ours.values() if "validation" in m]
    accepted = sum(e["status"] == "accepted" for e in entries)
    validation_report = {
        "summary": {
            "recordings": len(entries),
            "accepted": accepted,
            "rejected": len(entries) - accepted,
        },
        "recordings": entries,
    }
    if failed:
        logger.warning(
            "%d recording(s) failed: %s",
            len(failed),
            "; ".join(f"{f['recording_id']}: {f['reason']}" for f in failed),
        )
    if not any(m.get("status") == "done" for m in ours.values()):
        raise ValueError(
            "No recording could be predicted:\n"
            + "\n".join(f"  {f['recording_id']}: {f['reason']}" for f in failed)
        )
    return run, validation_report


def summarise_recordings_table(recording_outputs: RecordingOutputs) -> pd.DataFrame:
    """One row per recording: status, windows, time covered, non-wear, failure reason."""
    rows = []
    for (subject_id, recording_id), m in recording_outputs.manifests().items():
        rows.append(
            {
                "subject_id": subject_id,
                "recording_id": recording_id,
                "status": m.get("status"),
                "timezone": m.get("timezone"),
                "windows": int(m.get("windows", 0)),
                "non_wear_windows": int(m.get("non_wear_windows", 0)),
                "first_window_ms": m.get("first_window_ms", np.nan),
                "last_window_ms": m.get("last_window_ms", np.nan),
                "reason": m.get("reason", ""),
                "seconds": m.get("seconds", np.nan),
            }
        )
    return pd.DataFrame(rows).astype(
        {"subject_id": "string", "recording_id": "string", "status": "string", "reason": "string"}
    )


def summarise_days(
    recording_outputs: RecordingOutputs, model_bundle: Mapping[str, Any]
) -> pd.DataFrame:
    """Per participant and local day: minutes per activity, wear, non-wear, coverage."""
    partials = [frame for _, frame in recording_outputs.read("daily")]
    return combine_daily(partials, list(model_bundle["contract"]["class_names"]))


def collect_minutes(recording_outputs: RecordingOutputs) -> pd.DataFrame:
    """Every recording's per-minute timeline (at most 1,440 rows per participant-day)."""
    return recording_outputs.read_all("minutes")


def plot_study_actogram(
    activity_minutes: pd.DataFrame, model_bundle: Mapping[str, Any]
) -> go.Figure:
    """Hour of day x day per participant, coloured by activity, non-wear shown."""
    return plot_actogram(activity_minutes, list(model_bundle["contract"]["class_names"]))


def plot_study_daily_minutes(
    daily_activity: pd.DataFrame, model_bundle: Mapping[str, Any]
) -> go.Figure:
    """Minutes per activity per day and participant (stacked), with non-wear."""
    return plot_daily_minutes(daily_activity, list(model_bundle["contract"]["class_names"]))


def render_study_report(
    daily_activity: pd.DataFrame,
    actogram: go.Figure,
    daily_minutes_plot: go.Figure,
    inference_run: dict[str, Any],
) -> str:
    """The self-contained HTML report of the run (opens offline, can be sent as one file)."""
    return render_html_report(daily_activity, actogram, daily_minutes_plot, inference_run)


def score_recordings(
    recording_outputs: RecordingOutputs, model_bundle: Mapping[str, Any]
) -> dict[str, Any]:
    """Accuracy and macro-F1 of raw and smoothed activities where recordings carry labels."""
    columns = ["label", "activity", "activity_smoothed"]
    parts = [frame for _, frame in recording_outputs.read("windows", columns=columns)]
    table = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["recording_id", *columns])
    )
    return score_windows(table, list(model_bundle["contract"]["class_names"]))
