"""``python -m har_mlops.serving``: uvicorn with checked settings and shared worker metrics.

Refuses (exit code 2) to bind a non-loopback address without ``HAR_API_TOKEN``, and prepares
the Prometheus multiprocess folder before uvicorn forks its workers, so that every scrape of
``/metrics`` reports the totals of all workers, whichever worker answers it.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .settings import ServingSettings, SettingsError, load_settings

logger = logging.getLogger(__name__)

APP = "har_mlops.serving.app:app"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_WORKERS = 1
# uvicorn's default (5 s) kills workers whose health-check thread cannot get the GIL while
# TensorFlow imports and the model loads: on a busy machine they were replaced in a loop.
DEFAULT_WORKER_HEALTHCHECK_S = 60
# Must name the same variable as metrics.MULTIPROC_ENV; not imported from there, because
# importing prometheus_client before this variable is set fixes its single-process mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
EXIT_USAGE = 2


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        # A host name other than localhost may resolve to any interface.
        return False


def prepare_metrics_dir(folder: str | None) -> tuple[Path, bool]:
    """The multiprocess folder, emptied of earlier runs' values; True when created here."""
    if folder is None:
        return Path(tempfile.mkdtemp(prefix="har-metrics-")), True
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    # Values of an earlier run's processes would be added to this run's totals.
    for stale in path.glob("*.db"):
        stale.unlink()
    return path, False


def _parser() -> argparse.ArgumentParser:
    """The command line: where to listen and how many worker processes."""
    parser = argparse.ArgumentParser(
        prog="python -m har_mlops.serving",
        description="Serve the activity model over HTTP (settings: HAR_* variables).",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="(default: %(default)s)")
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help="worker processes (default: %(default)s)",
    )
    parser.add_argument(
        "--worker-healthcheck-timeout",
        type=int,
        default=DEFAULT_WORKER_HEALTHCHECK_S,
        help="seconds a worker may take to answer uvicorn's health check (default: %(default)s)",
    )
    return parser


def _checked(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ServingSettings:
    """The settings, or exit 2 with the reason they or the arguments cannot serve."""
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.worker_healthcheck_timeout < 1:
        parser.error("--worker-healthcheck-timeout must be at least 1")
    if not 0 < args.port < 65536:
        parser.error("--port must be between 1 and 65535")
    try:
        settings = load_settings()
    except SettingsError as exc:
        parser.exit(EXIT_USAGE, f"{parser.prog}: {exc}\n")
    if settings.api_token is None and not is_loopback(args.host):
        parser.exit(
            EXIT_USAGE,
            f"{parser.prog}: refusing to bind {args.host} without HAR_API_TOKEN: other machines "
            "could call the API unauthenticated. Set HAR_API_TOKEN, or bind 127.0.0.1.\n",
        )
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    """Checks settings and arguments, prepares the metrics folder, runs uvicorn."""
    parser = _parser()
    args = parser.parse_args(argv)
    settings = _checked(parser, args)
    metrics_dir, created = prepare_metrics_dir(settings.metrics_dir)
    # Inherited by the workers, which import prometheus_client after this.
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    import uvicorn

    logger.info("Prometheus multiprocess folder: %s", metrics_dir)
    try:
        uvicorn.run(
            APP,
            host=args.host,
            port=args.port,
            workers=args.workers,
            timeout_worker_healthcheck=args.worker_healthcheck_timeout,
        )
    finally:
        if created:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
