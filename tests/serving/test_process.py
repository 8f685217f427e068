"""The server process helpers on real subprocesses: a tiny HTTP server, and one that dies."""

from __future__ import annotations

import sys
import urllib.request

import pytest

from har_mlops.serving.process import (
    ServerStartError,
    free_port,
    running_server,
    start_server,
    stop_server,
    wait_ready,
)


def test_http_server_starts_answers_and_stops(tmp_path):
    (tmp_path / "health").write_text("ok")
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    command += ["--directory", str(tmp_path)]
    with running_server("http.server", command, port, tmp_path / "server.log") as server:
        assert wait_ready(server, "/health", timeout_s=30.0) == b"ok"
        with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
            assert response.read() == b"ok"
    assert server.process.poll() is not None
    # A second stop of a stopped server is harmless.
    stop_server(server)


def test_a_server_that_dies_reports_its_log_tail(tmp_path):
    port = free_port()
    command = [sys.executable, "-c", "import sys; print('planted-failure-7c1e'); sys.exit(3)"]
    server = start_server("dying", command, port, tmp_path / "dying.log")
    try:
        with pytest.raises(ServerStartError, match=r"(?s)exited with code 3.*planted-failure-7c1e"):
            wait_ready(server, "/health", timeout_s=30.0)
    finally:
        stop_server(server)


def test_a_server_that_never_answers_times_out(tmp_path):
    port = free_port()
    command = [
        sys.executable,
        "-c",
        "import time; print('still starting', flush=True); time.sleep(60)",
    ]
    server = start_server("silent", command, port, tmp_path / "silent.log")
    try:
        with pytest.raises(ServerStartError, match=r"(?s)within 1 s.*still starting"):
            wait_ready(server, "/ping", timeout_s=1.0, interval_s=0.1)
    finally:
        stop_server(server, timeout_s=5.0)
    assert server.process.poll() is not None
