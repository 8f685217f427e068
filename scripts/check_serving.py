"""Checks that the served model predicts exactly what the batch inference pipeline predicts.

Run from the project root after `kedro run` has registered a model:

    python scripts/check_serving.py [--model-uri models:/har_cnn_bilstm@champion]
        [--tracking-uri sqlite:///mlflow.db]
        [--recording data/01_raw/inference/sample_exp03_user02] [--env <kedro env>]

The recording becomes one sample table (`export_to_table`), also written as a watch export, so
that all three predict the very same samples: `kedro run --pipelines inference --params
inference_dir=<export>,model_uri=<uri>` in a throw-away copy of the project (conf/ and src/
copied, the tracking store linked; `--env registry`, or `--env X` with conf/registry's files
added to X), `mlflow models serve -m <uri> --env-manager local` (/invocations) and `uvicorn
har_mlops.serving.app:app` (/predict), with the units the pipeline assumes for watch exports.
Window times, activities and low_confidence flags must be identical, probabilities and the
API's summary within --tolerance. One line per server; exit status 1 on any mismatch, 2 when
the check cannot run. The project's data/ is never written; kedro-mlflow logs the run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.testing import assert_frame_equal

from har_mlops.serving import process
from har_mlops.serving.process import ServerProcess, ServerStartError

DEFAULT_RECORDING = "data/01_raw/inference/sample_exp03_user02"
REGISTRY_ENV = "registry"
EXACT = {"window_start_ms": float, "window_end_ms": float, "activity": str, "low_confidence": bool}


class CheckError(RuntimeError):
    """The check could not run (as opposed to: it ran and found a mismatch)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description="Compare mlflow models serve, the FastAPI app and `kedro run --pipelines "
        "inference` on one recording (run from the project root)."
    )
    add = parser.add_argument
    add("--model-uri", default="models:/har_cnn_bilstm@champion")
    add(
        "--tracking-uri",
        help="MLflow tracking URI of the servers; default and required value: the one in the "
        "kedro env's mlflow.yml (sqlite:///mlflow.db in base), which the kedro run uses",
    )
    add("--recording", default=DEFAULT_RECORDING, help="a watch export folder")
    add("--env", help="kedro env for parameters and mlflow.yml (default: --env registry)")
    add("--tolerance", type=float, default=1e-4, help="max |probability diff|")
    add("--startup-timeout", type=float, default=600.0, help="seconds to wait for each server")
    add("--keep-logs", action="store_true", help="print where the logs are kept")
    return parser.parse_args(argv)


def copy_project(project: Path, env: str | None, copy: Path, params: dict) -> tuple[Any, str]:
    """A throw-away project at ``copy`` whose env loads the registry model; its config, env."""
    if not (project / "pyproject.toml").is_file():
        raise CheckError(f"{project} is not a Kedro project root (no pyproject.toml)")
    # Kedro's and omegaconf's start-up notes would drown the report; the subprocesses' logs
    # are kept (--keep-logs) and shown on failure.
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning)
    from kedro.framework.startup import bootstrap_project

    source_dir = bootstrap_project(project).source_dir
    from kedro.framework.project import settings

    conf, conf_copy = project / settings.CONF_SOURCE, copy / settings.CONF_SOURCE
    env = env or REGISTRY_ENV
    if not (conf / env).is_dir():
        raise CheckError(f"No kedro env {env!r} in {conf}")
    copy.mkdir()
    shutil.copy2(project / "pyproject.toml", copy)
    # Copied, not linked: kedro wants the resolved source folder inside the project.
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(source_dir, copy / source_dir.relative_to(project.resolve()), ignore=ignore)
    # local/ holds credentials and is not read with --env: it stays where it is.
    shutil.copytree(conf, conf_copy, ignore=shutil.ignore_patterns("local"))
    for source in sorted((conf / REGISTRY_ENV).glob("*")) if env != REGISTRY_ENV else []:
        # e.g. catalog_06_models_registry.yml: still a catalog file, beside the env's own.
        shutil.copy2(source, conf_copy / env / f"{source.stem}_{REGISTRY_ENV}{source.suffix}")
    from kedro.config import OmegaConfigLoader

    args = settings.CONFIG_LOADER_ARGS
    loader = OmegaConfigLoader(str(conf_copy), env=env, runtime_params=params, **args)
    # As kedro-mlflow's hook does, so that mlflow.yml can be read.
    loader.config_patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])
    return loader, env


def absolute_uri(uri: str, project: Path) -> str:
    """``uri`` with a project-relative sqlite file or store folder made absolute."""
    if uri.startswith("sqlite:///"):
        return "sqlite:///" + str((project / uri[len("sqlite:///") :]).resolve())
    return str((project / uri).resolve()) if "://" not in uri else uri.rstrip("/")


def tracking_store(args: argparse.Namespace, loader: Any, project: Path, copy: Path) -> str:
    """The tracking URI all three use, linked into the copy; checks the run loads the model."""
    bundle = loader["catalog"].get("model_bundle", {})
    if bundle.get("source") != "registry" or bundle.get("model_uri") != args.model_uri:
        raise CheckError(f"The kedro run would not load {args.model_uri}: model_bundle {bundle}")
    kedro_uri = loader["mlflow"]["server"]["mlflow_tracking_uri"]
    tracking_uri = absolute_uri(args.tracking_uri or kedro_uri, project)
    if tracking_uri != absolute_uri(kedro_uri, project):
        raise CheckError(
            f"--tracking-uri {args.tracking_uri} differs from {kedro_uri}, which the kedro run "
            "(mlflow.yml) uses: pass the matching --env"
        )
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    if tracking_uri.startswith("sqlite:///") and not database.is_file():
        raise CheckError(f"No MLflow database {database}: run `kedro run` first")
    # The run logs where a run in the project would (artifact locations are absolute).
    store = kedro_uri.removeprefix("sqlite:///")
    if "://" not in store and not Path(store).is_absolute():
        (copy / store).parent.mkdir(parents=True, exist_ok=True)
        (copy / store).symlink_to(project.resolve() / store)
    return tracking_uri


def build_export(recording: Path, export_dir: Path) -> tuple[str, pd.DataFrame]:
    """The recording's sample table, also written as a watch export under ``export_dir``."""
    from har_mlops.datasets import WearableExportDataset
    from har_mlops.serving.predictor import export_to_table

    if not recording.is_dir():
        raise CheckError(f"No recording folder {recording}")
    name, source = recording.name, export_dir.parent / "source"
    # The dataset reads every recording of a folder: point it at this one only.
    source.mkdir()
    (source / name).symlink_to(recording.resolve(), target_is_directory=True)
    record = WearableExportDataset(str(source)).load()[name]
    if record["read_errors"] or record["accelerometer"] is None or record["gyroscope"] is None:
        raise CheckError(f"Cannot read {recording}: {record['read_errors'] or 'missing streams'}")
    table, columns = export_to_table(record), ["timestamp", "x", "y", "z"]
    streams = {
        key: table[["timestamp_ms", *(f"{p}_{a}" for a in "xyz")]].set_axis(columns, axis=1)
        for p, key in (("acc", "accelerometer"), ("gyro", "gyroscope"))
    }
    dataset = WearableExportDataset(str(export_dir))
    dataset.save({name: {**streams, "subject_id": record["subject_id"]}})
    # The servers get the very samples the pipeline reads: those of the files just written.
    return name, export_to_table(dataset.load()[name])


def run_kedro(
    copy: Path, env: str, runtime_params: dict[str, str], catalog: dict[str, Any], log: Path
) -> tuple[pd.DataFrame]:
    """Runs the inference pipeline in the copy; its per-window table (all recordings)."""
    if any("," in value for value in runtime_params.values()):
        raise CheckError(f"--params values cannot contain commas: {runtime_params}")
    command = [sys.executable, "-m", "kedro", "run", "--pipelines", "inference", "--env", env]
    command += ["--params", ",".join(f"{k}={v}" for k, v in runtime_params.items())]
    print(f"$ (in {copy}) {' '.join(command)}", flush=True)
    started = time.monotonic()
    with log.open("w") as out:
        status = subprocess.call(command, cwd=copy, stdout=out, stderr=subprocess.STDOUT)
    if status != 0:
        raise CheckError(f"kedro run failed ({status}); end of its log:\n{process.log_tail(log)}")
    print(f"kedro run finished in {time.monotonic() - started:.0f} s", flush=True)
    # Catalog paths are relative to the project the run wrote in: the copy.
    outputs = copy / dict(catalog["recording_outputs"])["path"] / "windows"
    windows = pd.read_parquet(outputs).sort_values(["recording_id", "window_start_ms"])
    windows["recording_id"] = windows["recording_id"].astype(str)
    return (windows.reset_index(drop=True),)


def start_servers(
    stack: ExitStack, model_uri: str, env: dict[str, str], workdir: Path
) -> list[ServerProcess]:
    """``mlflow models serve`` and the FastAPI app on free loopback ports, stopped by ``stack``."""
    servers = []
    for name, module, log in (
        ("mlflow models serve", ["mlflow", "models", "serve", "-m", model_uri], "mlflow.log"),
        ("FastAPI /predict", ["uvicorn", "har_mlops.serving.app:app"], "api.log"),
    ):
        port = process.free_port()
        command = [sys.executable, "-m", *module, "--host", "127.0.0.1", "--port", str(port)]
        command += ["--env-manager", "local"] if module[0] == "mlflow" else []
        print(f"$ {' '.join(command)}", flush=True)
        server = process.running_server(name, command, port, workdir / log, env=env, cwd=Path.cwd())
        servers.append(stack.enter_context(server))
    return servers


def post(server: ServerProcess, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The JSON answer of ``server`` to ``payload``; CheckError on an error status."""
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(server.url + path, json.dumps(payload).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()[:2000].decode(errors="replace")
        raise CheckError(f"{server.name} {path} answered {exc.code}: {body}") from exc


def difference(got: pd.DataFrame, expected: pd.DataFrame, **tolerance: Any) -> str | None:
    """``assert_frame_equal``'s complaint, in one line; None when the frames are equal."""
    try:
        assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True), **tolerance)
    except AssertionError as exc:
        # Without the [index]/[left]/[right] value listings: the first difference is named.
        lines = [line.strip() for line in str(exc).splitlines()]
        return "; ".join(line for line in lines if line and not line.startswith("["))
    return None


def compare(got: pd.DataFrame, expected: pd.DataFrame, tolerance: float) -> str | None:
    """Window times, activities and flags identical, numbers (probabilities) within tolerance."""
    if missing := [c for c in expected.columns if c not in got.columns]:
        return f"lacks {missing}"
    got = got[list(expected.columns)]
    try:
        # JSON null is pandas' missing value of each column's type.
        got = got.astype(expected.dtypes.to_dict())
    except (TypeError, ValueError) as exc:
        return f"does not fit the pipeline's column types: {exc}"
    exact = [c for c in EXACT if c in expected.columns]
    cast = {c: EXACT[c] for c in exact}
    return difference(got[exact].astype(cast), expected[exact].astype(cast), check_exact=True) or (
        difference(got, expected, check_exact=False, rtol=0.0, atol=tolerance)
    )


def max_diff(got: pd.DataFrame, expected: pd.DataFrame) -> float:
    """The largest absolute difference of the numeric columns both have."""
    if len(got) != len(expected):
        return np.inf
    numeric = [c for c in expected.select_dtypes("number").columns if c in got.columns]
    values = got[numeric].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    return float(np.nanmax(np.abs(values - expected[numeric].to_numpy(np.float64)), initial=0.0))


def report(name: str, kedro: tuple[pd.DataFrame, ...], served: dict, api: dict, tol: float) -> bool:
    """Prints one verdict line per server; whether both agree with the pipeline."""
    # The pipeline sums activity per local day, not per request: summaries are compared by
    # tests/serving (predictor vs summarise_recordings), windows here.
    (windows,) = (t[t["recording_id"].astype(str) == name] for t in kedro)
    probabilities = [c for c in windows.columns if c.startswith("p_")]
    windows = windows[[*EXACT, *probabilities]]
    api_windows = pd.DataFrame(
        [
            {c: w[c] for c in EXACT} | {f"p_{k}": p for k, p in w["probabilities"].items()}
            for w in api["windows"]
        ]
    )
    ok_all = True
    for label, frame in (
        ("mlflow models serve", pd.DataFrame(served["predictions"])),
        ("FastAPI /predict", api_windows),
    ):
        problems = {"windows": compare(frame, windows, tol)}
        text = f"{len(frame)} windows (kedro {len(windows)}); "
        text += "times, activities, flags identical; " if problems["windows"] is None else ""
        text += f"max |p diff| {max_diff(frame, windows):.1e}"
        problems = [f"{part} {problem}" for part, problem in problems.items() if problem]
        ok_all &= not problems
        print(f"{label}: {'MISMATCH' if problems else 'OK'}: {'; '.join([text, *problems])}")
    return ok_all


def check(args: argparse.Namespace, workdir: Path) -> bool:
    """Runs the three on one recording; whether they agree."""
    project, copy, export_dir = Path.cwd(), workdir / "project", workdir / "export"
    runtime_params = {"inference_dir": str(export_dir), "model_uri": args.model_uri}
    loader, env = copy_project(project, args.env, copy, runtime_params)
    tracking_uri = tracking_store(args, loader, project, copy)
    raw_source = loader["parameters"]["inference"]["raw_source"]
    units = {k: str(raw_source[k]) for k in ("accelerometer_unit", "gyroscope_unit")}

    name, table = build_export(project / args.recording, export_dir)
    print(f"recording {name}: {len(table)} samples, units {units}; tracking {tracking_uri}")
    samples = table.to_numpy(np.float64)
    split = {"columns": list(table.columns), "data": samples.tolist()}
    invocations = {"dataframe_split": split, "params": units}
    predict = {"recording_id": name, **units} | dict(zip(table.columns, samples.T.tolist()))
    server_env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    server_env |= {
        "HAR_MODEL_URI": args.model_uri,
        "HAR_TRACKING_URI": tracking_uri,
        "HAR_MAX_BODY_BYTES": str(max(8 * 1024 * 1024, 2 * len(json.dumps(predict)))),
        # kedro repairs unsorted/duplicated timestamps; compare the same preprocessing.
        "HAR_REJECT_REPAIRED": "false",
    }
    with ExitStack() as stack:
        mlflow_server, api_server = start_servers(stack, args.model_uri, server_env, workdir)
        # The servers load their model while the pipeline runs.
        kedro = run_kedro(copy, env, runtime_params, loader["catalog"], workdir / "kedro_run.log")
        process.wait_ready(mlflow_server, "/ping", args.startup_timeout, interval_s=1.0)
        health = json.loads(process.wait_ready(api_server, "/health", args.startup_timeout, 1.0))
        source = health.get("model", {})
        if source.get("kind") != "registry" or source.get("uri") != args.model_uri:
            raise CheckError(f"The API did not load {args.model_uri} but {source}")
        print(f"model: {args.model_uri} = version {source['version']} (run {source['run_id']})")
        served = post(mlflow_server, "/invocations", invocations)
        api = post(api_server, "/predict", predict)
    return report(name, kedro, served, api, args.tolerance)


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 all identical, 1 a mismatch, 2 the check could not run."""
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="check_serving_"))
    try:
        ok = check(args, workdir)
    except (CheckError, ServerStartError) as exc:
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
