"""`kedro viz build` exits 0 even when it fails, so the test reads what it wrote.

It runs in a throw-away project copy: the checkout's ``build/`` is left alone and a
developer's ``conf/local`` cannot change (or break) what the test sees.
"""

import json
import os
import subprocess
import sys
from pathlib import Path


def test_viz_build_lists_pipelines_and_layers(project_copy):
    build = project_copy / "build"
    assert not build.exists()
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    kedro = Path(sys.executable).with_name("kedro")
    subprocess.run(
        [str(kedro), "viz", "build"], cwd=project_copy, env=env, check=True, capture_output=True
    )
    graph = json.loads((build / "api" / "main").read_text())
    pipelines = {p["id"] for p in graph["pipelines"]}
    assert {"data_processing", "training", "inference", "monitoring", "__default__"} <= pipelines
    # kedro-viz silently drops every layer when the layers do not form a chain.
    assert graph["layers"] == [
        "raw",
        "intermediate",
        "model_input",
        "models",
        "model_output",
        "reporting",
    ]
    nodes = {n["name"]: n for n in graph["nodes"]}
    for task in ("validate_recordings", "window_samples", "split_windows", "train_model"):
        assert nodes[task]["type"] == "task"
    assert nodes["raw_recordings"]["layer"] == "raw"
    assert nodes["samples"]["layer"] == "intermediate"
    assert nodes["windows_train"]["layer"] == "model_input"
    assert nodes["scaler"]["layer"] == "models"
    assert nodes["validation_report"]["layer"] == "reporting"
    # Every dataset sits in a layer (parameters and collapsed groups have none).
    unplaced = [n["name"] for n in graph["nodes"] if n["type"] == "data" and not n.get("layer")]
    assert unplaced == []
