"""Checks that the logged pyfunc carries what it needs: its code and its requirements.

Run from the project root:

    python scripts/check_model_environment.py [MODEL] [--tracking-uri URI]
        [--recording data/01_raw/inference/sample_exp03_user02] [--seconds 60]
        [--build-docker IMAGE]

MODEL is a ``models:/``/``runs:/`` URI or a downloaded MLflow model folder; by default the
shipped pretrained bundle (data/06_models/pretrained) is logged as the pyfunc to a throw-away
SQLite tracking store, as the training pipeline's register_model would log it. The check

1. prints the model's requirements.txt and fails when it lists the local ``har-mlops``
   package, lacks tensorflow, or the model has no ``code/har_mlops``;
2. loads the model with ``mlflow.pyfunc.load_model`` in a subprocess started with ``python -I
   -S`` (no PYTHONPATH, no user site, no ``.pth`` files, so no editable install) whose
   ``sys.path`` is the standard library plus site-packages, after checking that ``import
   har_mlops`` fails there, and predicts the first ``--seconds`` of a shipped sample recording;
3. compares those predictions with the same model's predictions in this process, and checks
   that every distribution the subprocess imported is required by the model (directly or
   through the requirements' own dependencies).

``--build-docker IMAGE`` then runs ``mlflow models build-docker`` (needs a Docker daemon and
network access to PyPI: not in CI). Exit status 0: all checks pass; 1: a check failed; 2: the
check could not run.
"""

from __future__ import annotations

import argparse
import json
import re
import site
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import pandas as pd

PRETRAINED = Path("data/06_models/pretrained")
DEFAULT_RECORDING = Path("data/01_raw/inference/sample_exp03_user02")
SI_UNITS = {"accelerometer_unit": "m/s^2", "gyroscope_unit": "rad/s"}
TOLERANCE = 1e-5
# Distributions no requirement has to name: the interpreter's tools, the model's own code, and
# optional imports the requirements try and survive without (fastapi.responses tries orjson).
ALWAYS_THERE = {"pip", "setuptools", "wheel", "har_mlops", "har-mlops", "orjson"}

# Runs in the isolated interpreter: argv = model folder, input, output, site-packages (JSON).
CHILD = r"""
import json, sys
model_dir, input_path, output_path, site_dirs = sys.argv[1:5]
sys.path.extend(json.loads(site_dirs))
try:
    import har_mlops
except ImportError:
    pass
else:
    sys.exit(f"har_mlops is importable before loading the model: {har_mlops.__file__}")
import pandas as pd
import mlflow.pyfunc
model = mlflow.pyfunc.load_model(model_dir)
table = pd.read_parquet(input_path)
windows = model.predict(table, params=json.loads(sys.argv[5]))
windows.to_parquet(output_path)
import har_mlops
print(json.dumps({
    "har_mlops": har_mlops.__file__,
    "modules": sorted({name.split(".")[0] for name in sys.modules}),
}))
"""


class CheckError(RuntimeError):
    """The check could not run (as opposed to: it ran and found a problem)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("model", nargs="?", help="models:/ or runs:/ URI, or a local MLflow model folder")
    add("--tracking-uri", help="tracking server or store of a models:/ or runs:/ URI")
    add("--recording", type=Path, default=DEFAULT_RECORDING, help="a watch export folder")
    add("--seconds", type=float, default=60.0, help="seconds of the recording to predict")
    add("--timeout", type=float, default=600.0, help="seconds for the isolated subprocess")
    add("--build-docker", metavar="IMAGE", help="also run mlflow models build-docker -n IMAGE")
    return parser.parse_args(argv)


def log_pretrained(workdir: Path) -> str:
    """Logs the shipped bundle as the pyfunc to a throw-away store; the model's URI."""
    import mlflow

    from har_mlops.serving.loading import ServingSettings, load_local
    from har_mlops.serving.pyfunc import log_activity_model

    if not PRETRAINED.is_dir():
        raise CheckError(f"No shipped bundle {PRETRAINED}: run from the project root")
    settings = ServingSettings(model_uri=None, conf_source="conf", conf_env="base")
    predictor = load_local(PRETRAINED, settings).predictor
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    mlflow.set_experiment("check_model_environment")
    with mlflow.start_run():
        info = log_activity_model(
            predictor.model,
            predictor.config,
            metadata={"preprocessing_contract": predictor.contract},
        )
    print(f"logged {PRETRAINED} as {info.model_uri}")
    return info.model_uri


def local_model(model: str, workdir: Path) -> Path:
    """The model's folder: ``model`` itself if it is one, else a download of it."""
    import mlflow

    if Path(model).is_dir():
        return Path(model).resolve()
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=model, dst_path=str(workdir)))


def requirement_names(lines: list[str]) -> list[str]:
    """Distribution names of requirement lines (comments and options skipped)."""
    names = []
    for raw in lines:
        line = raw.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.append(re.split(r"[\s\[<>=!~;@]", line, maxsplit=1)[0])
    return names


def normalise(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def check_requirements(folder: Path) -> tuple[list[str], list[str]]:
    """Prints requirements.txt; the requirement names and the problems found."""
    requirements = (folder / "requirements.txt").read_text().splitlines()
    print(f"requirements.txt ({folder}):")
    for line in requirements:
        print(f"  {line}")
    names = {normalise(name) for name in requirement_names(requirements)}
    problems = []
    if "har-mlops" in names:
        problems.append("requirements list the local har-mlops package")
    if "tensorflow" not in names:
        problems.append("requirements lack tensorflow")
    conda = (folder / "conda.yaml").read_text() if (folder / "conda.yaml").is_file() else ""
    if "har-mlops" in conda or "har_mlops" in conda:
        problems.append("conda.yaml lists the local har-mlops package")
    if not (folder / "code" / "har_mlops" / "__init__.py").is_file():
        problems.append("the model carries no code/har_mlops")
    return sorted(names), problems


def sample_table(recording: Path, seconds: float) -> pd.DataFrame:
    """The first ``seconds`` of a shipped sample recording as the pyfunc's input table."""
    from har_mlops.datasets import WearableExportDataset
    from har_mlops.serving.predictor import export_to_table

    if not recording.is_dir():
        raise CheckError(f"No recording folder {recording}")
    record = WearableExportDataset(str(recording.parent)).load()[recording.name]
    table = export_to_table(record)
    start = table["timestamp_ms"].iloc[0]
    return table[table["timestamp_ms"] < start + seconds * 1000].reset_index(drop=True)


def predict_isolated(folder: Path, table: pd.DataFrame, workdir: Path, timeout: float) -> dict:
    """Predictions of the model loaded where har_mlops is not importable, and what it imported."""
    input_path, output_path = workdir / "input.parquet", workdir / "output.parquet"
    table.to_parquet(input_path)
    site_dirs = json.dumps(site.getsitepackages())
    command = [sys.executable, "-I", "-S", "-c", CHILD, str(folder), str(input_path)]
    command += [str(output_path), site_dirs, json.dumps(SI_UNITS)]
    started = time.monotonic()
    # cwd: a folder without the checkout (``-I`` leaves cwd off sys.path anyway).
    result = subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise CheckError(f"isolated load failed ({result.returncode}):\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(
        f"isolated load + predict: {time.monotonic() - started:.0f} s; har_mlops came from "
        f"{report['har_mlops']}"
    )
    report["windows"] = pd.read_parquet(output_path)
    return report


def dependency_closure(names: list[str]) -> set[str]:
    """``names`` and every distribution they depend on (extras' dependencies left out)."""
    seen, todo = set(), [normalise(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra ==" not in requirement.replace('"', " ").replace("'", " "):
                todo.extend(normalise(n) for n in requirement_names([requirement]))
    return seen


def missing_distributions(modules: list[str], requirements: list[str]) -> list[str]:
    """Distributions behind the imported modules that no requirement brings."""
    owners = metadata.packages_distributions()
    imported = {normalise(d) for m in modules for d in owners.get(m, [])}
    return sorted(imported - dependency_closure(requirements) - ALWAYS_THERE)


def check(args: argparse.Namespace, workdir: Path) -> list[str]:
    """Runs the checks; the problems found."""
    import mlflow

    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    folder = local_model(args.model or log_pretrained(workdir), workdir)
    names, problems = check_requirements(folder)
    table = sample_table(args.recording, args.seconds)
    expected = mlflow.pyfunc.load_model(str(folder)).predict(table, params=SI_UNITS)
    isolated = predict_isolated(folder, table, workdir, args.timeout)
    if not str(isolated["har_mlops"]).startswith(str(folder)):
        problems.append(f"har_mlops was imported from {isolated['har_mlops']}, not the model")
    try:
        pd.testing.assert_frame_equal(
            isolated["windows"].reset_index(drop=True),
            expected.reset_index(drop=True),
            check_exact=False,
            atol=TOLERANCE,
            rtol=0,
        )
        print(f"predictions: {len(expected)} windows, isolated == in-process (atol {TOLERANCE})")
    except AssertionError as exc:
        problems.append(f"isolated predictions differ: {str(exc).splitlines()[0]}")
    if missing := missing_distributions(isolated["modules"], names):
        problems.append(f"imported but not required: {missing}")
    if args.build_docker and not problems:
        command = ["mlflow", "models", "build-docker", "-m", str(folder), "-n", args.build_docker]
        print(f"$ {' '.join(command)}", flush=True)
        if subprocess.call(command) != 0:
            problems.append("mlflow models build-docker failed")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 all checks pass, 1 a check failed, 2 the check could not run."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="check_model_env_") as tmp:
        try:
            problems = check(args, Path(tmp))
        except (CheckError, subprocess.TimeoutExpired) as exc:
            print(f"check_model_environment: cannot check: {exc}", file=sys.stderr)
            return 2
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("check_model_environment: " + ("FAILED" if problems else "OK"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
