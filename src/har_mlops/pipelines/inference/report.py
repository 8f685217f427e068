"""Cohort report: actogram, daily minutes per activity, and one self-contained HTML page.

The figures are plain plotly Figures (kedro-datasets ``plotly.JSONDataset`` renders them in
kedro-viz); participants are chosen with a dropdown, so the figures stay one plot whatever the
size of the cohort. The HTML page embeds plotly.js once and works offline.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative

from har_mlops.pipelines.inference.daily import NON_WEAR_LABEL, label_codes

logger = logging.getLogger(__name__)

NON_WEAR_COLOUR = "#b4b4b4"
# Qualitative colours without greys (grey is non-wear's); Plotly's ten first.
_PALETTE = list(qualitative.Plotly) + list(qualitative.Bold[:-1]) + list(qualitative.Vivid[:-1])
# Actogram bin widths (minutes) tried in turn until the figure holds at most max_cells cells.
_BIN_MINUTES = (1, 2, 5, 10, 15, 20, 30, 60)
_TIME_ORIGIN = np.datetime64("1970-01-01T00:00", "m")


def activity_colours(classes: list[str]) -> dict[str, str]:
    """A fixed colour per class, in class order, and grey for non-wear."""
    colours = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(classes)}
    colours[NON_WEAR_LABEL] = NON_WEAR_COLOUR
    return colours


def plot_actogram(minutes: pd.DataFrame, classes: list[str], max_cells: int = 300_000) -> go.Figure:
    """Per participant (dropdown): local time of day across, one row per day, by activity."""
    labels = [*classes, NON_WEAR_LABEL]
    colours = activity_colours(list(classes))
    figure = go.Figure()
    codes = label_codes(minutes["activity"], labels)
    known = minutes.loc[codes >= 0]
    codes = codes[codes >= 0]
    if known.empty:
        return _empty_figure("Activity by local time of day", "No minutes to show")
    subjects = known["subject_id"].astype("string").to_numpy(str)
    # Days as integers since the epoch: one row per calendar day from each participant's first
    # to last day (missing days stay blank).
    days = known["date"].astype("string").to_numpy(str).astype("datetime64[D]").astype(np.int64)
    participants, position = np.unique(subjects, return_inverse=True)
    first_day = np.full(len(participants), np.iinfo(np.int64).max)
    np.minimum.at(first_day, position, days)
    last_day = np.full(len(participants), np.iinfo(np.int64).min)
    np.maximum.at(last_day, position, days)
    spans = last_day - first_day + 1
    bin_minutes = next(
        (b for b in _BIN_MINUTES if int(spans.sum()) * -(-1440 // b) <= max_cells),
        _BIN_MINUTES[-1],
    )
    n_bins = -(-1440 // bin_minutes)
    row_offset = np.r_[0, np.cumsum(spans)[:-1]]
    row = row_offset[position] + days - first_day[position]
    column = known["minute_of_day"].to_numpy(np.int64) // bin_minutes
    n_rows, n_labels = int(spans.sum()), len(labels)
    # Dominant label per (day row, bin): counts per label, argmax; ties go to class order.
    per_label = np.bincount(
        (row * n_bins + column) * n_labels + codes, minlength=n_rows * n_bins * n_labels
    ).reshape(n_rows, n_bins, n_labels)
    grid = np.where(per_label.any(axis=2), per_label.argmax(axis=2), -1)
    names = np.asarray([*labels, ""], dtype=object)
    # Cells centred on their bin, on a one-day date axis (hover and ticks read HH:MM).
    x = _TIME_ORIGIN + ((np.arange(n_bins) * bin_minutes + bin_minutes / 2) * 60).astype("m8[s]")
    x_text = np.datetime_as_string(x, unit="s")
    colourscale = _discrete_colourscale([colours[name] for name in labels])
    for i, subject in enumerate(participants):
        block = grid[row_offset[i] : row_offset[i] + spans[i]]
        dates = np.datetime_as_string(
            (first_day[i] + np.arange(spans[i])).astype("datetime64[D]"), unit="D"
        )
        figure.add_trace(
            go.Heatmap(
                x=x_text,
                y=dates,
                z=np.where(block >= 0, block, np.nan),
                text=names[block],
                zmin=-0.5,
                zmax=n_labels - 0.5,
                colorscale=colourscale,
                colorbar={
                    "tickvals": list(range(n_labels)),
                    "ticktext": labels,
                    "title": {"text": "activity"},
                },
                hovertemplate="%{y|%a %Y-%m-%d} %{x|%H:%M}<br>%{text}<extra>"
                + _plotly_text(subject)
                + "</extra>",
                name=str(subject),
                visible=i == 0,
                xgap=0,
                ygap=1,
            )
        )
    most_days = int(spans.max())
    figure.update_layout(
        title=_title("Activity by local time of day", participants[0], bin_minutes),
        height=int(min(1400, max(360, 170 + 22 * most_days))),
        xaxis={
            "title": {"text": "local time of day"},
            "type": "date",
            "tickformat": "%H:%M",
            "dtick": 2 * 3600 * 1000,
            "range": ["1970-01-01 00:00:00", "1970-01-02 00:00:00"],
        },
        yaxis={
            "title": {"text": "day"},
            "type": "date",
            "autorange": "reversed",
            "tickformat": "%a %d %b",
            "dtick": 86_400_000,
        },
        plot_bgcolor="white",
        updatemenus=_participant_menu(
            participants,
            [1] * len(participants),
            lambda subject: _title("Activity by local time of day", subject, bin_minutes),
            # The 24-h x range stays; the days are re-fitted, earliest on top.
            {"yaxis.autorange": "reversed"},
        ),
    )
    return figure


def plot_daily_minutes(daily: pd.DataFrame, classes: list[str]) -> go.Figure:
    """Per participant (dropdown): stacked minutes per activity per local day, plus non-wear."""
    if daily.empty:
        return _empty_figure("Minutes per activity per day", "No days to show")
    colours = activity_colours(list(classes))
    stack = [(name, f"minutes_{name}") for name in classes] + [(NON_WEAR_LABEL, "non_wear_minutes")]
    figure = go.Figure()
    ordered = daily.sort_values(["subject_id", "date"])
    participants = ordered["subject_id"].astype("string").unique().to_numpy(str)
    for i, (subject, days) in enumerate(
        ordered.groupby(ordered["subject_id"].astype("string"), sort=True)
    ):
        dates = days["date"].astype("string").to_numpy(str)
        for label, column in stack:
            values = days[column].to_numpy(np.float64) if column in days else np.zeros(len(days))
            figure.add_trace(
                go.Bar(
                    x=dates,
                    y=np.round(values, 1),
                    name=label,
                    legendgroup=label,
                    marker_color=colours[label],
                    visible=i == 0,
                    hovertemplate="%{x|%a %Y-%m-%d}: %{y:.0f} min<extra>" + label + "</extra>",
                )
            )
    figure.update_layout(
        barmode="stack",
        title=_title("Minutes per activity per day", participants[0]),
        xaxis={"title": {"text": "local date"}, "type": "date", "tickformat": "%a %d %b"},
        yaxis={"title": {"text": "minutes"}},
        # Legend top to bottom as the stack reads: non-wear on top.
        legend={"traceorder": "reversed"},
        updatemenus=_participant_menu(
            participants,
            [len(stack)] * len(participants),
            lambda subject: _title("Minutes per activity per day", subject),
            {"xaxis.autorange": True, "yaxis.autorange": True},
        ),
    )
    return figure


def render_html_report(
    daily: pd.DataFrame,
    actogram: go.Figure,
    daily_minutes_figure: go.Figure,
    run_info: Mapping[str, Any],
) -> str:
    """One self-contained HTML page (plotly.js inlined once): header, both figures, day tables."""
    classes = [c.removeprefix("minutes_") for c in daily.columns if c.startswith("minutes_")]
    n_participants = int(daily["subject_id"].nunique()) if len(daily) else 0
    config = {"displaylogo": False, "responsive": True}
    actogram_html = pio.to_html(
        actogram, include_plotlyjs=True, full_html=False, config=config, default_width="100%"
    )
    minutes_html = pio.to_html(
        daily_minutes_figure,
        include_plotlyjs=False,
        full_html=False,
        config=config,
        default_width="100%",
    )
    sections = [
        "<h1>Daily activity report</h1>",
        _header(run_info, n_participants, len(daily)),
        "<h2>Actogram</h2>",
        "<p>Dominant smoothed activity per local time of day; grey is non-wear, blank is "
        "no recording.</p>",
        actogram_html,
        "<h2>Minutes per activity per day</h2>",
        minutes_html,
        "<h2>Days per participant</h2>",
        "<p>Minutes per activity count worn time only. Coverage is recorded minutes over the "
        "local day's length (1380 or 1500 minutes on daylight-saving days); low-confidence "
        "share is of worn windows.</p>",
        _day_tables(daily, classes),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>Daily activity report</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )


# ------------------------------------------------------------------------------ helpers

_CSS = (
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;"
    "color:#222;max-width:1400px}"
    "table{border-collapse:collapse;margin:0.5rem 0 1.5rem;font-size:0.85rem}"
    "th,td{border:1px solid #ddd;padding:0.25rem 0.5rem;text-align:right}"
    "th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:0.2rem 1rem}"
    "dt{font-weight:600}.failed{color:#a40000}"
)


# run_info keys read for the header, each with the aliases a run account may use.
_RUN_DATE_KEYS = ("run_date", "finished_at", "started_at")
_FAILED_KEYS = ("failed_recordings", "failed")


def _header(run_info: Mapping[str, Any], n_participants: int, n_days: int) -> str:
    """Run date, model version, counts, failed recordings and any further run details."""
    run_date_key = next((key for key in _RUN_DATE_KEYS if key in run_info), None)
    failed_key = next((key for key in _FAILED_KEYS if key in run_info), None)
    shown = {run_date_key, failed_key, "model_version"}
    rows = [
        ("Run date", run_info[run_date_key] if run_date_key else "not given"),
        ("Model version", run_info.get("model_version", "not given")),
        ("Participants", n_participants),
        ("Participant-days", n_days),
    ]
    rows += [(str(key), value) for key, value in run_info.items() if key not in shown]
    items = "".join(
        f"<dt>{html.escape(str(key))}</dt><dd>{html.escape(_plain(value))}</dd>"
        for key, value in rows
    )
    failed = run_info.get(failed_key) if failed_key else None
    failed = list(failed) if isinstance(failed, list | tuple) else ([failed] if failed else [])
    if failed:
        entries = "".join(f"<li>{html.escape(_plain(entry))}</li>" for entry in failed)
        failures = f'<p class="failed">{len(failed)} recording(s) failed:</p><ul>{entries}</ul>'
    else:
        failures = "<p>No recording failed.</p>"
    return f"<dl>{items}</dl>\n{failures}"


def _plain(value: Any) -> str:
    """A run-info value as one line of text."""
    if isinstance(value, Mapping):
        return ", ".join(f"{key}: {_plain(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_plain(item) for item in value)
    return str(value)


def _day_tables(daily: pd.DataFrame, classes: list[str]) -> str:
    """One escaped table of days per participant."""
    if daily.empty:
        return "<p>No days.</p>"
    table = pd.DataFrame(
        {
            "subject_id": daily["subject_id"].astype("string"),
            "date": daily["date"].astype("string"),
            "coverage %": 100.0 * daily["coverage"],
            "wear h": daily["wear_minutes"] / 60.0,
            "non-wear min": daily["non_wear_minutes"],
            "low-confidence %": 100.0 * daily["low_confidence_share"],
            **{f"{name} min": daily[f"minutes_{name}"] for name in classes},
        }
    ).sort_values(["subject_id", "date"])
    formats = {"wear h": "{:.1f}".format}
    parts = []
    for subject, days in table.groupby("subject_id", sort=True):
        body = days.drop(columns="subject_id").to_html(
            index=False,
            escape=True,
            border=0,
            na_rep="–",
            float_format="{:.0f}".format,
            formatters=formats,
        )
        parts.append(f"<h3>Participant {html.escape(str(subject))}</h3>\n{body}")
    return "\n".join(parts)


def _participant_menu(
    participants: np.ndarray,
    traces_per_participant: list[int],
    title: Any,
    layout: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """A dropdown showing one participant's traces at a time (none for a single participant)."""
    if len(participants) < 2:
        return []
    owner = np.repeat(np.arange(len(participants)), traces_per_participant)
    buttons = [
        {
            "label": _plotly_text(subject),
            "method": "update",
            "args": [{"visible": (owner == i).tolist()}, {"title": title(subject), **layout}],
        }
        for i, subject in enumerate(participants)
    ]
    return [
        {
            "buttons": buttons,
            "direction": "down",
            "showactive": True,
            "x": 1.0,
            "xanchor": "right",
            "y": 1.08,
            "yanchor": "bottom",
        }
    ]


def _title(text: str, subject: Any, bin_minutes: int | None = None) -> dict[str, Any]:
    """A figure title naming the participant (and the actogram's bin width)."""
    suffix = f" ({bin_minutes}-min bins)" if bin_minutes and bin_minutes > 1 else ""
    return {"text": f"{text}: participant {_plotly_text(subject)}{suffix}"}


def _plotly_text(value: Any) -> str:
    """Text for plotly's pseudo-HTML labels: markup characters shown, not interpreted."""
    return html.escape(str(value), quote=False)


def _discrete_colourscale(colours: list[str]) -> list[list[Any]]:
    """A stepwise colourscale giving integer code i its own flat colour."""
    n = len(colours)
    scale: list[list[Any]] = []
    for i, colour in enumerate(colours):
        scale += [[i / n, colour], [(i + 1) / n, colour]]
    return scale


def _empty_figure(title: str, message: str) -> go.Figure:
    """A figure that says there is nothing to show."""
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_layout(title={"text": title}, xaxis={"visible": False}, yaxis={"visible": False})
    return figure
