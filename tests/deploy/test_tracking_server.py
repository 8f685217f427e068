"""A real MLflow tracking server on a real PostgreSQL: training registers, the API serves.

PostgreSQL 15 runs from a temporary folder on a free loopback port (as the ``postgres`` user
when the tests run as root: ``initdb`` refuses root), ``mlflow server`` stores runs and the
registry in it and proxies artifacts to a temporary folder. The training pipeline runs in a
project copy (``--env test``, one epoch, up to ``register_model``) against the server over
HTTP; the rows are then read straight from PostgreSQL, and the FastAPI app serves the
registered alias from the server. Everything is stopped in teardown, whatever failed.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from har_mlops.datasets import WearableExportDataset
from har_mlops.serving import process
from har_mlops.serving.predictor import export_to_table
from tests.conftest import PROJECT_ROOT, make_project_copy
from tests.serving.conftest import SAMPLE_RECORDING, request_body

pytestmark = pytest.mark.skipif(
    shutil.which("initdb") is None or shutil.which("pg_ctl") is None,
    reason="PostgreSQL server binaries (initdb, pg_ctl) are not on PATH",
)

DATABASE = "mlflow"
STARTUP_TIMEOUT_S = 300.0
KEDRO_TIMEOUT_S = 900
# SQLAlchemy 2.1 maps a bare postgresql:// to psycopg (3); the project ships psycopg2.
DRIVER = "postgresql+psycopg2"


def _as_postgres(command: str) -> subprocess.CompletedProcess[str]:
    """Runs a shell command as the ``postgres`` user when root (initdb refuses root)."""
    argv = ["bash", "-c", command]
    if os.geteuid() == 0:
        argv = ["su", "postgres", "-s", "/bin/bash", "-c", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict[str, Any]]:
    """A PostgreSQL cluster in a temporary folder with an empty ``mlflow`` database."""
    import psycopg2

    # Not tmp_path_factory: pytest's base folder is private to root, and the server runs as
    # the postgres user.
    folder = Path(tempfile.mkdtemp(prefix="har_pg_"))
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
    port = process.free_port()
    data = folder / "data"
    started = _as_postgres(
        f"initdb -D {data} -A trust -U postgres >{folder}/initdb.log 2>&1 && "
        f"pg_ctl -D {data} -w -t 60 -l {folder}/server.log "
        f"-o '-p {port} -k {folder} -c listen_addresses=127.0.0.1' start"
    )
    try:
        assert started.returncode == 0, (
            started.stdout
            + started.stderr
            + process.log_tail(folder / "initdb.log")
            + process.log_tail(folder / "server.log")
        )
        connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres")
        # CREATE DATABASE cannot run in a transaction, which `with connection` would open.
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            connection.close()
        yield {"port": port, "uri": f"{DRIVER}://postgres@127.0.0.1:{port}/{DATABASE}"}
    finally:
        _as_postgres(f"pg_ctl -D {data} -m fast -w stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def tracking_server(postgres, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """``mlflow server`` on PostgreSQL, serving artifacts from a temporary folder."""
    folder = tmp_path_factory.mktemp("tracking_server")
    port = process.free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", postgres["uri"]]
    command += ["--artifacts-destination", str(folder / "artifacts"), "--serve-artifacts"]
    # One worker: two shared cores, and each worker imports all of MLflow.
    command += ["--host", process.LOOPBACK, "--port", str(port), "--workers", "1"]
    with process.running_server("mlflow server", command, port, folder / "mlflow.log") as server:
        process.wait_ready(server, "/health", STARTUP_TIMEOUT_S, interval_s=1.0)
        yield {"url": server.url, "artifacts": folder / "artifacts", "server": server}


@pytest.fixture(scope="module")
def trained(tracking_server, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The test environment trained (one epoch) and registered against the server."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        project = make_project_copy(tmp_path_factory.mktemp("tracking_project"), monkeypatch)
        # kedro-mlflow reads MLFLOW_TRACKING_URI only when mlflow.yml sets none, and the test
        # environment sets its SQLite file: the copy's test env points at the server instead.
        mlflow_yml = project / "conf" / "test" / "mlflow.yml"
        conf = yaml.safe_load(mlflow_yml.read_text())
        conf["server"]["mlflow_tracking_uri"] = tracking_server["url"]
        mlflow_yml.write_text(yaml.safe_dump(conf))
        kedro = Path(sys.executable).with_name("kedro")
        # Up to register_model: monitoring calibration and reports add a minute and nothing
        # the registry sees.
        command = [str(kedro), "run", "--env", "test", "--pipelines", "data_processing,training"]
        command += ["--to-nodes", "register_model", "--params", "training.epochs=1"]
        # The checkout under test, not whatever the editable install points at.
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}
        result = subprocess.run(
            command,
            cwd=project,
            env=env | {"KEDRO_DISABLE_TELEMETRY": "1"},
            capture_output=True,
            text=True,
            timeout=KEDRO_TIMEOUT_S,
            check=False,
        )
        assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
        registration = json.loads(
            (project / "data" / "08_reporting" / "model_registration.json").read_text()
        )
        params = yaml.safe_load((project / "conf" / "test" / "parameters_training.yml").read_text())
        yield {
            "project": project,
            "registration": registration,
            "model_name": params["registry"]["model_name"],
        }


@pytest.fixture(scope="module")
def api(trained, tracking_server, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The FastAPI app serving the registered alias from the tracking server."""
    registration = trained["registration"]
    folder = tmp_path_factory.mktemp("api")
    model_uri = f"models:/{registration['model_name']}@{registration['alias']}"
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT / "src"),
        "HAR_MODEL_URI": model_uri,
        "HAR_TRACKING_URI": tracking_server["url"],
        "HAR_CONF_SOURCE": str(PROJECT_ROOT / "conf"),
        "HAR_CONF_ENV": "base",
        # No local bundle to fall back to: a registry failure must fail the start.
        "HAR_FALLBACK_PATHS": str(folder / "no_bundle"),
    }
    port = process.free_port()
    command = [sys.executable, "-m", "uvicorn", "har_mlops.serving.app:app"]
    command += ["--host", process.LOOPBACK, "--port", str(port)]
    with process.running_server("FastAPI", command, port, folder / "api.log", env=env) as server:
        health = json.loads(process.wait_ready(server, "/health", STARTUP_TIMEOUT_S, 1.0))
        yield {"server": server, "health": health, "model_uri": model_uri}


def _query(postgres: dict[str, Any], sql: str, *args: Any) -> list[tuple]:
    """Rows of one query on the mlflow database, read directly from PostgreSQL."""
    import psycopg2

    connection = psycopg2.connect(
        host="127.0.0.1", port=postgres["port"], user="postgres", dbname=DATABASE
    )
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()
    finally:
        connection.close()


def test_training_registered_the_model_in_postgres(trained, postgres):
    registration = trained["registration"]
    assert registration["registered"] is True
    assert registration["model_name"] == trained["model_name"]
    assert _query(postgres, "SELECT name FROM registered_models") == [(trained["model_name"],)]
    aliases = _query(
        postgres,
        "SELECT alias, version FROM registered_model_aliases WHERE name = %s",
        trained["model_name"],
    )
    # One epoch stays far below the test floor (macro-F1 0.9) and there is no champion yet.
    assert registration["alias"] == "challenger"
    assert aliases == [(registration["alias"], registration["version"])]
    runs = _query(postgres, "SELECT status FROM runs WHERE run_uuid = %s", registration["run_id"])
    assert runs == [("FINISHED",)]


def test_artifacts_went_through_the_server(trained, tracking_server, postgres):
    (source,) = _query(
        postgres,
        "SELECT source FROM model_versions WHERE name = %s AND version = %s",
        trained["model_name"],
        trained["registration"]["version"],
    )[0]
    # Proxied artifacts: the registry points at the server, the files lie in its destination.
    assert source.startswith(("mlflow-artifacts:", "models:/")), source
    logged = list(tracking_server["artifacts"].rglob("MLmodel"))
    assert logged, "no model under the server's --artifacts-destination"
    assert any((path.parent / "code" / "har_mlops" / "__init__.py").is_file() for path in logged)


def test_api_serves_the_registered_alias(api, trained):
    registration = trained["registration"]
    model = api["health"]["model"]
    assert model["kind"] == "registry"
    assert model["uri"] == api["model_uri"]
    assert model["version"] == registration["version"]
    assert model["run_id"] == registration["run_id"]


def test_api_predicts_with_the_registered_model(api):
    folder = PROJECT_ROOT / "data" / "01_raw" / "inference"
    table = export_to_table(WearableExportDataset(str(folder)).load()[SAMPLE_RECORDING])
    table = table[table["timestamp_ms"] < table["timestamp_ms"].iloc[0] + 10_000]
    body = json.dumps(request_body(table.reset_index(drop=True))).encode()
    request = urllib.request.Request(
        api["server"].url + "/predict", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200
        answer = json.loads(response.read())
    assert len(answer["windows"]) >= 1
    assert answer["model"]["kind"] == "registry"
    assert answer["model"]["uri"] == api["model_uri"]
