"""`bench demo`'s HTTP API through FastAPI's test client: every bad request is a clear 4xx
JSON error, a failing model a 5xx JSON error, and the server answers the next request; the
recording is the documented JSONL, flushed per click, and replays to what the page showed.

The model is the deterministic golden predictor (`tests/plugins/shifted_reveal.py`), which
feeds its previous output back in like the real networks, so the tests also pin that a mask
shown after an undo or a detour to another image is the one a run of the same clicks gives.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import uvicorn
from click.testing import CliRunner
from fastapi.testclient import TestClient

from bench import protocol
from bench.adapters import make_predictor, resolve_model
from bench.cli import main as bench_main
from bench.clicks.replay import read_recording
from bench.datasets import list_samples
from bench.sample import Click, Sample
from bench.web.app import create_app, mask_counts
from bench.web.catalog import Catalog, dataset_entries, folder_entries
from bench.web.recording import Recorder
from bench.web.session import ModelSession

PLUGIN = f"{Path(__file__).parent / 'plugins' / 'shifted_reveal.py'}:make_predictor"
MODEL = "shifted-reveal"
FIRST = {"item": 0, "instance": 0, "sample_id": "106024"}  # 321 x 481
RECORD_FIELDS = {"v", "event", "time", "session", "model", "dataset", "sample_id", "height",
                 "width"}  # fmt: skip
CLICK_FIELDS = RECORD_FIELDS | {"order", "y", "x", "positive", "dt_s", "iou", "model_s"}


@pytest.fixture(scope="module")
def demo() -> dict[str, Sample]:
    return {s.id: s for ref in list_samples("demo") for s in ref.load()}


def plugin():
    return make_predictor(resolve_model(PLUGIN))


class Failing:
    """Wraps a predictor; raises, or returns NaN, when `when(clicks)` says so."""

    oracle = True  # the shifted-reveal fake inside reads sample.gt

    def __init__(self, inner, when, nan: bool = False):
        self.inner, self.when, self.nan = inner, when, nan

    def start(self, sample):
        self.inner.start(sample)

    def predict(self, clicks):
        if self.when(clicks):
            if self.nan:
                return np.full(self.inner.handle.obj.shape, np.nan, dtype=np.float32)
            raise RuntimeError(f"boom at click {len(clicks)}")
        return self.inner.predict(clicks)


def make_client(predictor=None, record: Path | None = None, entries=None) -> TestClient:
    catalog = Catalog(entries if entries is not None else dataset_entries(["demo"], None))
    recorder = Recorder(record, MODEL) if record is not None else None
    session = ModelSession(predictor or plugin(), MODEL)
    app = create_app(catalog, session, recorder, allowed_hosts=("testserver",))
    return TestClient(app)


def reference_ious(sample: Sample, clicks: list[Click]) -> list[float]:
    """IoU after each click of a fresh predictor fed the clicks in order, as `bench run` does."""
    predictor = plugin()
    predictor.start(sample)
    return [
        float(protocol.iou(sample.gt, predictor.predict(clicks[:k]) > protocol.PRED_THR))
        for k in range(1, len(clicks) + 1)
    ]


def as_json(clicks: list[Click]) -> list[dict]:
    return [{"y": c.y, "x": c.x, "positive": c.positive} for c in clicks]


def predict(client: TestClient, clicks: list[Click], where=FIRST, **extra):
    return client.post("/api/predict", json={**where, "clicks": as_json(clicks), **extra})


def assert_error(response, status: int, *fragments: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    for fragment in fragments:
        assert fragment in message, message
    return message


def assert_still_answers(client: TestClient, demo) -> None:
    response = predict(client, [Click(160, 240, True)])
    assert response.status_code == 200, response.text
    assert response.json()["iou"] == reference_ious(demo["106024"], [Click(160, 240, True)])[0]


CLICKS = [Click(160, 240, True), Click(20, 20, False), Click(200, 300, True)]


def test_page_and_assets_are_local_and_the_image_is_the_sample(demo):
    with make_client() as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for ref in ("static/demo.js", "static/demo.css"):
            assert ref in page.text
            asset = client.get("/" + ref)
            assert asset.status_code == 200 and len(asset.content) > 1000
            assert "http://" not in asset.text and "https://" not in asset.text
        assert "http://" not in page.text and "https://" not in page.text
        info = client.get("/api/info").json()
        assert info == {"model": MODEL, "entries": 4, "recording": None, "max_clicks": 1000}
        item = client.get("/api/items/2").json()
        assert item["instances"] == [{"sample_id": "person3", "height": 600, "width": 450}]
        jpeg = client.get("/api/items/2/0/image")
        assert jpeg.headers["content-type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(jpeg.content, np.uint8), cv2.IMREAD_COLOR)
        rgb = demo["person3"].image
        assert image.shape == rgb.shape
        assert np.abs(image[..., ::-1].astype(int) - rgb).mean() < 4  # JPEG of the same pixels


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("get", "/api/items/..%2F..%2Fpyproject.toml/0/image", None, 404),
        ("get", "/api/items/0/..%2F..%2F..%2Fpyproject.toml/image", None, 404),
        ("get", "/static/..%2F..%2F..%2Fpyproject.toml", None, 404),
        ("get", "/static/../../../pyproject.toml", None, 404),
        ("get", "/static/%2e%2e/%2e%2e/%2e%2e/pyproject.toml", None, 404),
        ("get", "/api/items/4", None, 404),
        ("get", "/api/items/-1/0/image", None, 404),
        ("get", "/api/items/0/1/image", None, 404),
        ("post", "/api/predict", {**FIRST, "sample_id": "../../../pyproject.toml"}, 409),
        ("post", "/api/predict", {**FIRST, "item": "../pyproject.toml"}, 422),
        ("post", "/api/event", {**FIRST, "sample_id": "/etc/passwd"}, 409),
    ],
)
def test_ids_and_paths_from_requests_never_reach_the_filesystem(
    tmp_path, demo, method, url, body, status
):
    record = tmp_path / "clicks.jsonl"
    with make_client(record=record) as client:
        if body is not None:
            extra = (
                {"clicks": as_json(CLICKS[:1])}
                if url.endswith("predict")
                else {"event": "reset", "n_clicks": 0}
            )
            response = client.post(url, json={**body, **extra})
        else:
            response = getattr(client, method)(url)
        message = assert_error(response, status)
        assert "[build-system]" not in response.text and "root:" not in response.text
        if status == 409:
            assert "is '106024', not" in message and "reload the page" in message
        assert record.read_text() == ""  # nothing recorded for a refused request
        assert_still_answers(client, demo)


def test_a_10_mb_body_is_refused_and_the_server_answers_on(demo):
    body = b'{"clicks": [' + b" " * (10 << 20) + b"]}"
    with make_client() as client:
        response = client.post(
            "/api/predict", content=body, headers={"content-type": "application/json"}
        )
        assert_error(response, 413, f"{len(body)} bytes exceeds the 262144 byte limit")
        # Without Content-Length (chunked upload) the limit applies while reading.
        chunks = (body[i : i + (1 << 20)] for i in range(0, len(body), 1 << 20))
        response = client.post(
            "/api/predict", content=chunks, headers={"content-type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "exceeds the 262144 byte limit")
        assert_still_answers(client, demo)


@pytest.mark.parametrize(
    ("click", "number"),
    [
        (Click(-1, 10, True), 2),
        (Click(321, 10, True), 2),
        (Click(10, 481, False), 2),
        (Click(10, -5, True), 2),
    ],  # fmt: skip
)
def test_clicks_outside_the_image_are_a_clear_4xx(tmp_path, demo, click, number):
    record = tmp_path / "clicks.jsonl"
    with make_client(record=record) as client:
        assert predict(client, CLICKS[:1]).status_code == 200
        response = predict(client, [CLICKS[0], click])
        assert_error(
            response,
            422,
            f"click {number} at (y={click.y}, x={click.x}) is outside the 321x481 image",
            "y in 0..320, x in 0..480",
        )
        assert len(record.read_text().splitlines()) == 1  # only the valid first click
        assert_still_answers(client, demo)


@pytest.mark.parametrize(
    ("content", "content_type", "status", "fragment"),
    [
        (b"{not json", "application/json", 422, "invalid request: Invalid JSON"),
        (json.dumps({**FIRST, "clicks": []}), "application/json", 422, "clicks: List should"),
        (json.dumps({**FIRST, "clicks": [{"y": 1.5, "x": 2, "positive": True}]}),
         "application/json", 422, "clicks.0.y: Input should be a valid integer"),
        (json.dumps({**FIRST, "clicks": [{"y": 1, "x": 2, "positive": "yes"}]}),
         "application/json", 422, "clicks.0.positive: Input should be a valid boolean"),
        (json.dumps({**FIRST, "clicks": [{"y": 1, "x": 2, "positive": True}], "path": "x"}),
         "application/json", 422, "path: Extra inputs are not permitted"),
        (json.dumps({**FIRST, "clicks": [{"y": 1, "x": 2, "positive": True}], "dt_s": -1}),
         "application/json", 422, "dt_s: Input should be greater than or equal to 0"),
        (json.dumps({**FIRST, "clicks": [{"y": 1, "x": 2, "positive": True}]}),
         "text/plain", 415, "expected Content-Type application/json"),
    ],
)  # fmt: skip
def test_malformed_bodies_are_a_clear_4xx(demo, content, content_type, status, fragment):
    with make_client() as client:
        response = client.post(
            "/api/predict", content=content, headers={"content-type": content_type}
        )
        assert_error(response, status, fragment)
        assert_still_answers(client, demo)


def test_a_foreign_host_header_is_refused(demo):
    with make_client() as client:
        assert_error(client.get("/", headers={"host": "attacker.example"}), 400, "not served")
        assert_still_answers(client, demo)


@pytest.mark.parametrize("nan", [False, True])
def test_a_failing_model_is_a_5xx_and_the_server_answers_on(tmp_path, demo, nan):
    record = tmp_path / "clicks.jsonl"
    predictor = Failing(plugin(), lambda clicks: len(clicks) == 2 and clicks[-1].y == 20, nan)
    with make_client(predictor, record) as client:
        assert predict(client, CLICKS[:1]).status_code == 200
        reason = "predictor returned" if nan else "RuntimeError: boom at click 2"
        assert_error(
            predict(client, CLICKS[:2]),
            500,
            f"model {MODEL} failed on demo/106024 at click 2: {reason}",
        )
        # The failed click is not recorded; the next one continues the shown sequence and
        # gets the mask a run of those clicks gets (the predictor is restarted and caught up).
        other = [CLICKS[0], Click(30, 30, False)]
        response = predict(client, other)
        assert response.status_code == 200, response.text
        assert response.json()["iou"] == reference_ious(demo["106024"], other)[1]
        sequences, _ = read_recording(record)
        assert sequences[("demo", "106024")] == other


def test_masks_after_undo_and_detours_equal_a_run_of_the_same_clicks(tmp_path, demo):
    record = tmp_path / "clicks.jsonl"
    sample = demo["106024"]
    with make_client(record=record) as client:
        for k in (1, 2):
            assert predict(client, CLICKS[:k]).status_code == 200
        # Detour: another image, then back for the third click.
        teddy = {"item": 3, "instance": 0, "sample_id": "teddy"}
        assert predict(client, [Click(200, 140, True)], where=teddy).status_code == 200
        third = predict(client, CLICKS).json()
        assert third["iou"] == reference_ious(sample, CLICKS)[2]
        # Undo the third click and click elsewhere: the mask is that of the new sequence.
        undo = client.post("/api/event", json={**FIRST, "event": "undo", "n_clicks": 2})
        assert undo.json() == {"recorded": True}
        redo = [*CLICKS[:2], Click(250, 200, True)]
        response = predict(client, redo).json()
        assert response["iou"] == reference_ious(sample, redo)[2]
        # The mask is sent as run lengths that decode to the binarised prediction.
        predictor = plugin()
        predictor.start(sample)
        for k in range(1, 4):
            expected = predictor.predict(redo[:k]) > protocol.PRED_THR
        assert response["mask"]["counts"] == mask_counts(expected)
        assert response["area"] == int(expected.sum())
        decoded = np.repeat(
            np.arange(len(response["mask"]["counts"])) % 2, response["mask"]["counts"]
        )
        assert np.array_equal(decoded.reshape(expected.shape).astype(bool), expected)


def test_the_recording_is_the_documented_jsonl_flushed_per_click(tmp_path, demo):
    record = tmp_path / "clicks.jsonl"
    sample = demo["106024"]
    with make_client(record=record) as client:
        responses = []
        for k in (1, 2, 3):
            responses.append(predict(client, CLICKS[:k], dt_s=0.25 * k).json())
            # Flushed: the line is in the file while the server still runs.
            lines = [json.loads(line) for line in record.read_text().splitlines()]
            assert len(lines) == k
        client.post("/api/event", json={**FIRST, "event": "undo", "n_clicks": 2})
        client.post("/api/event", json={**FIRST, "event": "reset", "n_clicks": 0})
        final = [Click(100, 100, True), Click(150, 300, True)]
        for k in (1, 2):
            assert predict(client, final[:k]).status_code == 200
        lines = [json.loads(line) for line in record.read_text().splitlines()]

    assert [line["event"] for line in lines] == ["click"] * 3 + ["undo", "reset"] + ["click"] * 2
    ious = reference_ious(sample, CLICKS)
    for k, line in enumerate(lines[:3], start=1):
        assert set(line) == CLICK_FIELDS
        click = CLICKS[k - 1]
        assert (line["order"], line["y"], line["x"], line["positive"]) == (k, *click)
        assert line["iou"] == ious[k - 1] == responses[k - 1]["iou"]
        assert line["dt_s"] == 0.25 * k and line["model_s"] >= 0
        assert (line["dataset"], line["sample_id"], line["height"], line["width"]) == (
            "demo", "106024", 321, 481,
        )  # fmt: skip
        assert line["v"] == 1 and line["model"] == MODEL
    assert set(lines[3]) == RECORD_FIELDS | {"n_clicks"} and lines[3]["n_clicks"] == 2
    assert lines[4]["n_clicks"] == 0
    assert len({line["session"] for line in lines}) == 1
    sequences, sizes = read_recording(record)
    assert sequences == {("demo", "106024"): final} and sizes == {("demo", "106024"): (321, 481)}


def test_out_of_step_events_are_refused_so_the_file_always_replays(tmp_path, demo):
    record = tmp_path / "clicks.jsonl"
    with make_client(record=record) as client:
        # A page left open across a restart with a new file: its second click has no first.
        assert_error(predict(client, CLICKS[:2]), 409, "not those recorded", "reload the page")
        assert predict(client, CLICKS[:1]).status_code == 200
        response = client.post("/api/event", json={**FIRST, "event": "undo", "n_clicks": 3})
        assert_error(response, 409, "undo to 3 clicks but the sequence has 1 clicks")
        # A second tab whose earlier clicks differ from the recorded ones.
        assert_error(predict(client, [Click(5, 5, True), CLICKS[1]]), 409, "another tab?")
        assert_still_answers(client, demo)
    # What the earlier session left is where a new server continues.
    with make_client(record=record) as client:
        assert predict(client, CLICKS[:2]).status_code == 200
    assert read_recording(record)[0][("demo", "106024")] == [CLICKS[0], CLICKS[1]]


def test_a_torn_last_line_is_cut_before_appending(tmp_path, demo):
    record = tmp_path / "clicks.jsonl"
    with make_client(record=record) as client:
        for k in (1, 2):
            assert predict(client, CLICKS[:k]).status_code == 200
    text = record.read_text()
    record.write_text(text + text.splitlines()[0][:30])  # a server killed mid-write
    with make_client(record=record) as client:
        assert predict(client, CLICKS).status_code == 200
    lines = record.read_text().splitlines()
    assert [json.loads(line)["order"] for line in lines] == [1, 2, 3]


def test_own_images_without_ground_truth(tmp_path, demo):
    folder = tmp_path / "mine"
    folder.mkdir()
    cv2.imwrite(str(folder / "b.png"), demo["teddy"].image[..., ::-1])
    cv2.imwrite(str(folder / "a.jpg"), demo["bool"].image[..., ::-1])
    (folder / "notes.txt").write_text("not an image")
    record = tmp_path / "clicks.jsonl"
    entries = dataset_entries(["demo"], None)[:1] + folder_entries(folder)
    with make_client(record=record, entries=entries) as client:
        assert client.get("/api/info").json()["entries"] == 3
        item = client.get("/api/items/2").json()
        assert item["dataset"] == "images" and item["has_gt"] is False
        assert item["instances"] == [{"sample_id": "b.png", "height": 398, "width": 284}]
        where = {"item": 2, "instance": 0, "sample_id": "b.png"}
        response = predict(client, [Click(200, 140, True)], where=where)
        assert response.status_code == 200 and response.json()["iou"] is None
    (line,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert (line["dataset"], line["sample_id"], line["iou"]) == ("images", "b.png", None)


def test_bench_demo_binds_loopback_prints_the_url_and_warns_for_other_hosts(tmp_path, monkeypatch):
    served = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: served.append(sockets))
    args = ["demo", "--model", PLUGIN, "--port", "0", "--record", str(tmp_path / "c.jsonl")]
    result = CliRunner().invoke(bench_main, args)
    assert result.exit_code == 0, result.output
    (sock,) = served[0]
    host, port = sock.getsockname()[:2]
    assert host == "127.0.0.1" and port > 0
    assert f"open http://127.0.0.1:{port}/" in result.output
    assert "WARNING" not in result.output
    sock.close()

    result = CliRunner().invoke(bench_main, ["demo", "--model", PLUGIN, "--host", "0.0.0.0",
                                             "--port", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "WARNING: --host 0.0.0.0 exposes the demo" in result.output
    served[-1][0].close()

    result = CliRunner().invoke(bench_main, ["demo", "--datasets", "nope", "--port", "0"])
    assert result.exit_code != 0 and "unknown dataset 'nope'" in result.output


def test_an_unexpected_bug_is_still_a_json_5xx_and_the_server_answers_on(demo, monkeypatch):
    import bench.web.app as web_app

    calls = []

    def broken_counts(mask):  # fails once, like a bug on one odd mask
        calls.append(1)
        if len(calls) == 1:
            raise ZeroDivisionError("injected")
        return mask_counts(mask)

    monkeypatch.setattr(web_app, "mask_counts", broken_counts)
    app = create_app(
        Catalog(dataset_entries(["demo"], None)),
        ModelSession(plugin(), MODEL),
        allowed_hosts=("testserver",),
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        assert_error(predict(client, CLICKS[:1]), 500, "internal error: ZeroDivisionError")
        assert_still_answers(client, demo)
