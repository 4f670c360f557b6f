"""The report as a reader sees it: headless Chromium opens the HTML with the network cut off,
every figure must have loaded, the console must stay free of errors, and the page must
screenshot and print.

Chromium is driven over the DevTools protocol on `--remote-debugging-pipe` (file
descriptors 3 and 4, NUL-terminated JSON), so the test needs no extra Python package.
CI installs Debian's browser with `apt-get install -y chromium`.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from bench.cli import main as bench_main
from bench.reports.build import build_report

PLUGIN = f"{Path(__file__).parent / 'plugins' / 'shifted_reveal.py'}:make_predictor"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env:
        return env
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


class DevTools:
    """Minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, executable: str, profile_dir: Path):
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def child_fds() -> None:  # runs in the child: put the pipe ends on fds 3 and 4
            read_end = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        args = [
            executable,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile_dir}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            # No network: every host resolves to nothing and any proxy use fails.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            args,
            preexec_fn=child_fds,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_child], [], [], remaining)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise ConnectionError("Chromium closed the debugging pipe")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(
        self, method: str, params: dict | None = None, session: str | None = None, timeout=60.0
    ) -> dict[str, Any]:
        self._next_id += 1
        request: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            request["sessionId"] = session
        os.write(self._to_child, json.dumps(request).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            message = self._read_message(deadline)
            self.events.append(message)
            if message.get("method") == method:
                return message

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError, ConnectionError):
            self.call("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)


def open_page(devtools: DevTools, url: str) -> str:
    targets = devtools.call("Target.getTargets")["targetInfos"]
    page = next(t for t in targets if t["type"] == "page")
    session = devtools.call(
        "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
    )
    sid = session["sessionId"]
    for domain in ("Runtime", "Log", "Network", "Page"):
        devtools.call(f"{domain}.enable", session=sid)
    devtools.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False},
        session=sid,
    )
    devtools.call("Page.navigate", {"url": url}, session=sid)
    devtools.wait_for("Page.loadEventFired")
    return sid


def page_problems(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions, error log entries and any non-local request."""
    problems = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            problems.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Runtime.exceptionThrown":
            problems.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            problems.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("file:", "data:", "about:")):
                problems.append(f"network request: {url}")
    return problems


@pytest.fixture(scope="module")
def chromium() -> str:
    executable = find_chromium()
    if executable is None:
        pytest.skip(
            "Chromium is not installed (Debian: apt-get update && apt-get install -y chromium; "
            "or set CHROMIUM=/path/to/chrome)"
        )
    return executable


@pytest.fixture(scope="module")
def report_html(tmp_path_factory, data_root) -> Path:
    root = tmp_path_factory.mktemp("browser")
    runs = []
    for name, options in (("reveal", []), ("reveal_far", ["--model-option", "shift_div=8"])):
        out = root / name
        result = CliRunner().invoke(
            bench_main,
            [
                "run",
                "--model",
                PLUGIN,
                *options,
                "--datasets",
                "grabcut,demo",
                "--data-root",
                str(data_root),
                "--limit",
                "3",
                "--save-masks",
                "--reference",
                "ritm-hrnet18/cocolvis",
                "--out",
                str(out),
                "--no-progress",
            ],
        )
        assert result.exit_code == 0, result.output + repr(result.exception)
        runs.append(out)
    result = build_report(runs, root / "report.html", hist_clicks=(1, 5))
    assert len(result.figures) >= 6  # curves, two histograms, four qualitative panels
    return result.html


@pytest.mark.slow
def test_report_renders_in_headless_chromium_without_errors(chromium, report_html, tmp_path):
    devtools = DevTools(chromium, tmp_path / "profile")
    try:
        sid = open_page(devtools, report_html.as_uri())
        images = devtools.call(
            "Runtime.evaluate",
            {
                "expression": "JSON.stringify(Array.from(document.images).map("
                "i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt]))",
                "returnByValue": True,
            },
            session=sid,
        )["result"]["value"]
        layout = devtools.call("Page.getLayoutMetrics", session=sid)["cssContentSize"]
        shot = devtools.call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": 1366,
                    "height": min(layout["height"], 8000),
                    "scale": 1,
                },
            },
            session=sid,
        )
        pdf = devtools.call("Page.printToPDF", {"printBackground": True}, session=sid)
        problems = page_problems(devtools.events)
    finally:
        devtools.close()

    images = json.loads(images)
    embedded = report_html.read_text().count("<img ")
    assert len(images) == embedded >= 6
    broken = [alt for complete, width, height, alt in images if not (complete and width and height)]
    assert not broken, f"figures that did not load: {broken}"
    assert not problems, problems

    png = base64.b64decode(shot["data"])
    (tmp_path / "report.png").write_bytes(png)
    screenshot = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert screenshot.shape[1] == 1366 and screenshot.shape[0] > 2000
    assert screenshot.std() > 10  # text, tables and figures, not a blank page
    # No horizontal scrolling needed on a laptop screen for the page itself.
    assert layout["width"] <= 1366
    assert base64.b64decode(pdf["data"]).startswith(b"%PDF")
