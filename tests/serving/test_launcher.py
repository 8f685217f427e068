"""``python -m har_mlops.serving``: refusals, the metrics folder, and totals across workers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from har_mlops.serving.__main__ import is_loopback, prepare_metrics_dir
from har_mlops.serving.process import free_port, running_server, wait_ready
from tests.conftest import PROJECT_ROOT
from tests.serving.conftest import PRETRAINED, request_body

WORKERS = 2
PREDICTIONS = 20
SCRAPES = 8
START_TIMEOUT_S = 300.0
PREDICT_200 = re.compile(
    r'^har_http_requests_total\{endpoint="/predict",status="200"\} (\S+)$', re.MULTILINE
)
MODEL_LOADED = re.compile(r"^har_model_loaded (\S+)$", re.MULTILINE)


def _env(**extra: str) -> dict[str, str]:
    """This environment without HAR_* variables, plus ``extra``; the worktree's sources."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAR_", "PROMETHEUS_"))}
    env.update(
        PYTHONPATH=str(PROJECT_ROOT / "src"),
        KEDRO_DISABLE_TELEMETRY="1",
        TF_CPP_MIN_LOG_LEVEL="3",
        **extra,
    )
    return env


def _launch(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Runs the launcher to completion (for the refusals, which exit before uvicorn)."""
    return subprocess.run(
        [sys.executable, "-m", "har_mlops.serving", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.org", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_refuses_other_interfaces_without_token():
    result = _launch(["--host", "0.0.0.0", "--port", str(free_port())], _env())
    assert result.returncode == 2
    assert "refusing to bind 0.0.0.0 without HAR_API_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_refuses_invalid_settings_naming_the_variable():
    result = _launch(["--port", str(free_port())], _env(HAR_MAX_BODY_BYTES="8 mebibytes"))
    assert result.returncode == 2
    assert "HAR_MAX_BODY_BYTES" in result.stderr and "8MiB" in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_folder_is_emptied_or_created(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_12345.db").write_bytes(b"stale values")
    (folder / "README").write_text("not ours")
    path, created = prepare_metrics_dir(str(folder))
    assert (path, created) == (folder, False)
    assert sorted(p.name for p in folder.iterdir()) == ["README"]
    fresh, created = prepare_metrics_dir(None)
    try:
        assert created and fresh.is_dir() and not any(fresh.iterdir())
    finally:
        shutil.rmtree(fresh)


def _fast_conf(tmp_path: Path) -> Path:
    """conf/base with few, uncompiled batch buckets: the same model, loaded in seconds."""
    conf = tmp_path / "conf"
    shutil.copytree(PROJECT_ROOT / "conf" / "base", conf / "base")
    serving = conf / "base" / "parameters_serving.yml"
    text = serving.read_text()
    assert "max_bucket: 512" in text and "jit_compile: ${globals:jit_compile}" in text
    text = text.replace("max_bucket: 512", "max_bucket: 64")
    serving.write_text(text.replace("jit_compile: ${globals:jit_compile}", "jit_compile: false"))
    return conf


def _get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET on a new connection (urllib opens one per request)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_all_workers(url: str, timeout_s: float) -> set[int]:
    """The pids of the workers, once each answered /health with a loaded model."""
    deadline, pids = time.monotonic() + timeout_s, set()
    while len(pids) < WORKERS:
        assert time.monotonic() < deadline, f"only workers {pids} answered in {timeout_s} s"
        status, body = _get(url + "/health")
        if status == 200:
            pids.add(json.loads(body)["pid"])
        time.sleep(0.1)
    return pids


def test_two_workers_report_the_same_totals(tmp_path, sample_table):
    port = free_port()
    metrics_dir = tmp_path / "prometheus"
    env = _env(
        HAR_MODEL_PATH=str(PRETRAINED),
        HAR_CONF_SOURCE=str(_fast_conf(tmp_path)),
        HAR_CONF_ENV="base",
        HAR_METRICS_DIR=str(metrics_dir),
        HAR_MONITORING_REPORT=str(tmp_path / "no_report.json"),
    )
    command = [sys.executable, "-m", "har_mlops.serving", "--port", str(port)]
    command += ["--workers", str(WORKERS)]
    body = json.dumps(request_body(sample_table)).encode()
    log = tmp_path / "launcher.log"
    with running_server("launcher", command, port, log, env=env, cwd=PROJECT_ROOT) as server:
        wait_ready(server, "/health", timeout_s=START_TIMEOUT_S)
        _wait_all_workers(server.url, START_TIMEOUT_S)
        answered = set()
        for _ in range(PREDICTIONS):
            request = urllib.request.Request(
                server.url + "/predict",
                data=body,
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                assert response.status == 200
                answered.add(json.loads(response.read())["model"]["path"])
        totals, loaded = [], []
        for _ in range(SCRAPES):
            status, text = _get(server.url + "/metrics")
            assert status == 200
            found = PREDICT_200.search(text.decode())
            assert found, server.log_tail()
            totals.append(float(found[1]))
            loaded.append(float(MODEL_LOADED.search(text.decode())[1]))
        # The workers write their values into the folder the launcher prepared.
        assert any(metrics_dir.glob("counter_*.db"))
    assert totals == [float(PREDICTIONS)] * SCRAPES, server.log_tail()
    assert loaded == [1.0] * SCRAPES
    assert answered == {str(PRETRAINED)}
