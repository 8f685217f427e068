"""deploy/compose.yaml: docker-compose accepts it; ports on loopback, dependencies, mounts.

Validation only: there is no Docker daemon in CI, so the images are neither built nor run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import COMPOSE, DEPLOY, PROJECT_ROOT, require_tool

REQUIRED_ENV = {"HAR_API_TOKEN": "test-token", "GRAFANA_ADMIN_PASSWORD": "test-password"}


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    compose = require_tool("docker-compose")
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED_ENV}
    return subprocess.run(
        [compose, "-f", str(COMPOSE), "config"],
        check=False,
        cwd=DEPLOY,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def config() -> dict:
    """The configuration docker-compose resolves (variables interpolated, paths absolute)."""
    result = _compose_config(REQUIRED_ENV)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize("missing", sorted(REQUIRED_ENV))
def test_compose_refuses_to_start_without_the_secrets(missing):
    result = _compose_config({k: v for k, v in REQUIRED_ENV.items() if k != missing})
    assert result.returncode != 0
    assert missing in result.stderr


def test_services(config):
    assert set(config["services"]) == {
        "postgres",
        "mlflow",
        "api",
        "prometheus",
        "grafana",
        "train",
        "monitor",
    }
    assert config["services"]["train"]["profiles"] == ["train"]
    assert config["services"]["monitor"]["profiles"] == ["monitor"]


def _volume_mounts(service: dict) -> dict[str, str]:
    """Target -> source of a service's volumes (docker-compose 1.29 prints short syntax)."""
    mounts = {}
    for volume in service["volumes"]:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = source
    return mounts


def test_monitoring_reads_what_the_api_logs_and_the_api_reads_its_report(config):
    api, monitor = config["services"]["api"], config["services"]["monitor"]
    mounts = _volume_mounts(api)
    assert mounts == _volume_mounts(monitor)
    environment = api["environment"]
    assert str(Path(environment["HAR_PREDICTION_LOG"]).parent) in mounts
    assert str(Path(environment["HAR_MONITORING_REPORT"]).parent) in mounts
    assert "--env served" in " ".join(monitor["command"])


def test_every_published_port_is_bound_to_loopback(config):
    published = []
    for name, service in config["services"].items():
        for port in service.get("ports", []):
            spec = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port}"
            published.append(spec)
            assert spec.startswith("127.0.0.1:"), f"{name}: {spec}"
    assert len(published) >= 4


def _depends(service: dict) -> dict:
    depends = service.get("depends_on", {})
    return depends if isinstance(depends, dict) else {name: {} for name in depends}


def test_dependencies_wait_for_health(config):
    services = config["services"]
    assert _depends(services["mlflow"])["postgres"]["condition"] == "service_healthy"
    assert _depends(services["api"])["mlflow"]["condition"] == "service_healthy"
    assert _depends(services["train"])["mlflow"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_api_serves_the_champion_from_the_tracking_server(config):
    env = config["services"]["api"]["environment"]
    assert env["HAR_MODEL_URI"] == "models:/har_cnn_bilstm@champion"
    assert env["HAR_TRACKING_URI"] == "http://mlflow:5000"
    assert env["HAR_API_TOKEN"] == REQUIRED_ENV["HAR_API_TOKEN"]
    command = config["services"]["mlflow"]["command"]
    assert command[command.index("--backend-store-uri") + 1].startswith("postgresql+psycopg2://")
    assert command[command.index("--artifacts-destination") + 1] == "/mlartifacts"
    assert "--serve-artifacts" in command


def _mounts(service: dict) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        if source.startswith("/"):
            mounts[target] = Path(source)
    return mounts


def test_prometheus_and_grafana_mount_the_repository_files(config):
    prometheus = _mounts(config["services"]["prometheus"])
    assert prometheus["/etc/prometheus"] == DEPLOY / "prometheus"
    assert (prometheus["/etc/prometheus"] / "prometheus.yml").is_file()
    assert (prometheus["/etc/prometheus"] / "alerts.yml").is_file()
    grafana = _mounts(config["services"]["grafana"])
    assert grafana["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"
    assert grafana["/etc/grafana/dashboards"] == DEPLOY / "grafana" / "dashboards"
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


def test_images_build_from_the_repository(config):
    for name in ("api", "train"):
        build = config["services"][name]["build"]
        assert Path(build["context"]) == PROJECT_ROOT
        assert (PROJECT_ROOT / build["dockerfile"]).is_file()
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "USER har" in dockerfile and "HEALTHCHECK" in dockerfile
    assert "pip install ." in dockerfile
    assert (
        'CMD ["python", "-m", "har_mlops.serving", "--host", "0.0.0.0", "--port", "8000", '
        '"--workers", "2"]' in dockerfile
    )
    assert "USER mlflow" in (DEPLOY / "Dockerfile.mlflow").read_text()


def test_mlflow_image_pins_pyprojects_mlflow_range():
    import tomllib

    dependencies = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    (mlflow,) = [d for d in dependencies if d.startswith("mlflow")]
    assert f'"{mlflow}"' in (DEPLOY / "Dockerfile.mlflow").read_text()
