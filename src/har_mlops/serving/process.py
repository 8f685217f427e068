"""Model servers as subprocesses on loopback: start, wait until ready, stop.

Used by ``scripts/check_serving.py`` (``mlflow models serve`` and uvicorn) and the serving
benchmarks. Each server runs in its own process group with its output in a log file, so that
workers stop with their parent and a failed start can say why.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
LOG_TAIL_LINES = 30


class ServerStartError(RuntimeError):
    """A server exited or did not answer in time; the message ends with its log's tail."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class ServerProcess:
    """A running server: its process, base URL, log file and a name for messages."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The end of the server's output."""
        return log_tail(self.log, lines)


def start_server(
    name: str,
    command: Sequence[str],
    port: int,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    host: str = LOOPBACK,
) -> ServerProcess:
    """Starts ``command`` (which must listen on ``host:port``), output to ``log``."""
    logger.info("Starting %s: %s", name, " ".join(command))
    with log.open("wb") as out:
        # A new session, i.e. a process group of its own: stopping it reaches the workers.
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ServerProcess(name, process, f"http://{host}:{port}", log)


def _get(url: str, timeout_s: float) -> bytes | None:
    """The body of a 200 answer to GET ``url``; None for no answer or another status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.read() if response.status == 200 else None
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        # HTTPError (e.g. 503 while loading) is a URLError: not ready yet.
        return None


def wait_ready(
    server: ServerProcess,
    path: str,
    timeout_s: float,
    interval_s: float = 0.25,
    request_timeout_s: float = 5.0,
) -> bytes:
    """The body of the first 200 answer to GET ``path``; ServerStartError if none comes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            raise ServerStartError(
                f"{server.name} exited with code {server.process.returncode}; "
                f"end of its log ({server.log}):\n{server.log_tail()}"
            )
        body = _get(server.url + path, request_timeout_s)
        if body is not None:
            return body
        if time.monotonic() >= deadline:
            raise ServerStartError(
                f"{server.name} did not answer {path} within {timeout_s:g} s; "
                f"end of its log ({server.log}):\n{server.log_tail()}"
            )
        time.sleep(interval_s)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Sends ``sig`` to the process group ``pid`` leads, if it still exists."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_server(server: ServerProcess, timeout_s: float = 15.0) -> None:
    """SIGTERM to the server's group, SIGKILL after ``timeout_s``; workers left are killed."""
    process = server.process
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("%s ignored SIGTERM for %g s: killing it", server.name, timeout_s)
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout_s)
    # Workers that outlived their parent are still in its group.
    _signal_group(process.pid, signal.SIGKILL)


@contextmanager
def running_server(
    name: str,
    command: Sequence[str],
    port: int,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[ServerProcess]:
    """:func:`start_server` for the ``with`` block, :func:`stop_server` after it."""
    server = start_server(name, command, port, log, env=env, cwd=cwd)
    try:
        yield server
    finally:
        stop_server(server)
