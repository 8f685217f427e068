"""Where one served request's time goes: each step of ``ActivityPredictor`` and the app, timed.

    python benchmarks/serving_stages.py                  # shipped model, 10 s of samples
    python benchmarks/serving_stages.py --seconds 60 --model-path data/06_models

Runs the steps of one ``POST /predict`` in-process (parse, table, the inference pipeline's node
functions, the compiled forward pass, response) on the same request, each ``--number`` times in
``--repeat`` rounds, and prints the fastest round per step and for the whole chain
(``predict_detailed``): a floor, comparable between commits on the same machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_load import _bodies  # noqa: E402

from har_mlops.serving import app as api  # noqa: E402
from har_mlops.serving import predictor as steps  # noqa: E402
from har_mlops.serving.loading import ServingSettings, load_local  # noqa: E402
from har_mlops.serving.schema import parse_request  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="of samples in the request")
    parser.add_argument(
        "--recording", type=Path, default=ROOT / "data/01_raw/inference/sample_exp03_user02"
    )
    parser.add_argument("--model-path", default=str(ROOT / "data/06_models/pretrained"))
    parser.add_argument("--number", type=int, default=50, help="calls per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the fastest is printed")
    args = parser.parse_args()
    logging.disable(logging.INFO)

    os.chdir(ROOT)
    settings = ServingSettings(model_uri=None, model_path=args.model_path)
    loaded = load_local(args.model_path, settings)
    predictor = loaded.predictor
    body = _bodies(args.recording, args.seconds, count=3)[1]

    # Each step's inputs, computed once through the same chain the request takes.
    parsed = parse_request(body)
    table = parsed.table()
    units = {
        "accelerometer_unit": parsed.accelerometer_unit,
        "gyroscope_unit": parsed.gyroscope_unit,
    }
    raw_source = {**predictor.raw_source, **units}
    recordings = steps.samples_to_recordings(table)
    prep = (predictor.validation, predictor.resampling, predictor.windowing)
    validated, report = steps.validate_recordings(recordings, raw_source, *prep)
    resampled = steps.resample_recordings(validated, predictor.resampling)
    converted = steps.convert_units(resampled, raw_source)
    labelled = steps.assign_labels(converted, validated, raw_source)
    windows = steps.window_samples(labelled, predictor.windowing)
    scaled = steps.scale_signals(windows["signals"], predictor._scaler)
    probabilities = predictor.forward(scaled)
    contract = predictor.contract
    threshold = predictor.prediction["low_confidence_threshold"]
    table_out = steps.window_table(windows, probabilities, contract["class_names"], threshold)
    summary = steps.summarise_recordings(table_out, report, contract)

    timed = {
        "parse": lambda: parse_request(body),
        "table": parsed.table,
        "samples_to_recordings": lambda: steps.samples_to_recordings(table),
        "validate_recordings": lambda: steps.validate_recordings(recordings, raw_source, *prep),
        "resample_recordings": lambda: steps.resample_recordings(validated, predictor.resampling),
        "convert_units": lambda: steps.convert_units(resampled, raw_source),
        "assign_labels": lambda: steps.assign_labels(converted, validated, raw_source),
        "window_samples": lambda: steps.window_samples(labelled, predictor.windowing),
        "scale_signals": lambda: steps.scale_signals(windows["signals"], predictor._scaler),
        "forward": lambda: predictor.forward(scaled),
        "window_table": lambda: steps.window_table(
            windows, probabilities, contract["class_names"], threshold
        ),
        "summarise_recordings": lambda: steps.summarise_recordings(table_out, report, contract),
        "response": lambda: api._response(parsed, table_out, summary, loaded),
    }
    print(
        f"{len(table)} samples ({args.seconds:g} s), {len(windows['signals'])} windows; "
        f"fastest of {args.repeat} rounds of {args.number} calls, ms per call"
    )
    total = 0.0
    for name, step in timed.items():
        ms = min(timeit.repeat(step, number=args.number, repeat=args.repeat)) / args.number * 1e3
        total += ms
        print(f"  {name:22s} {ms:7.3f}")
    print(f"  {'sum of the steps':22s} {total:7.3f}")
    chain = min(
        timeit.repeat(
            lambda: predictor.predict_detailed(table, units),
            number=args.number,
            repeat=args.repeat,
        )
    )
    print(f"  {'predict_detailed chain':22s} {chain / args.number * 1e3:7.3f}")


if __name__ == "__main__":
    main()
