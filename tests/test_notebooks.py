"""The notebooks run top to bottom, headless, against a project copy in the `test` environment.

The copy first runs what the notebooks read: data_processing and training (four HAPT subjects,
two epochs), inference on one shipped sample recording, and monitoring. Each notebook is then
executed with nbclient from the copy's ``notebooks/`` folder, as ``kedro jupyter lab`` would,
with ``KEDRO_ENV=test`` selecting the environment for ``%reload_kedro``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import nbformat
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from nbclient import NotebookClient

from har_mlops.pipeline_registry import register_pipelines
from tests.conftest import PROJECT_ROOT, make_project_copy

NOTEBOOKS = ("01_explore_recordings.ipynb", "02_model_and_monitoring_report.ipynb")
# One shipped sample recording (UCI test subject 2, the test environment's test subject).
SAMPLE = "sample_exp03_user02"


def _session_run(project: Path, pipelines: list[str]) -> None:
    with KedroSession.create(project_path=project, env="test") as session:
        session.run(pipeline_names=pipelines)
    # kedro-mlflow 2.0.3 leaves the run on MLflow's stack (see tests/conftest.py).
    while mlflow.active_run():
        mlflow.end_run()


def prepare_project(project: Path) -> None:
    """Copies the notebooks and one sample recording in, runs the pipelines they read."""
    shutil.copytree(
        PROJECT_ROOT / "notebooks", project / "notebooks", ignore=shutil.ignore_patterns(".*")
    )
    shutil.copytree(
        PROJECT_ROOT / "data" / "01_raw" / "inference" / SAMPLE,
        project / "data" / "01_raw" / "inference" / SAMPLE,
    )
    bootstrap_project(project)
    _session_run(project, ["data_processing", "training"])
    _session_run(project, ["inference"])
    if "monitoring" in register_pipelines():
        _session_run(project, ["monitoring"])


def execute(path: Path) -> nbformat.NotebookNode:
    """Runs a notebook in the venv's python3 kernel from its own folder; raises on any error."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return notebook


def tagged_output(notebook: nbformat.NotebookNode, tag: str) -> str:
    """Everything the cell tagged ``tag`` displayed: stream text, text/plain and mime types."""
    (cell,) = [c for c in notebook.cells if tag in c.metadata.get("tags", [])]
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in {"display_data", "execute_result"}:
            parts.extend(output.data.keys())
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        project = make_project_copy(tmp_path_factory.mktemp("notebooks"), monkeypatch)
        prepare_project(project)
        # The kernel inherits this process's environment: KEDRO_ENV picks `test`, as
        # `kedro jupyter lab --env test` would.
        monkeypatch.setenv("KEDRO_ENV", "test")
        yield {name: execute(project / "notebooks" / name) for name in NOTEBOOKS}


def test_committed_notebooks_carry_no_outputs():
    for name in NOTEBOOKS:
        notebook = nbformat.read(PROJECT_ROOT / "notebooks" / name, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


def test_explore_notebook_reads_the_test_environment(executed):
    notebook = executed[NOTEBOOKS[0]]
    assert "environment: test" in tagged_output(notebook, "setup")
    assert "image/png" in tagged_output(notebook, "raw-signals")
    balance = tagged_output(notebook, "class-balance")
    assert "image/png" in balance and "subject" in balance
    assert "image/png" in tagged_output(notebook, "example-windows")
    rates = tagged_output(notebook, "sampling-rate")
    assert "50.0" in rates and "within tolerance" in rates


def test_report_notebook_shows_evaluation_and_monitoring(executed):
    notebook = executed[NOTEBOOKS[1]]
    assert "environment: test" in tagged_output(notebook, "setup")
    metrics = tagged_output(notebook, "per-class-metrics")
    assert "SITTING" in metrics and "f1" in metrics
    assert "application/vnd.plotly.v1+json" in tagged_output(notebook, "confusion-matrix")
    monitoring = tagged_output(notebook, "monitoring-verdict")
    assert "Monitoring verdict:" in monitoring
    assert "not found" not in monitoring
    assert "application/vnd.plotly.v1+json" in tagged_output(notebook, "drift-figures")
