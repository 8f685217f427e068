"""Checks that the served model predicts exactly what the batch inference pipeline predicts.

Run from the project root after `kedro run` has registered a model:

    python scripts/check_serving.py [--model-uri models:/har_cnn_bilstm@champion]
        [--tracking-uri sqlite:///mlflow.db]
        [--recording data/01_raw/inference/sample_exp03_user02] [--env <kedro env>]

1. The recording (a watch export folder) becomes one single-clock sample table
   (`export_to_table`); the same table is written as a watch export into a temporary folder,
   so that every path predicts the very same samples.
2. `kedro run --pipelines inference --params inference_dir=<that folder>,model_uri=<uri>` in a
   subprocess, with the registry catalog entry of `model_bundle` (conf/registry): `--env
   registry` without `--env`; with `--env X` a temporary copy of conf/base and conf/X plus the
   conf/registry files is passed as `--conf-source`, so that X's parameters and mlflow.yml
   apply. The run overwrites the pipeline's persisted outputs (data/07_model_output/...,
   data/05_model_input/inference_windows.npz, data/08_reporting/inference_*.json): they are
   copied aside before the run and put back (or removed, if they did not exist) right after
   the two prediction tables are read. kedro-mlflow still logs the run to the tracking server.
3. `mlflow models serve -m <uri> --env-manager local` and `uvicorn har_mlops.serving.app:app`
   (HAR_MODEL_URI, HAR_TRACKING_URI) on free loopback ports; the table is posted to
   /invocations and /predict with the units the pipeline assumes for watch exports
   (`inference.raw_source`); both servers are always stopped.
4. Each response is compared with the pipeline's window_predictions (window count, start/end
   times, activities and low_confidence flags identical, probabilities within --tolerance) and
   the API's summary with recording_summaries. One line per server; exit status 1 on any
   mismatch, 2 when the check cannot run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_MODEL_URI = "models:/har_cnn_bilstm@champion"
DEFAULT_RECORDING = "data/01_raw/inference/sample_exp03_user02"
REGISTRY_ENV = "registry"
PIPELINE = "inference"
WINDOWS_DATASET = "window_predictions"
SUMMARIES_DATASET = "recording_summaries"


class CheckError(RuntimeError):
    """The check could not run (as opposed to: it ran and found a mismatch)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare mlflow models serve, the FastAPI app and `kedro run --pipelines "
        "inference` on one recording (run from the project root)."
    )
    parser.add_argument("--model-uri", default=DEFAULT_MODEL_URI)
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI of the servers; default and required value: the one in the "
        "kedro env's mlflow.yml (sqlite:///mlflow.db in base), which the kedro run uses",
    )
    parser.add_argument("--recording", default=DEFAULT_RECORDING, help="a watch export folder")
    parser.add_argument(
        "--env",
        default=None,
        help="kedro env for parameters and mlflow.yml (default: none, i.e. --env registry)",
    )
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max |probability diff|")
    parser.add_argument(
        "--startup-timeout", type=float, default=600.0, help="seconds to wait for each server"
    )
    parser.add_argument("--keep-logs", action="store_true", help="print where the logs are kept")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- configuration


def bootstrap(project: Path) -> Any:
    """Kedro project settings (and pipelines) of the project in the working directory."""
    if not (project / "pyproject.toml").is_file():
        raise CheckError(f"{project} is not a Kedro project root (no pyproject.toml)")
    # Kedro's and omegaconf's start-up notes would drown the report; the subprocesses' logs
    # are kept (--keep-logs) and shown on failure.
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning)
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    from kedro.framework.project import settings

    return settings


def run_conf(project: Path, settings: Any, env: str | None, workdir: Path) -> tuple[Path, str]:
    """The conf source and env of the kedro run: base + env + the registry model_bundle."""
    conf = project / settings.CONF_SOURCE
    if env in (None, REGISTRY_ENV):
        return conf, REGISTRY_ENV
    base_env = settings.CONFIG_LOADER_ARGS.get("base_env", "base")
    if not (conf / env).is_dir():
        raise CheckError(f"No kedro env {env!r} in {conf}")
    overlay = workdir / "conf"
    shutil.copytree(conf / base_env, overlay / base_env)
    shutil.copytree(conf / env, overlay / env)
    for source in sorted((conf / REGISTRY_ENV).glob("*")):
        target = overlay / env / source.name
        if target.exists():
            target = target.with_name(f"{REGISTRY_ENV}_{source.name}")
        shutil.copy2(source, target)
    return overlay, env


def config_loader(settings: Any, conf_source: Path, env: str, runtime_params: dict) -> Any:
    from kedro.config import OmegaConfigLoader

    args = dict(settings.CONFIG_LOADER_ARGS)
    loader = OmegaConfigLoader(
        conf_source=str(conf_source), env=env, runtime_params=runtime_params, **args
    )
    # As kedro-mlflow's hook does, so that mlflow.yml can be read.
    loader.config_patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])
    return loader


def same_tracking_uri(a: str, b: str, project: Path) -> bool:
    def norm(uri: str) -> str:
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            return "sqlite:///" + str((project / uri[len("sqlite:///") :]).resolve())
        if "://" not in uri:
            return str((project / uri).resolve())
        return uri.rstrip("/")

    return norm(a) == norm(b)


def output_files(settings: Any, catalog: dict[str, Any]) -> list[Path]:
    """Files and folders the inference pipeline writes (unversioned catalog entries)."""
    from kedro.framework.project import pipelines

    paths = []
    for name in sorted(pipelines[PIPELINE].all_outputs()):
        entry = catalog.get(name)
        if not isinstance(entry, dict) or entry.get("versioned"):
            continue
        for conf in (entry, entry.get("dataset") if isinstance(entry.get("dataset"), dict) else {}):
            location = conf.get("filepath") or conf.get("path")
            if isinstance(location, str) and "://" not in location:
                paths.append(Path(location))
    return paths


# --------------------------------------------------------------------------- sample table


def build_export(recording: Path, export_dir: Path) -> tuple[str, pd.DataFrame]:
    """The recording's sample table, also written as a watch export under ``export_dir``."""
    from har_mlops.datasets import WearableExportDataset
    from har_mlops.serving.predictor import export_to_table

    if not recording.is_dir():
        raise CheckError(f"No recording folder {recording}")
    name = recording.name
    # The dataset reads every recording of a folder: point it at this one only.
    source = export_dir.parent / "source"
    source.mkdir()
    (source / name).symlink_to(recording.resolve(), target_is_directory=True)
    record = WearableExportDataset(str(source)).load()[name]
    if record["read_errors"] or record["accelerometer"] is None or record["gyroscope"] is None:
        raise CheckError(f"Cannot read {recording}: {record['read_errors'] or 'missing streams'}")
    table = export_to_table(record)

    def stream(prefix: str) -> pd.DataFrame:
        columns = ["timestamp_ms", f"{prefix}_x", f"{prefix}_y", f"{prefix}_z"]
        return table[columns].set_axis(["timestamp", "x", "y", "z"], axis=1)

    dataset = WearableExportDataset(str(export_dir))
    dataset.save(
        {
            name: {
                "accelerometer": stream("acc"),
                "gyroscope": stream("gyro"),
                "subject_id": record["subject_id"],
            }
        }
    )
    # The pipeline must read back exactly the samples the servers get.
    written = dataset.load()[name]
    for prefix, key in (("acc", "accelerometer"), ("gyro", "gyroscope")):
        back = written[key][["timestamp", "x", "y", "z"]].to_numpy(np.float64)
        if not np.array_equal(back, stream(prefix).to_numpy(np.float64)):
            raise CheckError(f"The {key} CSV written to {export_dir} does not read back exactly")
    return name, table


# --------------------------------------------------------------------------- kedro run


def backup_outputs(paths: list[Path], backup: Path) -> dict[Path, Path | None]:
    """Copies of the files (folders) the run overwrites; None for those it will create."""
    saved: dict[Path, Path | None] = {}
    for i, path in enumerate(paths):
        if not path.exists():
            saved[path] = None
            continue
        copy = backup / str(i) / path.name
        copy.parent.mkdir(parents=True)
        if path.is_dir():
            shutil.copytree(path, copy, symlinks=True)
        else:
            shutil.copy2(path, copy)
        saved[path] = copy
    return saved


def restore_outputs(saved: dict[Path, Path | None]) -> None:
    """Puts the copies back and removes what the run created."""
    for path, copy in saved.items():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        if copy is None:
            continue
        if copy.is_dir():
            shutil.copytree(copy, path, symlinks=True)
        else:
            shutil.copy2(copy, path)


def run_kedro(
    project: Path,
    conf_source: Path,
    env: str,
    runtime_params: dict[str, str],
    settings: Any,
    outputs: list[Path],
    workdir: Path,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs the inference pipeline; returns its window and summary tables, outputs restored."""
    from kedro.io import AbstractDataset

    if any("," in value for value in runtime_params.values()):
        raise CheckError(f"--params values cannot contain commas: {runtime_params}")
    command = [sys.executable, "-m", "kedro", "run", "--pipelines", PIPELINE, "--env", env]
    if conf_source != project / settings.CONF_SOURCE:
        command += ["--conf-source", str(conf_source)]
    command += ["--params", ",".join(f"{k}={v}" for k, v in runtime_params.items())]
    loader = config_loader(settings, conf_source, env, runtime_params)
    catalog = loader["catalog"]

    saved = backup_outputs([project / path for path in outputs], workdir / "outputs_backup")
    log = workdir / "kedro_run.log"
    print(f"$ {' '.join(command)}", flush=True)
    try:
        started = time.monotonic()
        with log.open("w") as out:
            result = subprocess.run(
                command, cwd=project, stdout=out, stderr=subprocess.STDOUT, check=False
            )
        if result.returncode != 0:
            raise CheckError(
                f"kedro run failed (exit {result.returncode}); end of its log:\n{tail(log)}"
            )
        print(f"kedro run finished in {time.monotonic() - started:.0f} s", flush=True)
        tables = []
        for name in (WINDOWS_DATASET, SUMMARIES_DATASET):
            tables.append(AbstractDataset.from_config(name, dict(catalog[name])).load())
        return tables[0], tables[1]
    finally:
        restore_outputs(saved)


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return "\n".join(text[-lines:])


class Server:
    """A server subprocess in its own process group, so that its workers stop with it."""

    def __init__(self, name: str, command: list[str], env: dict, log: Path, project: Path):
        self.name, self.log = name, log
        self.port = int(command[command.index("--port") + 1])
        self.url = f"http://127.0.0.1:{self.port}"
        print(f"$ {' '.join(command)}", flush=True)
        with log.open("w") as out:
            self.process = subprocess.Popen(
                command,
                cwd=project,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_healthy(self, path: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CheckError(
                    f"{self.name} exited ({self.process.returncode}); end of its log:\n"
                    f"{tail(self.log)}"
                )
            try:
                with urllib.request.urlopen(self.url + path, timeout=5) as response:
                    if response.status == 200:
                        body = response.read()
                        try:
                            return json.loads(body) if body.strip() else {}
                        except json.JSONDecodeError:
                            return {}
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(1.0)
        raise CheckError(f"{self.name} not healthy after {timeout:.0f} s:\n{tail(self.log)}")

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise CheckError(
                f"{self.name} {path} answered {exc.code}: {exc.read()[:2000].decode(errors='replace')}"
            ) from exc

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
            except ProcessLookupError:
                pass
        # Workers left behind in the group after the parent exited.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# --------------------------------------------------------------------------- comparison


def compare_windows(
    other: pd.DataFrame, kedro: pd.DataFrame, prob_columns: list[str], tolerance: float
) -> tuple[bool, str]:
    if len(other) != len(kedro):
        return False, f"{len(other)} windows vs kedro {len(kedro)}"
    missing = [
        c
        for c in ["window_start_ms", "window_end_ms", "activity", "low_confidence"] + prob_columns
        if c not in other.columns
    ]
    if missing:
        return False, f"response lacks {missing}"
    checks = {
        "window times identical": np.array_equal(
            other["window_start_ms"].to_numpy(np.float64),
            kedro["window_start_ms"].to_numpy(np.float64),
        )
        and np.array_equal(
            other["window_end_ms"].to_numpy(np.float64),
            kedro["window_end_ms"].to_numpy(np.float64),
        ),
        "activities identical": np.array_equal(
            other["activity"].to_numpy(str), kedro["activity"].to_numpy(str)
        ),
        "low_confidence identical": np.array_equal(
            other["low_confidence"].to_numpy(bool), kedro["low_confidence"].to_numpy(bool)
        ),
    }
    diff = float(
        np.max(
            np.abs(
                other[prob_columns].to_numpy(np.float64) - kedro[prob_columns].to_numpy(np.float64)
            ),
            initial=0.0,
        )
    )
    ok = all(checks.values()) and diff < tolerance
    parts = [f"{len(other)} windows (kedro {len(kedro)})"]
    parts += [k if v else k.replace("identical", "DIFFER") for k, v in checks.items()]
    parts.append(f"max |p diff| {diff:.1e}" + ("" if diff < tolerance else f" >= {tolerance:g}"))
    return ok, "; ".join(parts)


def compare_summary(
    summary: dict[str, Any] | None, kedro: pd.DataFrame, recording_id: str, tolerance: float
) -> tuple[bool, str]:
    rows = kedro[kedro["recording_id"].astype(str) == recording_id]
    if summary is None or len(rows) != 1:
        return False, f"summary missing (API: {summary is not None}, kedro rows: {len(rows)})"
    expected = rows.iloc[0].to_dict()
    problems, diff = [], 0.0
    for column, value in expected.items():
        if column not in summary:
            problems.append(f"{column} missing")
            continue
        got = summary[column]
        missing_expected = (
            value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
        )
        if missing_expected or got is None:
            if not (missing_expected and got is None):
                problems.append(f"{column} {got!r} vs {value!r}")
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
            value, (bool, np.bool_)
        ):
            delta = abs(float(got) - float(value))
            diff = max(diff, delta)
            if not delta < tolerance:
                problems.append(f"{column} {got!r} vs {value!r}")
        elif str(got) != str(value):
            problems.append(f"{column} {got!r} vs {value!r}")
    text = f"summary max |diff| {diff:.1e}"
    return not problems, text + (f", differs: {', '.join(problems)}" if problems else "")


def api_windows(response: dict[str, Any], classes: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "window_start_ms": w["window_start_ms"],
                "window_end_ms": w["window_end_ms"],
                "activity": w["activity"],
                "confidence": w["confidence"],
                "low_confidence": w["low_confidence"],
            }
            | {f"p_{c}": w["probabilities"].get(c, np.nan) for c in classes}
            for w in response["windows"]
        ]
    )


def model_version(model_uri: str, tracking_uri: str) -> str:
    """``version N (run ...)`` of a registry URI, for the report; the URI itself otherwise."""
    try:
        from mlflow.tracking import MlflowClient

        from har_mlops.serving.loading import _MODELS_URI

        match = _MODELS_URI.match(model_uri)
        if not match:
            return model_uri
        client = MlflowClient(tracking_uri=tracking_uri)
        if match["alias"]:
            version = client.get_model_version_by_alias(match["name"], match["alias"])
        else:
            version = client.get_model_version(match["name"], match["version"])
        return f"{model_uri} = version {version.version} (run {version.run_id})"
    except Exception as exc:  # noqa: BLE001  (only informative; the servers will fail loudly)
        raise CheckError(f"Cannot resolve {model_uri} in {tracking_uri}: {exc}") from exc


# --------------------------------------------------------------------------- main


def payloads(
    name: str, table: pd.DataFrame, units: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The /invocations (mlflow) and /predict (API) bodies of one sample table."""
    invocations = {
        "dataframe_split": {
            "columns": list(table.columns),
            "data": table.to_numpy(np.float64).tolist(),
        },
        "params": units,
    }
    predict = {"recording_id": name, **units} | {
        c: table[c].to_numpy(np.float64).tolist() for c in table.columns
    }
    return invocations, predict


def check_configuration(args: argparse.Namespace, loader: Any, env: str, project: Path) -> str:
    """The tracking URI all three use, once the kedro run is known to load ``--model-uri``."""
    bundle = loader["catalog"].get("model_bundle", {})
    if bundle.get("source") != "registry" or bundle.get("model_uri") != args.model_uri:
        raise CheckError(f"The kedro run would not load {args.model_uri}: model_bundle {bundle}")
    kedro_tracking = loader["mlflow"]["server"]["mlflow_tracking_uri"]
    tracking_uri = args.tracking_uri or kedro_tracking
    if not same_tracking_uri(tracking_uri, kedro_tracking, project):
        raise CheckError(
            f"--tracking-uri {tracking_uri} differs from {kedro_tracking}, which the kedro run "
            f"(env {env}, mlflow.yml) uses: pass the matching --env"
        )
    if tracking_uri.startswith("sqlite:///"):
        database = project / tracking_uri[len("sqlite:///") :]
        if not database.is_file():
            raise CheckError(f"No MLflow database {database}: run `kedro run` first")
    return tracking_uri


def check(args: argparse.Namespace, workdir: Path) -> bool:
    project = Path.cwd()
    settings = bootstrap(project)
    conf_source, env = run_conf(project, settings, args.env, workdir)
    export_dir = workdir / "export"
    runtime_params = {"inference_dir": str(export_dir), "model_uri": args.model_uri}
    loader = config_loader(settings, conf_source, env, runtime_params)

    tracking_uri = check_configuration(args, loader, env, project)
    raw_source = loader["parameters"]["inference"]["raw_source"]
    units = {k: str(raw_source[k]) for k in ("accelerometer_unit", "gyroscope_unit")}
    print(f"model: {model_version(args.model_uri, tracking_uri)}; tracking {tracking_uri}")

    name, table = build_export(project / args.recording, export_dir)
    print(f"recording {name}: {len(table)} samples, units {units}", flush=True)

    server_env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    invocations, predict = payloads(name, table, units)
    api_env = {
        **server_env,
        "HAR_MODEL_URI": args.model_uri,
        "HAR_TRACKING_URI": tracking_uri,
        "HAR_MAX_BODY_BYTES": str(max(8 * 1024 * 1024, 2 * len(json.dumps(predict)))),
        # kedro repairs unsorted/duplicated timestamps; compare the same preprocessing.
        "HAR_REJECT_REPAIRED": "false",
    }
    servers: list[Server] = []
    try:
        servers.append(
            Server(
                "mlflow models serve",
                [
                    sys.executable,
                    "-m",
                    "mlflow",
                    "models",
                    "serve",
                    "-m",
                    args.model_uri,
                    "--env-manager",
                    "local",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(free_port()),
                ],
                server_env,
                workdir / "mlflow_serve.log",
                project,
            )
        )
        servers.append(
            Server(
                "FastAPI /predict",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "har_mlops.serving.app:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(free_port()),
                ],
                api_env,
                workdir / "api.log",
                project,
            )
        )
        # The servers load their model while the pipeline runs.
        outputs = output_files(settings, loader["catalog"])
        kedro_windows, kedro_summaries = run_kedro(
            project, conf_source, env, runtime_params, settings, outputs, workdir
        )
        mlflow_server, api_server = servers
        mlflow_server.wait_healthy("/ping", args.startup_timeout)
        health = api_server.wait_healthy("/health", args.startup_timeout)
        source = health.get("model", {})
        if source.get("kind") != "registry" or source.get("uri") != args.model_uri:
            raise CheckError(f"The API did not load {args.model_uri} but {source}")
        served = mlflow_server.post("/invocations", invocations)
        api = api_server.post("/predict", predict)
    finally:
        for server in servers:
            server.stop()

    kedro_windows = kedro_windows[kedro_windows["recording_id"].astype(str) == name]
    kedro_windows = kedro_windows.reset_index(drop=True)
    prob_columns = [c for c in kedro_windows.columns if c.startswith("p_")]
    classes = [c[2:] for c in prob_columns]
    ok_all = True
    for label, frame, summary in (
        ("mlflow models serve", pd.DataFrame(served["predictions"]), None),
        ("FastAPI /predict", api_windows(api, classes), api.get("summary")),
    ):
        ok, text = compare_windows(frame, kedro_windows, prob_columns, args.tolerance)
        if label.startswith("FastAPI"):
            summary_ok, summary_text = compare_summary(
                summary, kedro_summaries, name, args.tolerance
            )
            ok, text = ok and summary_ok, f"{text}; {summary_text}"
        ok_all &= ok
        print(f"{label}: {'OK' if ok else 'MISMATCH'}: {text}", flush=True)
    return ok_all


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="check_serving_"))
    try:
        ok = check(args, workdir)
    except CheckError as exc:
        print(f"check_serving: cannot check: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep_logs:
            print(f"logs and temporary files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print("check_serving: " + ("all identical" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
