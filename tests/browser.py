"""A headless Chromium (Debian's package) driven over the DevTools protocol with websocket-client: opens a page with
the network cut off, records every request and console error, reads the page, screenshots it and prints it to PDF."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import websocket

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--remote-debugging-port=0", "--hide-scrollbars"]


class Browser:
    """One Chromium with a fresh profile and one page; use as a context manager."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        assert CHROMIUM, "no chromium on PATH"
        self.profile = Path(tempfile.mkdtemp(prefix="ablate-chromium-"))
        self.process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.socket = websocket.create_connection(self._devtools_address(), timeout=120, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.session = None
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=-1, uploadThroughput=-1)
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _devtools_address(self) -> str:
        """The browser's DevTools address, from the line Chromium prints once it listens (no waiting on the clock);
        the rest of its stderr is drained in the background so its writes never block."""
        seen = []
        for line in self.process.stderr:  # type: ignore[union-attr]
            if line.startswith("DevTools listening on "):
                threading.Thread(target=self.process.stderr.read, daemon=True).start()  # type: ignore[union-attr]
                return line.split()[-1]
            seen.append(line)
        raise RuntimeError(f"chromium did not start (exit status {self.process.wait()}): {''.join(seen[-5:])}")

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *_: object) -> None:
        self.socket.close()
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.profile, ignore_errors=True)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a DevTools method on the page (the browser before a page is attached); keep the events that arrive."""
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params,
                                     **({"sessionId": self.session} if self.session else {})}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 60) -> None:
        """Read events until `event` arrives."""
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(event)
            self.events.append(json.loads(self.socket.recv()))

    def open(self, url: str) -> None:
        """Load a page and wait for its load event."""
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def requests(self) -> list[str]:
        """Every request the page made, its own document included."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and errors the browser logged for the page."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(json.dumps(params["args"]))
            elif method == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"]["text"])
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
        return found

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression on the page."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"]["text"])
        return result["result"].get("value")

    def screenshot(self, height: int | None = None) -> bytes:
        """PNG of the page's top `height` pixels (the whole page by default) at the viewport's width."""
        width, full = self.evaluate("[document.documentElement.clientWidth, document.documentElement.scrollHeight]")
        clip = {"x": 0, "y": 0, "width": width, "height": min(height or full, full), "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)["data"])

    def pdf(self) -> bytes:
        """The page printed to PDF with its print style sheet."""
        return base64.b64decode(self.send("Page.printToPDF", preferCSSPageSize=True)["data"])


if __name__ == "__main__":  # the README's screenshot: python tests/browser.py reports/pooling/index.html docs/images/report.png 2400
    import sys

    page, out, height = Path(sys.argv[1]).resolve(), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None
    with Browser() as chromium:
        chromium.open(page.as_uri())
        assert chromium.requests() == [page.as_uri()] and not chromium.errors(), (chromium.requests(), chromium.errors())
        out.write_bytes(chromium.screenshot(height))
