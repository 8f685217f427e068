"""Figures of the monitoring report (plotly, saved with plotly.JSONDataset)."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def plot_feature_drift(report: dict[str, Any]) -> go.Figure:
    """Drift score per feature (largest effect size / calibrated threshold over activities)."""
    features = report["data_drift"]["features"]
    names = list(features)
    scores = [features[n]["score"] for n in names]
    figure = go.Figure(
        go.Bar(
            x=names,
            y=scores,
            marker_color=["crimson" if s > 1 else "steelblue" for s in scores],
            customdata=[features[n]["activity"] for n in names],
            hovertemplate="%{x} in %{customdata}: %{y:.2f}<extra></extra>",
        )
    )
    figure.add_hline(y=1.0, line_dash="dash", annotation_text="calibrated no-drift limit")
    share = report["data_drift"]["drift_share"]
    figure.update_layout(
        title=f"Feature drift scores (verdict {report['verdict']}, "
        f"{_fmt(share, '.0%')} of features drifted)",
        yaxis_title="score (effect size / threshold)",
        yaxis_type="log",
    )
    return figure


def plot_distributions(report: dict[str, Any]) -> go.Figure:
    """Reference vs current CDFs of the most drifted features, in their activity."""
    shown = report["data_drift"]["distributions"]
    cols = 3
    rows = max(1, int(np.ceil(len(shown) / cols)))
    figure = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[f"{d['feature']} ({d['activity']})" for d in shown] or ["no data"],
    )
    for k, item in enumerate(shown):
        for name, key, colour in (
            ("reference", "reference_quantiles", "grey"),
            ("current", "current_quantiles", "crimson"),
        ):
            figure.add_trace(
                go.Scatter(
                    x=item[key],
                    y=item["levels"],
                    mode="lines",
                    name=name,
                    line={"color": colour},
                    showlegend=k == 0,
                ),
                row=k // cols + 1,
                col=k % cols + 1,
            )
    figure.update_layout(
        title="Most drifted features: reference vs current distribution (CDF)",
        height=320 * rows,
    )
    return figure


def plot_class_mix(report: dict[str, Any]) -> go.Figure:
    """Predicted class mix of the current batch against the reference (test subjects)."""
    drift = report["prediction_drift"]
    classes = list(drift["reference"]["class_mix"])
    figure = go.Figure(
        [
            go.Bar(name=name, x=classes, y=[drift[name]["class_mix"][c] for c in classes])
            for name in ("reference", "current")
        ]
    )
    figure.update_layout(
        barmode="group",
        title=f"Predicted class mix (Jensen-Shannon distance "
        f"{_fmt(drift['deltas']['js_distance'])})",
        yaxis_title="share of windows",
    )
    return figure


def plot_confidence(report: dict[str, Any]) -> go.Figure:
    """Confidence histograms of the current batch and the reference."""
    histogram = report["prediction_drift"]["confidence_histogram"]
    edges = np.asarray(histogram["edges"])
    centres = (edges[:-1] + edges[1:]) / 2
    figure = go.Figure(
        [
            go.Bar(name=name, x=centres, y=histogram[name], width=np.diff(edges))
            for name in ("reference", "current")
        ]
    )
    current = report["prediction_drift"]["current"]
    figure.update_layout(
        barmode="overlay",
        title=f"Prediction confidence (mean {_fmt(current['mean_confidence'])}, label-free "
        f"accuracy estimate {_fmt(current['estimated_accuracy'])})",
        xaxis_title="confidence",
        yaxis_title="share of windows",
    )
    figure.update_traces(opacity=0.6)
    return figure


def plot_monitoring(report: dict[str, Any]) -> tuple[go.Figure, go.Figure, go.Figure, go.Figure]:
    """The four monitoring figures: feature drift, distributions, class mix, confidence."""
    return (
        plot_feature_drift(report),
        plot_distributions(report),
        plot_class_mix(report),
        plot_confidence(report),
    )
