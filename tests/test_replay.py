"""`--click-model replay:FILE`: recorded clicks folded per instance, replayed in order, then
stop or the official clicker; malformed files fail with the file and line number. The
end-to-end tests run `bench run` on the bundled demo set with the deterministic golden
predictor (`tests/plugins/shifted_reveal.py`), so a replay must reproduce a plain run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bench import protocol
from bench.cli import main as bench_main
from bench.clicks import ClickContext, instance_rng, make_click_model, parse_click_model
from bench.clicks.replay import RecordingError, read_recording, replay
from bench.datasets import list_samples
from bench.sample import Click, Sample
from bench.store import PROTOCOL_COLUMNS
from bench.web.recording import Recorder

PLUGIN = f"{Path(__file__).parent / 'plugins' / 'shifted_reveal.py'}:make_predictor"


@pytest.fixture(scope="module")
def demo() -> dict[str, Sample]:
    return {s.id: s for ref in list_samples("demo") for s in ref.load()}


def event(kind: str, sample_id: str = "106024", size=(321, 481), dataset="demo", **fields):
    return {
        "v": 1,
        "event": kind,
        "dataset": dataset,
        "sample_id": sample_id,
        "height": size[0],
        "width": size[1],
        **fields,
    }


def click(order: int, y: int, x: int, positive: bool = True, **kw) -> dict:
    return event("click", order=order, y=y, x=x, positive=positive, **kw)


def write_lines(path: Path, events: list, end: str = "\n") -> Path:
    path.write_text("\n".join(e if isinstance(e, str) else json.dumps(e) for e in events) + end)
    return path


def ctx(sample: Sample, dataset: str = "demo") -> ClickContext:
    target = protocol.Target.from_gt(sample.gt)
    return ClickContext(dataset, sample.id, target, instance_rng(0, dataset, sample.id))


def drive(model, sample: Sample, max_clicks: int = 20, dataset: str = "demo") -> list[Click]:
    """The clicks a run would get, against an empty prediction (enough for click order)."""
    context = ctx(sample, dataset)
    errors = protocol.errors(context.target, np.zeros(sample.gt.shape, dtype=bool))
    clicks: list[Click] = []
    while len(clicks) < max_clicks:
        nxt = model(errors, clicks, context)
        if nxt is None:
            break
        clicks.append(nxt)
    return clicks


def test_undo_reset_and_new_sessions_fold_into_the_last_seen_sequence(tmp_path):
    path = write_lines(
        tmp_path / "clicks.jsonl",
        [
            click(1, 10, 20),
            click(2, 30, 40, False),
            click(3, 50, 60),
            event("undo", n_clicks=2),
            click(3, 70, 80),  # replaces the undone third click
            click(1, 5, 5, sample_id="bool", size=(450, 520)),
            click(2, 6, 6, sample_id="bool", size=(450, 520)),
            event("reset", sample_id="bool", size=(450, 520), n_clicks=0),
            click(1, 7, 7, False, sample_id="bool", size=(450, 520)),
            click(1, 1, 1, sample_id="teddy", size=(398, 284)),
            click(2, 2, 2, sample_id="teddy", size=(398, 284)),
            click(1, 3, 3, sample_id="teddy", size=(398, 284)),  # a new session starts again
            click(1, 9, 9, sample_id="person3", size=(600, 450)),
            event("undo", sample_id="person3", size=(600, 450), n_clicks=0),
        ],
    )
    sequences, sizes = read_recording(path)
    assert sequences[("demo", "106024")] == [Click(10, 20, True), Click(30, 40, False),
                                             Click(70, 80, True)]  # fmt: skip
    assert sequences[("demo", "bool")] == [Click(7, 7, False)]
    assert sequences[("demo", "teddy")] == [Click(3, 3, True)]
    assert sequences[("demo", "person3")] == []
    assert sizes[("demo", "bool")] == (450, 520)


def test_replays_recorded_clicks_then_stops_or_continues_officially(tmp_path, demo):
    sample = demo["106024"]
    recorded = [click(1, 100, 200), click(2, 10, 10, False), click(3, 150, 250)]
    path = write_lines(tmp_path / "clicks.jsonl", recorded)
    expected = [Click(100, 200, True), Click(10, 10, False), Click(150, 250, True)]

    assert drive(replay(str(path)), sample) == expected
    assert drive(make_click_model(f"replay:{path},after=stop"), sample) == expected

    continued = drive(make_click_model(f"replay:{path},after=official"), sample, max_clicks=5)
    assert continued[:3] == expected and len(continued) == 5
    # Past the recording, each click is the official rule's on the current errors.
    context = ctx(sample)
    errors = protocol.errors(context.target, np.zeros(sample.gt.shape, dtype=bool))
    official = protocol.next_click_from_errors(errors, [(c.y, c.x) for c in continued[:3]])
    assert continued[3] == official


def test_uncovered_or_emptied_instances_are_skipped(tmp_path, demo):
    path = write_lines(
        tmp_path / "clicks.jsonl",
        [click(1, 100, 200), event("reset", sample_id="106024", n_clicks=0)],
    )
    for after in ("stop", "official"):
        model = replay(str(path), after=after)
        assert drive(model, demo["106024"]) == []  # recorded, then reset: nothing left
        assert drive(model, demo["teddy"]) == []  # never recorded


def test_dataset_matches_by_registry_name_or_official_folder(tmp_path, data_root):
    sample = next(s for ref in list_samples("grabcut", data_root)[:1] for s in ref.load())
    h, w = sample.gt.shape
    path = write_lines(
        tmp_path / "clicks.jsonl",
        [event("click", sample.id, (h, w), "GrabCut", order=1, y=h // 2, x=w // 2, positive=True)],
    )
    model = replay(str(path))
    assert drive(model, sample, dataset="grabcut") == [Click(h // 2, w // 2, True)]
    assert drive(model, sample, dataset="GrabCut") == [Click(h // 2, w // 2, True)]
    assert drive(model, sample, dataset="berkeley") == []


def test_a_recording_of_another_image_size_fails_the_instance(tmp_path, demo):
    path = write_lines(tmp_path / "clicks.jsonl", [click(1, 10, 10, size=(320, 481))])
    with pytest.raises(RecordingError, match=r"clicks\.jsonl: demo/106024 was recorded on a "
                       r"320x481 image but this instance is 321x481"):  # fmt: skip
        drive(replay(str(path)), demo["106024"])


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        (json.dumps(click(3, 5, 5)), "click order 3 but the sequence has 1 clicks"),
        (json.dumps({**click(2, 5, 5), "v": 2}), "format version 2"),
        (json.dumps({**click(2, 5, 5), "y": "5"}), "field 'y' is '5', expected int"),
        (json.dumps({**click(2, 5, 5), "x": True}), "field 'x' is True, expected int"),
        (json.dumps({**click(2, 5, 5), "positive": 1}), "field 'positive' is 1, expected bool"),
        (json.dumps(click(2, 321, 5)), r"click \(y=321, x=5\) is outside the 321x481 image"),
        (json.dumps(event("undo", n_clicks=3)), "undo to 3 clicks but the sequence has 1"),
        (json.dumps(event("reset", n_clicks=1)), "reset to 1 clicks"),
        (json.dumps(event("redo", n_clicks=1)), "unknown event 'redo'"),
        (
            json.dumps({k: v for k, v in click(2, 5, 5).items() if k != "sample_id"}),
            "missing field 'sample_id'",
        ),  # fmt: skip
        (json.dumps(click(2, 5, 5, size=(300, 481))), "is 300x481 here but 321x481 earlier"),
    ],
)
def test_a_malformed_line_names_the_file_and_line(tmp_path, bad_line, message):
    path = write_lines(tmp_path / "clicks.jsonl", [click(1, 1, 1), "", bad_line, click(2, 2, 2)])
    with pytest.raises(RecordingError, match=rf"clicks\.jsonl:3: .*{message}"):
        replay(str(path))


def test_a_torn_last_line_is_the_click_in_flight_and_is_dropped(tmp_path, demo, caplog):
    torn = json.dumps(click(2, 7, 7))[:40]
    path = write_lines(tmp_path / "clicks.jsonl", [click(1, 1, 1), torn], end="")
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert drive(replay(str(path)), demo["106024"]) == [Click(1, 1, True)]
    assert "clicks.jsonl:2: dropped an unterminated last line" in caplog.text
    # The same text with its newline is a malformed line like any other.
    path.write_text(path.read_text() + "\n")
    with pytest.raises(RecordingError, match=r"clicks\.jsonl:2: not valid JSON"):
        replay(str(path))


def test_bad_arguments_are_clear(tmp_path):
    with pytest.raises(RecordingError, match=r"missing\.jsonl: recording file does not exist"):
        replay(str(tmp_path / "missing.jsonl"))
    path = write_lines(tmp_path / "clicks.jsonl", [click(1, 1, 1)])
    with pytest.raises(ValueError, match="after='later'; expected one of stop, official"):
        make_click_model(f"replay:{path},after=later")
    assert parse_click_model(f"replay:{path},after=official").args == (str(path),)


def _run(tmp_path: Path, name: str, *extra: str) -> pd.DataFrame:
    out = tmp_path / name
    result = CliRunner().invoke(
        bench_main,
        ["run", "--model", PLUGIN, "--datasets", "demo", "--out", str(out), "--no-progress",
         *extra],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete", manifest
    return pd.read_parquet(out / "trajectories.parquet")[PROTOCOL_COLUMNS]


def test_bench_run_replays_a_recording_made_by_the_demo_recorder(tmp_path, demo):
    """Record the first clicks of a plain run with the demo's recorder; replaying them with
    after=official reproduces the plain run exactly, after=stop its first rows only."""
    plain = _run(tmp_path, "plain", "--max-clicks", "6")
    recorder = Recorder(tmp_path / "clicks.jsonl", "shifted-reveal")
    keep = {"106024": 3, "person3": 2}
    for sample_id, n in keep.items():
        h, w = demo[sample_id].gt.shape
        rows = plain[plain.sample_id == sample_id].head(n)
        instance = {"dataset": "demo", "sample_id": sample_id, "height": h, "width": w}
        for order, row in enumerate(rows.itertuples(), start=1):
            recorder.write(
                "click", instance, order=order, y=int(row.y), x=int(row.x),
                positive=bool(row.positive), dt_s=0.5, iou=float(row.iou), model_s=0.0,
            )  # fmt: skip
    recorder.close()

    spec = f"replay:{tmp_path / 'clicks.jsonl'}"
    continued = _run(
        tmp_path, "official", "--max-clicks", "6", "--click-model", spec + ",after=official"
    )
    expected = plain[plain.sample_id.isin(keep)].reset_index(drop=True)
    pd.testing.assert_frame_equal(continued.reset_index(drop=True), expected)

    stopped = _run(tmp_path, "stop", "--max-clicks", "6", "--click-model", spec)
    expected = pd.concat([plain[plain.sample_id == s].head(n) for s, n in keep.items()])
    pd.testing.assert_frame_equal(stopped.reset_index(drop=True), expected.reset_index(drop=True))
