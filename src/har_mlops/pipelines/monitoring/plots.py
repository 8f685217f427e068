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
    mix = report["behaviour_change"]["class_mix"]
    classes = list(mix["reference"])
    figure = go.Figure(
        [
            go.Bar(name=name, x=classes, y=[mix[name][c] for c in classes])
            for name in ("reference", "current")
        ]
    )
    figure.update_layout(
        barmode="group",
        title=f"Behaviour: predicted activity mix (Jensen-Shannon distance "
        f"{_fmt(mix['js_distance'])}, limit {_fmt(mix['limit'])}; "
        f"{'changed' if mix['changed'] else 'as the reference'}, never a verdict)",
        yaxis_title="share of windows",
    )
    return figure


def plot_behaviour(report: dict[str, Any]) -> go.Figure:
    """Each participant's activity shares of worn time per valid day; changed days marked."""
    participants = report["behaviour_change"]["participants"]
    shown = {s: p for s, p in participants.items() if p["valid_days"]}
    figure = go.Figure()
    visible_traces = []
    for k, (subject, result) in enumerate(shown.items()):
        changed = {(c["date"], c["activity"]) for c in result["changes"]}
        first = len(figure.data)
        for activity, shares in result["shares"].items():
            figure.add_trace(
                go.Scatter(
                    x=result["dates"],
                    y=shares,
                    mode="lines+markers",
                    name=activity,
                    legendgroup=activity,
                    visible=k == 0,
                    marker={
                        "symbol": [
                            "x" if (d, activity) in changed else "circle" for d in result["dates"]
                        ],
                        "size": [14 if (d, activity) in changed else 6 for d in result["dates"]],
                    },
                )
            )
        visible_traces.append((subject, first, len(figure.data)))
    total = len(figure.data)
    figure.update_layout(
        title="Behaviour: share of worn time per activity and valid day (x: a change against "
        "the participant's earlier days)"
        if shown
        else f"Behaviour: no participant has a valid day (>= "
        f"{report['behaviour_change']['rule']['min_wear_minutes']:.0f} worn minutes)",
        yaxis_title="share of worn time",
        yaxis_tickformat=".0%",
        updatemenus=[
            {
                "buttons": [
                    {
                        "label": f"participant {subject}",
                        "method": "update",
                        "args": [{"visible": [start <= i < end for i in range(total)]}],
                    }
                    for subject, start, end in visible_traces
                ],
                "x": 1.0,
                "y": 1.15,
            }
        ]
        if len(visible_traces) > 1
        else [],
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


def plot_monitoring(
    report: dict[str, Any],
) -> tuple[go.Figure, go.Figure, go.Figure, go.Figure, go.Figure]:
    """The monitoring figures: feature drift, distributions, class mix, confidence, behaviour."""
    return (
        plot_feature_drift(report),
        plot_distributions(report),
        plot_class_mix(report),
        plot_confidence(report),
        plot_behaviour(report),
    )
