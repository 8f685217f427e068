"""Load check of the HTTP API: uvicorn on loopback, bounded concurrent /predict requests.

    python benchmarks/serving_load.py                # 500 requests from one client, then
                                                     # 2,000 requests, 16 concurrent
    python benchmarks/serving_load.py --workers 2    # two uvicorn worker processes

Each request carries ``--seconds`` (10) of 50 Hz samples cut from a shipped sample recording
at a rotating offset. Prints p50/p95/p99 latency, throughput and the error count of each
phase: one client (the latency of a request on its own) and ``--concurrency`` clients (the
throughput, where latency is mostly waiting for the cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from har_mlops.datasets import WearableExportDataset
from har_mlops.serving.predictor import export_to_table
from har_mlops.serving.process import free_port, running_server, wait_ready

ROOT = Path(__file__).resolve().parents[1]


def _bodies(recording: Path, seconds: float, count: int) -> list[bytes]:
    """``count`` request bodies of ``seconds`` each, from consecutive stretches of a recording."""
    record = WearableExportDataset(str(recording.parent)).load()[recording.name]
    table = export_to_table(record)
    t = table["timestamp_ms"].to_numpy()
    starts = np.arange(t[0], t[-1] - seconds * 1000.0, seconds * 1000.0)
    bodies = []
    for start in starts[:count]:
        part = table[(t >= start) & (t < start + seconds * 1000.0)]
        body = {"recording_id": recording.name, "accelerometer_unit": "m/s^2"}
        body |= {"gyroscope_unit": "rad/s"}
        body |= {c: part[c].tolist() for c in table.columns}
        bodies.append(json.dumps(body).encode())
    return bodies


def _server_command(port: int, workers: int) -> list[str]:
    """uvicorn serving the app on loopback ``port`` with ``workers`` processes."""
    command = [sys.executable, "-m", "uvicorn", "har_mlops.serving.app:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return command + ["--workers", str(workers)]


async def _load(url: str, bodies: list[bytes], requests: int, concurrency: int) -> dict:
    """``requests`` POSTs to /predict from ``concurrency`` clients: latencies, errors, time."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    windows = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:

        async def worker() -> None:
            nonlocal windows
            while not queue.empty():
                i = queue.get_nowait()
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/predict", content=bodies[i % len(bodies)], headers=headers
                    )
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    key = f"HTTP {response.status_code}"
                    errors[key] = errors.get(key, 0) + 1
                else:
                    windows += len(response.json()["windows"])

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed, "windows": windows}


def _wait_all_workers(url: str, workers: int, timeout_s: float) -> None:
    """Until ``workers`` distinct processes answered /health (each compiles its own model)."""
    started, pids = time.perf_counter(), set()
    while len(pids) < workers:
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"Only {len(pids)} of {workers} workers answered in {timeout_s} s")
        # A new connection each time, so that the kernel hands it to any listening worker.
        response = httpx.get(f"{url}/health", timeout=5.0)
        if response.status_code == 200:
            pids.add(response.json()["pid"])
        time.sleep(0.1)


def _report(name: str, result: dict, requests: int, concurrency: int) -> dict[str, float]:
    """Prints one phase's figures; its throughput and p50/p95 latency."""
    latencies = np.asarray(result["latencies"]) * 1000.0
    figures = {
        "throughput": requests / result["elapsed"],
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
    }
    print(
        f"{name}: {requests} requests, {concurrency} concurrent, {result['elapsed']:.1f} s: "
        f"{figures['throughput']:.1f} requests/s, {result['windows'] / result['elapsed']:.0f} "
        f"windows/s; latency ms p50 {figures['p50']:.1f}, p95 {figures['p95']:.1f}, "
        f"p99 {np.percentile(latencies, 99):.1f}, max {latencies.max():.1f}; "
        f"errors {sum(result['errors'].values())} {result['errors'] or ''}"
    )
    return figures


def main() -> None:
    """Starts the server, runs the phases, stops it, prints the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--single-requests",
        type=int,
        default=500,
        help="requests from one client first, for the latency of a request on its own (0: skip)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="of samples per request")
    parser.add_argument(
        "--recording", type=Path, default=ROOT / "data/01_raw/inference/sample_exp03_user02"
    )
    parser.add_argument("--warmup", type=int, default=32, help="requests before measuring")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--model-path", default="data/06_models/pretrained")
    parser.add_argument("--model-uri", default=None, help="models:/... instead of --model-path")
    args = parser.parse_args()

    bodies = _bodies(args.recording, args.seconds, count=args.requests)
    port = free_port()
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    if args.model_uri:
        env["HAR_MODEL_URI"] = args.model_uri
        env.pop("HAR_MODEL_PATH", None)
    else:
        env["HAR_MODEL_PATH"] = args.model_path
    with tempfile.TemporaryDirectory(prefix="serving_load_") as logs:
        command = _server_command(port, args.workers)
        log = Path(logs) / "uvicorn.log"
        with running_server("uvicorn", command, port, log, env=env, cwd=ROOT) as server:
            started = time.perf_counter()
            wait_ready(server, "/health", timeout_s=180.0)
            ready_s = time.perf_counter() - started
            _wait_all_workers(server.url, args.workers, timeout_s=180.0)
            url = server.url
            asyncio.run(_load(url, bodies, args.warmup, min(args.concurrency, args.warmup)))
            single = None
            if args.single_requests:
                single = asyncio.run(_load(url, bodies, args.single_requests, 1))
            result = asyncio.run(_load(url, bodies, args.requests, args.concurrency))
    print(
        f"server ({args.workers} worker(s)) ready after {ready_s:.1f} s; "
        f"{len(bodies)} distinct bodies of {args.seconds:g} s"
    )
    if single is not None:
        _report("single client", single, args.single_requests, 1)
    figures = _report("load", result, args.requests, args.concurrency)
    # Little's law: with every client always waiting on a request, the mean latency is the
    # number of requests in flight over the throughput; a faster server is the only way down.
    print(
        f"queueing: {args.concurrency} in flight / {figures['throughput']:.1f} requests/s = "
        f"{1000.0 * args.concurrency / figures['throughput']:.0f} ms mean latency at this load"
    )


if __name__ == "__main__":
    main()
