"""`bench demo` as a person uses it: a real `bench demo` process with `grabcut-opencv` on the
bundled demo set and `--record`, headless Chromium (network cut off, as in the report test)
doing real mouse clicks and a key press on the page, then `bench run --click-model
replay:<recording>` in a fresh process must store the IoU the page showed.

Set ISEG_BENCH_DEMO_SCREENSHOT=docs/demo.png to write the README's screenshot from this run.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from test_report_browser import DevTools, find_chromium, open_page

from bench import protocol
from bench.datasets import list_samples

SAMPLE_ID = "106024"  # first entry of the demo set: the page opens on it


@pytest.fixture(scope="module")
def chromium_path() -> str:
    executable = find_chromium()
    if executable is None:
        pytest.skip(
            "Chromium is not installed (Debian: apt-get update && apt-get install -y chromium; "
            "or set CHROMIUM=/path/to/chrome)"
        )
    return executable


class LocalDevTools(DevTools):
    """The report test's DevTools client, launched with the network cut off except for
    loopback: every host name resolves to nothing and any other address goes to a dead proxy
    (Chromium never proxies 127.0.0.1), so only the demo server itself is reachable."""

    def __init__(self, executable: str, profile_dir: Path):
        original = subprocess.Popen

        def popen(args, **kwargs):
            args = [
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
                if a.startswith("--host-resolver-rules=")
                else a
                for a in args
            ]
            return original(args, **kwargs)

        subprocess.Popen = popen
        try:
            super().__init__(executable, profile_dir)
        finally:
            subprocess.Popen = original


def start_demo(record: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`bench demo` on a free port (--port 0); returns the process and the URL it printed."""
    args = [sys.executable, "-m", "bench", "demo", "--model", "grabcut-opencv", "--datasets",
            "demo", "--port", "0", "--record", str(record)]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log.open("w"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline().decode()
            if line.startswith("open http://"):
                return proc, line.split()[1]
            if not line and proc.poll() is not None:
                break
    proc.kill()
    raise AssertionError(f"bench demo did not print its URL:\n{log.read_text()}")


def evaluate(devtools: DevTools, sid: str, expression: str) -> Any:
    result = devtools.call(
        "Runtime.evaluate",
        {"expression": expression, "returnByValue": True, "awaitPromise": True},
        session=sid,
    )
    if "exceptionDetails" in result:
        raise AssertionError(f"{expression}: {result['exceptionDetails']}")
    return result["result"].get("value")


def wait_until(devtools: DevTools, sid: str, expression: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not evaluate(devtools, sid, expression):
        if time.monotonic() > deadline:
            state = evaluate(devtools, sid, "JSON.stringify({...document.body.dataset, "
                             "status: document.getElementById('status').textContent})")  # fmt: skip
            raise AssertionError(f"timed out waiting for {expression}; page state {state}")
        time.sleep(0.05)


def mouse_click(devtools: DevTools, sid: str, x: float, y: float, button: str) -> None:
    """A real click: move, press, release, as the browser gets them from a mouse."""
    buttons = {"left": 1, "right": 2}[button]
    devtools.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y}, session=sid)
    for kind in ("mousePressed", "mouseReleased"):
        devtools.call(
            "Input.dispatchMouseEvent",
            {"type": kind, "x": x, "y": y, "button": button, "buttons": buttons, "clickCount": 1},
            session=sid,
        )


def press_key(devtools: DevTools, sid: str, key: str, code: str, key_code: int) -> None:
    base = {"key": key, "code": code, "windowsVirtualKeyCode": key_code}
    devtools.call("Input.dispatchKeyEvent", {"type": "keyDown", "text": key, **base}, session=sid)
    devtools.call("Input.dispatchKeyEvent", {"type": "keyUp", **base}, session=sid)


def canvas_pixels(devtools: DevTools, sid: str) -> np.ndarray:
    url = evaluate(devtools, sid, "document.getElementById('canvas').toDataURL('image/png')")
    data = base64.b64decode(url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def screenshot(devtools: DevTools, sid: str) -> tuple[bytes, np.ndarray]:
    png = base64.b64decode(
        devtools.call("Page.captureScreenshot", {"format": "png"}, session=sid)["data"]
    )
    return png, cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def planned_clicks(gt: np.ndarray) -> list[tuple[int, int, str]]:
    """Where a careful person would click: the object's centre (left), the middle of the
    background (right), then another part of the object far from the first click (left)."""
    first = protocol.next_click(gt, np.zeros(gt.shape, bool))
    background = protocol.next_click(gt, gt != -1)  # all-object prediction: largest FP
    inside = ndimage.distance_transform_edt(gt == 1) >= 6
    yy, xx = np.nonzero(inside)
    far = np.argmax((yy - first.y) ** 2 + (xx - first.x) ** 2)
    assert first.positive and not background.positive
    return [(first.y, first.x, "left"), (background.y, background.x, "right"),
            (int(yy[far]), int(xx[far]), "left")]  # fmt: skip


def page_problems(events: list[dict[str, Any]], origin: str) -> list[str]:
    """Console errors, uncaught exceptions, error log entries, requests to anything but the
    demo server itself."""
    problems = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            problems.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Runtime.exceptionThrown":
            problems.append(f"exception: {params['exceptionDetails']}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            problems.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith((origin, "data:", "about:")):
                problems.append(f"non-local request: {url}")
    return problems


@pytest.fixture(scope="module")
def browser_session(chromium_path, tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("demo_browser")
    record = root / "clicks.jsonl"
    gt = next(s for ref in list_samples("demo") for s in ref.load() if s.id == SAMPLE_ID).gt
    proc, url = start_demo(record, root / "server.log")
    devtools = LocalDevTools(chromium_path, root / "profile")
    out: dict[str, Any] = {"record": record, "url": url, "gt": gt}
    try:
        sid = open_page(devtools, url)
        wait_until(devtools, sid, "document.body.dataset.ready === '1'")
        out["size"] = evaluate(
            devtools,
            sid,
            "[document.getElementById('canvas').width, document.getElementById('canvas').height]",
        )
        rect = evaluate(
            devtools,
            sid,
            "JSON.stringify(document.getElementById('canvas').getBoundingClientRect())",
        )
        rect = json.loads(rect)
        out["layout"] = devtools.call("Page.getLayoutMetrics", session=sid)["cssContentSize"]
        _, out["shot_before"] = screenshot(devtools, sid)
        canvas_before = canvas_pixels(devtools, sid)
        width, height = out["size"]
        out["planned"] = planned_clicks(gt)
        out["ious"] = []
        for k, (y, x, button) in enumerate(out["planned"], start=1):
            mouse_click(
                devtools,
                sid,
                rect["x"] + (x + 0.5) * rect["width"] / width,
                rect["y"] + (y + 0.5) * rect["height"] / height,
                button,
            )
            wait_until(devtools, sid, f"document.body.dataset.clicks === '{k}' && "
                       "document.body.dataset.busy === '0'")  # fmt: skip
            out["ious"].append(
                evaluate(devtools, sid, "document.getElementById('iou').dataset.iou")
            )
            if k == 1:
                out["canvas_changed"] = int(
                    (
                        np.abs(canvas_pixels(devtools, sid).astype(int) - canvas_before).sum(2) > 30
                    ).sum()
                )
        out["shown_text"] = evaluate(devtools, sid, "document.getElementById('iou').textContent")
        out["png"], out["shot"] = screenshot(devtools, sid)
        press_key(devtools, sid, "z", "KeyZ", 90)  # undo the third click
        wait_until(devtools, sid, "document.body.dataset.clicks === '2' && "
                   "document.body.dataset.busy === '0'")  # fmt: skip
        out["iou_after_undo"] = evaluate(
            devtools, sid, "document.getElementById('iou').dataset.iou"
        )
        out["status"] = evaluate(devtools, sid, "document.getElementById('status').textContent")
        origin = url.rstrip("/") + "/"
        out["problems"] = page_problems(devtools.events, origin)
    finally:
        devtools.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    out["server_log"] = (root / "server.log").read_text()
    target = os.environ.get("ISEG_BENCH_DEMO_SCREENSHOT")
    if target:
        save_small_png(out["png"], Path(target))
    return out


def save_small_png(png: bytes, path: Path) -> None:
    """The screenshot with a 256-colour palette (octree keeps the click colours): ~150 KB."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    palette = image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    palette.save(path, optimize=True)


@pytest.mark.slow
def test_real_clicks_segment_record_and_render_without_errors(browser_session):
    s = browser_session
    assert s["problems"] == [], s["problems"]
    assert s["status"] == "" and "Traceback" not in s["server_log"], s["server_log"]
    assert s["size"] == [481, 321]
    assert s["layout"]["width"] <= 1366 and s["layout"]["height"] <= 768  # fits a laptop screen
    lines = [json.loads(line) for line in s["record"].read_text().splitlines()]
    assert [line["event"] for line in lines] == ["click", "click", "click", "undo"]
    clicks = [(line["y"], line["x"], line["positive"]) for line in lines[:3]]
    # Each mouse click landed on the image pixel aimed at, with its button's polarity.
    assert clicks == [(y, x, button == "left") for y, x, button in s["planned"]]
    assert [line["order"] for line in lines[:3]] == [1, 2, 3] and lines[3]["n_clicks"] == 2
    assert all(line["dt_s"] > 0 for line in lines[:3])
    assert all(line["model"] == "grabcut-opencv" for line in lines)
    # The IoU shown is the one recorded, rounded to four decimals on screen.
    assert [float(v) for v in s["ious"]] == [line["iou"] for line in lines[:3]]
    assert s["shown_text"] == f"{lines[2]['iou']:.4f}"
    assert float(s["iou_after_undo"]) == lines[1]["iou"]
    # The overlay appeared after the first click (far more than the click marker changed) ...
    assert s["canvas_changed"] > 2000
    # ... and is visible in the screenshot: many pixels turned towards the mask's blue.
    shot, before = s["shot"].astype(int), s["shot_before"].astype(int)
    assert shot.shape == (768, 1366, 3) and shot.std() > 10
    bluer = (shot[..., 0] - shot[..., 2]) - (before[..., 0] - before[..., 2]) > 40
    assert bluer.sum() > 2000


@pytest.mark.slow
def test_the_iou_shown_is_the_iou_bench_run_stores_when_replaying_the_recording(
    browser_session, tmp_path
):
    s = browser_session
    out = tmp_path / "replay"
    # A fresh process, as a user runs it: `bench run` with the recording as the click model.
    result = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--model", "grabcut-opencv", "--datasets", "demo",
         "--click-model", f"replay:{s['record']}", "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = pd.read_parquet(out / "trajectories.parquet")
    rows = rows[rows.sample_id == SAMPLE_ID].sort_values("click")
    # The recording's final sequence is the first two clicks (the third was undone).
    planned = s["planned"][:2]
    assert list(zip(rows.y, rows.x, rows.positive)) == [(y, x, b == "left") for y, x, b in planned]
    assert float(rows.iou.iloc[-1]) == float(s["iou_after_undo"])
    assert [float(v) for v in rows.iou] == [float(v) for v in s["ious"][:2]]
    assert set(pd.read_parquet(out / "trajectories.parquet").sample_id) == {SAMPLE_ID}
