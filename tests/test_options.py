"""Every `bench run` / `bench profile` option is checked before a run folder is created or a
model loaded; a value no run can use is a usage error naming the option, and a run that
evaluates nothing is `failed` and exits 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main as bench_main
from bench.engine.instance import ProtocolSettings
from bench.engine.run import RunRequest, run

FACTORY = """
from pathlib import Path


def make(**options):
    Path({marker!r}).write_text("loaded")
    raise SystemExit("the model must not be loaded for a bad option")
"""


@pytest.fixture()
def marker_model(tmp_path: Path) -> tuple[str, Path]:
    """A plugin whose factory leaves a file behind: it must never be called here."""
    marker = tmp_path / "loaded"
    plugin = tmp_path / "plug.py"
    plugin.write_text(FACTORY.format(marker=str(marker)))
    return f"{plugin}:make", marker


BAD_RUN_OPTIONS = [
    (("--limit", "-1"), "--limit"),
    (("--limit", "0"), "--limit"),
    (("--max-clicks", "0"), "--max-clicks"),
    (("--max-clicks", "-3"), "--max-clicks"),
    (("--stop-at-iou", "1.5"), "--stop-at-iou"),
    (("--stop-at-iou", "-0.5"), "--stop-at-iou"),
    (("--stop-at-iou", "0"), "--stop-at-iou"),
    (("--stop-at-iou", "nan"), "--stop-at-iou"),
    (("--pred-thr", "1.5"), "--pred-thr"),
    (("--pred-thr", "1"), "--pred-thr"),
    (("--pred-thr", "-0.1"), "--pred-thr"),
    (("--pred-thr", "nan"), "--pred-thr"),
    (("--pred-thr", "inf"), "--pred-thr"),
    (("--threads", "0"), "--threads"),
    (("--datasets", ""), "--datasets"),
    (("--datasets", " , "), "--datasets"),
]


@pytest.mark.parametrize(("args", "option"), BAD_RUN_OPTIONS)
def test_bad_run_options_are_refused_before_anything_happens(tmp_path, marker_model, args, option):
    model, marker = marker_model
    out = tmp_path / "run"
    result = CliRunner().invoke(
        bench_main, ["run", "--model", model, "--out", str(out), "--no-progress", *args]
    )
    assert result.exit_code == 2, result.output
    assert option in result.output and "Traceback" not in result.output
    assert not out.exists() and not marker.exists()


def test_the_messages_say_what_is_allowed(tmp_path, marker_model):
    model, _ = marker_model
    for args, expected in (
        (("--pred-thr", "nan"), "'nan' is not finite; expected a number in [0, 1)"),
        (("--stop-at-iou", "1.5"), "1.5 is outside (0, 1]"),
        (("--limit", "-1"), "-1 is not in the range x>=1"),
    ):
        result = CliRunner().invoke(
            bench_main, ["run", "--model", model, "--out", str(tmp_path / "r"), *args]
        )
        assert expected in result.output, result.output


@pytest.mark.parametrize(
    "settings",
    [
        {"max_clicks": 0},
        {"max_clicks": 2.5},
        {"pred_thr": float("nan")},
        {"pred_thr": 1.0},
        {"stop_at_iou": float("inf")},
        {"stop_at_iou": -0.5},
    ],
)
def test_protocol_settings_refuse_unusable_values(settings):
    with pytest.raises(ValueError, match=next(iter(settings))):
        ProtocolSettings(**settings)


@pytest.mark.parametrize(
    ("field", "value"),
    [("limit", 0), ("limit", -1), ("threads", 0), ("datasets", ())],
)
def test_a_programmatic_request_is_checked_before_the_model_loads(
    tmp_path, marker_model, field, value
):
    model, marker = marker_model
    request = RunRequest(model, ("demo",), tmp_path / "run", {}, progress=False)
    with pytest.raises(ValueError):
        run(RunRequest(**{**request.__dict__, field: value}))
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_a_run_that_evaluates_nothing_is_failed_and_exits_1(tmp_path):
    root = tmp_path / "data"
    (root / "GrabCut" / "data_GT").mkdir(parents=True)
    (root / "GrabCut" / "boundary_GT").mkdir()
    out = tmp_path / "run"
    result = CliRunner().invoke(
        bench_main,
        ["run", "--model", "grabcut-opencv", "--datasets", "grabcut", "--data-root", str(root),
         "--out", str(out), "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "no instance was evaluated" in result.output
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ("100", "cannot be split into 224-px windows"),
        ("0", "must be a positive number of pixels"),
        ("-5", "must be a positive number of pixels"),
        ("448,abc", "expected comma-separated whole numbers"),
    ],
)
def test_profile_sizes_are_checked_before_a_network_is_built(tmp_path, sizes, expected):
    out = tmp_path / "profile"
    result = CliRunner().invoke(
        bench_main,
        ["profile", "--models", "simpleclick-vit-xt", "--sizes", sizes, "--no-spc", "--out",
         str(out)],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert expected in result.output and "--sizes" in result.output
    assert not out.exists()


@pytest.mark.parametrize(("option", "value"), [("--threads", "0"), ("--clicks", "0")])
def test_profile_counts_are_checked(option, value):
    result = CliRunner().invoke(bench_main, ["profile", "--no-spc", option, value])
    assert result.exit_code == 2 and option in result.output, result.output
