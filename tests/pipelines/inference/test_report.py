"""Actogram, daily-minutes chart and the self-contained HTML report."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from kedro_datasets.plotly import JSONDataset

from har_mlops.pipelines.inference.daily import (
    NON_WEAR_LABEL,
    combine_daily,
    daily_partials,
    minute_timeline,
)
from har_mlops.pipelines.inference.report import (
    activity_colours,
    plot_actogram,
    plot_daily_minutes,
    render_html_report,
)

CLASSES = ["walking", "sitting", "lying"]
TIMEZONE = "Europe/Berlin"
MALICIOUS = '<script>alert("x")</script>&'


def _recording(subject: str, start_local: str, hours: int, seed: int) -> tuple:
    """One window a minute: cheap, and the daily functions take any hop."""
    rng = np.random.default_rng(seed)
    n = hours * 60
    start = pd.Timestamp(start_local, tz=TIMEZONE).tz_convert("UTC").value / 1e6
    start_ms = start + np.arange(n) * 60_000.0
    activity = rng.choice(CLASSES, size=n)
    windows = pd.DataFrame(
        {
            "subject_id": pd.array([subject] * n, dtype="string"),
            "recording_id": pd.array([f"rec-{seed}"] * n, dtype="string"),
            "window_start_ms": start_ms,
            "window_end_ms": start_ms + 2540.0,
            "activity": pd.array(activity, dtype="string"),
            "activity_smoothed": pd.array(activity, dtype="string"),
            "confidence": rng.uniform(0.3, 1.0, n),
            "low_confidence": rng.random(n) < 0.2,
        }
    )
    non_wear = np.zeros(n, dtype=bool)
    non_wear[60:180] = True  # two hours off the wrist
    return windows, non_wear


@pytest.fixture(scope="module")
def cohort():
    recordings = [
        _recording("alice", "2026-03-28 18:00", 30, 0),
        _recording(MALICIOUS, "2026-03-27 09:00", 60, 1),
    ]
    daily = combine_daily([daily_partials(w, f, TIMEZONE, CLASSES, 60.0) for w, f in recordings])
    minutes = pd.concat([minute_timeline(w, f, TIMEZONE) for w, f in recordings], ignore_index=True)
    return daily, minutes


def test_actogram_has_one_heatmap_per_participant_and_a_dropdown(cohort):
    daily, minutes = cohort
    figure = plot_actogram(minutes, CLASSES)
    assert isinstance(figure, go.Figure)
    assert [trace.type for trace in figure.data] == ["heatmap", "heatmap"]
    # Participants in sorted order; the first shown, the others behind the dropdown.
    assert [trace.name for trace in figure.data] == sorted(["alice", MALICIOUS])
    assert [trace.visible for trace in figure.data] == [True, False]
    buttons = figure.layout.updatemenus[0].buttons
    assert [b.args[0]["visible"] for b in buttons] == [[True, False], [False, True]]
    alice = figure.data[1]
    # One row per local day (28-30 March), one column per wall-clock minute.
    assert list(alice.y) == ["2026-03-28", "2026-03-29", "2026-03-30"]
    z = np.asarray(alice.z, dtype=float)
    assert z.shape == (3, 1440)
    labels = [*CLASSES, NON_WEAR_LABEL]
    assert list(alice.colorbar.ticktext) == labels
    # 19:00-21:00 on 28 March is non-wear (windows 60-180 from 18:00); before 18:00 nothing.
    assert (z[0, 19 * 60 : 21 * 60] == labels.index(NON_WEAR_LABEL)).all()
    assert np.isnan(z[0, : 18 * 60]).all()
    # 29 March skips 02:00-02:59 (spring forward): those wall-clock minutes never happen.
    assert np.isnan(z[1, 120:180]).all()
    assert not np.isnan(np.r_[z[1, :120], z[1, 180:]]).any()
    # Every known cell has a label; only known codes appear.
    assert set(np.unique(z[~np.isnan(z)])) <= set(range(len(labels)))


def test_actogram_coarsens_its_bins_to_stay_bounded(cohort):
    _, minutes = cohort
    figure = plot_actogram(minutes, CLASSES, max_cells=2000)
    cells = sum(np.asarray(trace.z, dtype=float).size for trace in figure.data)
    assert cells <= 2000
    assert "min bins" in figure.layout.title.text
    empty = plot_actogram(minutes.iloc[:0], CLASSES)
    assert len(empty.data) == 0 and empty.layout.annotations[0].text == "No minutes to show"


def test_daily_minutes_stack_activities_and_non_wear_per_participant(cohort):
    daily, _ = cohort
    figure = plot_daily_minutes(daily, CLASSES)
    labels = [*CLASSES, NON_WEAR_LABEL]
    assert [trace.type for trace in figure.data] == ["bar"] * 2 * len(labels)
    assert [trace.name for trace in figure.data] == labels * 2
    assert figure.layout.barmode == "stack"
    assert [trace.visible for trace in figure.data] == [True] * 4 + [False] * 4
    alice = daily[daily["subject_id"] == "alice"]
    walking = next(t for t in figure.data[4:] if t.name == "walking")
    np.testing.assert_allclose(walking.y, alice["minutes_walking"].round(1))
    assert list(walking.x) == alice["date"].tolist()
    colours = activity_colours(CLASSES)
    assert figure.data[3].marker.color == colours[NON_WEAR_LABEL]
    assert len(set(colours.values())) == len(labels)


def test_figures_survive_the_kedro_viz_dataset(cohort, tmp_path):
    daily, minutes = cohort
    for name, figure in {
        "actogram": plot_actogram(minutes, CLASSES),
        "daily": plot_daily_minutes(daily, CLASSES),
    }.items():
        dataset = JSONDataset(filepath=str(tmp_path / f"{name}.json"))
        dataset.save(figure)
        assert len(dataset.load().data) == len(figure.data)


def test_html_report_is_self_contained_escaped_and_names_every_participant(cohort):
    daily, minutes = cohort
    page = render_html_report(
        daily,
        plot_actogram(minutes, CLASSES),
        plot_daily_minutes(daily, CLASSES),
        {
            "run_date": "2026-04-01",
            "model_version": "models:/har/7",
            "failed_recordings": [{"recording_id": "bad<rec>", "error": "contract <mismatch>"}],
            "input": "data/01_raw/study & co",
        },
    )
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # plotly.js inlined exactly once, no script fetched from the network. (The bundle still
    # names cdn.plot.ly as the default topojson source of geo maps, which these figures lack.)
    assert page.count("* plotly.js v") == 1
    assert not re.search(r"<script[^>]+src=", page)
    assert page.count('class="plotly-graph-div"') == 2
    # The malicious id appears only escaped: in the table heading and inside the figures' JSON.
    assert MALICIOUS not in page
    assert "<script>alert" not in page
    assert "Participant &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    assert "Participant alice" in page
    assert "bad&lt;rec&gt;" in page and "contract &lt;mismatch&gt;" in page
    assert "1 recording(s) failed" in page
    assert "study &amp; co" in page
    assert "models:/har/7" in page and "2026-04-01" in page
    for date in daily["date"]:
        assert date in page
    # Header counts: two participants, one row per participant-day.
    assert re.search(r"<dt>Participants</dt><dd>2</dd>", page)
    assert re.search(rf"<dt>Participant-days</dt><dd>{len(daily)}</dd>", page)


def test_html_report_renders_an_empty_cohort():
    daily = combine_daily([], classes=CLASSES)
    empty_minutes = minute_timeline(
        pd.DataFrame(
            columns=["subject_id", "recording_id", "window_start_ms", "activity_smoothed"]
        ),
        np.zeros(0, bool),
        None,
    )
    page = render_html_report(
        daily,
        plot_actogram(empty_minutes, CLASSES),
        plot_daily_minutes(daily, CLASSES),
        {},
    )
    assert "No days." in page and "No recording failed." in page
    assert page.count("* plotly.js v") == 1


def test_html_report_reads_the_run_account_of_a_cohort_run(cohort):
    daily, minutes = cohort
    run = {
        "finished_at": "2026-04-02T10:00:00+00:00",
        "model_version": "7",
        "processed": 2,
        "failed": [{"subject_id": "p9", "recording_id": "r<9>", "reason": "no accelerometer"}],
    }
    page = render_html_report(
        daily, plot_actogram(minutes, CLASSES), plot_daily_minutes(daily, CLASSES), run
    )
    assert "<dt>Run date</dt><dd>2026-04-02T10:00:00+00:00</dd>" in page
    assert "1 recording(s) failed" in page and "r&lt;9&gt;" in page
    assert "<dt>processed</dt><dd>2</dd>" in page
    assert "<dt>failed</dt>" not in page
