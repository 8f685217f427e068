"""Screenshots one pipeline of a running `kedro viz run`, cropped to the graph, in headless Chromium.

    kedro viz run --no-browser --port 4141 &
    python scripts/screenshot_lineage.py --pipeline training --output docs/lineage.png
    python scripts/screenshot_lineage.py --pipeline inference --expand --width 900 --height 1750 \\
        --output docs/lineage_inference.png

kedro-viz zooms a graph to fit its window, so the window size sets the zoom: a pipeline of 20-odd
nodes in the default 1400 x 1300 window is drawn at about 60 %, where every label is readable.
The sidebar, minimap and first-run hints are closed before the shot; `--expand` opens the
namespaced (modular) pipelines, which kedro-viz shows collapsed; the PNG is cropped to the
nodes and the layer names unless `--no-crop`.

Needs the Debian packages `chromium` and `chromium-driver`; works offline. Talks to Chromium
over the DevTools protocol (websocket-client, installed with MLflow).
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket

# Closes the hint banner, the feature tour, the sidebar and the minimap, then refits the graph
# to the window that is left.
TIDY = """(() => {
  let n = 0;
  for (const b of document.querySelectorAll('button')) {
    const label = b.getAttribute('aria-label') || '';
    if (/Dismiss/.test(b.textContent || '') || /^(Hide menu|Turn minimap off)$/.test(label)) {
      b.click(); n++;
    }
  }
  const close = document.querySelector('.feature-hints__close');
  if (close) { close.click(); n++; }
  setTimeout(() => document.querySelector('button[aria-label="Reset zoom"]').click(), 1500);
  return n;
})()"""
# Bounding box of the drawn nodes (and of the layer names, which sit at the left edge).
BOUNDS = """((withLayers) => {
  const boxes = [...document.querySelectorAll('.pipeline-node')];
  if (withLayers) boxes.push(...document.querySelectorAll('.pipeline-layer-name'));
  const r = boxes.map(e => e.getBoundingClientRect());
  return [Math.min(...r.map(b => b.left)), Math.min(...r.map(b => b.top)),
          Math.max(...r.map(b => b.right)), Math.max(...r.map(b => b.bottom)),
          document.querySelectorAll('.pipeline-node').length];
})(%s)"""
MARGIN = 16


def _devtools(port: int) -> websocket.WebSocket:
    for _ in range(50):
        try:
            tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
            break
        except OSError:
            time.sleep(0.3)
    page = next(t for t in tabs if t["type"] == "page")
    return websocket.create_connection(page["webSocketDebuggerUrl"], suppress_origin=True)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:4141")
    parser.add_argument("--pipeline", default="training", help="registered pipeline name")
    parser.add_argument("--output", type=Path, default=Path("docs/lineage.png"))
    parser.add_argument(
        "--expand", action="store_true", help="expand namespaced (modular) pipelines"
    )
    parser.add_argument("--width", type=int, default=1400, help="window width (sets the zoom)")
    parser.add_argument("--height", type=int, default=1300, help="window height (sets the zoom)")
    parser.add_argument("--scale", type=float, default=1.0, help="device pixels per CSS pixel")
    parser.add_argument("--no-crop", action="store_true", help="keep the whole window")
    parser.add_argument(
        "--no-layer-names", action="store_true", help="crop to the nodes only, without layers"
    )
    parser.add_argument("--port", type=int, default=9333, help="Chromium DevTools port")
    return parser.parse_args()


def main() -> None:
    """Opens the pipeline's graph, tidies the page, writes the (cropped) PNG."""
    args = _arguments()

    query = f"pid={args.pipeline}&types=nodes,datasets"
    if args.expand:
        query += "&expandAllPipelines=true"
    # Chromium may still be writing its profile as it exits; leftovers are not an error.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        chromium = subprocess.Popen(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                f"--window-size={args.width},{args.height}",
                f"--remote-debugging-port={args.port}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            socket = _devtools(args.port)
            counter = iter(range(1, 1_000_000))

            def call(method: str, **params) -> dict:
                ident = next(counter)
                socket.send(json.dumps({"id": ident, "method": method, "params": params}))
                while True:
                    message = json.loads(socket.recv())
                    if message.get("id") == ident:
                        return message

            def evaluate(expression: str):
                reply = call("Runtime.evaluate", expression=expression, returnByValue=True)
                return reply["result"]["result"].get("value")

            call("Emulation.setDeviceMetricsOverride", width=args.width, height=args.height,
                 deviceScaleFactor=args.scale, mobile=False)  # fmt: skip
            call("Page.enable")
            call("Page.navigate", url=f"{args.url}/?{query}")
            time.sleep(12)  # the graph layout is computed in the page
            evaluate(TIDY)
            time.sleep(8)  # the refit animates; the "hints can be revisited" toast fades
            params = {"format": "png"}
            if not args.no_crop:
                left, top, right, bottom, nodes = evaluate(
                    BOUNDS % ("false" if args.no_layer_names else "true")
                )
                if not nodes:
                    raise SystemExit(f"No graph drawn for pipeline {args.pipeline!r}")
                left, top = max(0, left - MARGIN), max(0, top - MARGIN)
                right = min(args.width, right + MARGIN)
                bottom = min(args.height, bottom + MARGIN)
                params["clip"] = {"x": left, "y": top, "width": right - left,
                                  "height": bottom - top, "scale": 1}  # fmt: skip
            shot = call("Page.captureScreenshot", **params)
            args.output.write_bytes(base64.b64decode(shot["result"]["data"]))
            print(f"Wrote {args.output}")
        finally:
            chromium.terminate()
            chromium.wait(timeout=10)


if __name__ == "__main__":
    main()
