"""Screenshots a running `kedro viz run` in headless Chromium, hint pop-ups dismissed.

    kedro viz run --no-browser --port 4141 &
    python scripts/screenshot_lineage.py --pipeline __default__ --output docs/lineage.png
    python scripts/screenshot_lineage.py --pipeline training --output docs/lineage_training.png

Needs the Debian packages `chromium` and `chromium-driver`; works offline. Talks to Chromium
over the DevTools protocol (websocket-client, installed with MLflow) so it can click the
kedro-viz hints away before the screenshot.
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

WIDTH, HEIGHT = 1600, 1000
# Where kedro-viz 12.5 draws the close button of its first-run hints at this window size.
HINT_CLOSE = (1527, 608)
DISMISS_BUTTONS = """(() => { let n = 0;
  for (const b of document.querySelectorAll('button, [role=button]')) {
    if (/Dismiss/.test(b.textContent || '')) { b.click(); n++; } }
  return n; })()"""


def _devtools(port: int) -> websocket.WebSocket:
    for _ in range(50):
        try:
            tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
            break
        except OSError:
            time.sleep(0.3)
    page = next(t for t in tabs if t["type"] == "page")
    return websocket.create_connection(page["webSocketDebuggerUrl"], suppress_origin=True)


def main() -> None:
    """Opens the pipeline's graph, clears the hints, writes the PNG."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:4141")
    parser.add_argument("--pipeline", default="__default__")
    parser.add_argument("--output", type=Path, default=Path("docs/lineage.png"))
    parser.add_argument("--port", type=int, default=9333, help="Chromium DevTools port")
    args = parser.parse_args()

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
                f"--window-size={WIDTH},{HEIGHT}",
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

            call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT,
                 deviceScaleFactor=1, mobile=False)  # fmt: skip
            call("Page.enable")
            call("Page.navigate", url=f"{args.url}/?pid={args.pipeline}&types=nodes,datasets")
            time.sleep(12)  # the graph layout is computed in the page
            call("Runtime.evaluate", expression=DISMISS_BUTTONS)
            x, y = HINT_CLOSE
            for kind in ("mousePressed", "mouseReleased"):
                call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
            call("Input.dispatchMouseEvent", type="mouseMoved", x=40, y=560)
            time.sleep(7)  # the "hints can be revisited" toast fades
            shot = call("Page.captureScreenshot", format="png")
            args.output.write_bytes(base64.b64decode(shot["result"]["data"]))
            print(f"Wrote {args.output}")
        finally:
            chromium.terminate()
            chromium.wait(timeout=10)


if __name__ == "__main__":
    main()
