"""RClicks' click model (`bench.clicks.rclicks`) against the official clicker's recorded draws
(`golden/metrics/rclicks_clicker.json`: UD and DT priors x three mass slices and the baseline
on the first 10 GrabCut instances, 20 clicks each, driven by the golden fake predictor)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import protocol
from bench.clicks import ClickContext, instance_rng, make_click_model, parse_click_model
from bench.clicks.rclicks import (
    FIRST_CLICK_MAPS,
    distance_transform_prior,
    mass_bounds,
    sliced_map,
    uniform_prior,
)
from bench.datasets import list_samples
from bench.sample import Click, Sample

PLUGINS = Path(__file__).parent / "plugins"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_plugin", PLUGINS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shifted_reveal = _load("shifted_reveal")


@pytest.fixture(scope="module")
def recorded(golden) -> dict:
    return json.loads((golden / "metrics" / "rclicks_clicker.json").read_text())


@pytest.fixture(scope="module")
def grabcut10(data_root) -> list[Sample]:
    refs = list_samples("grabcut", data_root)[:10]
    return [s for ref in refs for s in ref.load()]


def _spec(run: dict) -> str:
    if run["prior"] == "baseline_no_click_model":
        return "official"
    low, high = run["quantile_low"], run["quantile_high"]
    return f"rclicks:prior={run['prior'].lower()},mass={low}-{high}"


def replay(sample: Sample, spec: str, n_clicks: int = 20, on_click=None):
    """The RClicks click-model loop with the golden fake predictor: clicks and float32 IoUs."""
    model = make_click_model(spec)
    target = protocol.Target.from_gt(sample.gt)
    rng = instance_rng(0, "grabcut", sample.id)
    ctx = ClickContext("grabcut", sample.id, target, rng, sample.image)
    predictor = shifted_reveal.make_predictor()
    predictor.start(sample)
    err = protocol.errors(target, np.zeros(sample.gt.shape, dtype=bool))
    clicks: list[Click] = []
    ious = []
    for _ in range(n_clicks):
        click = model(err, list(clicks), ctx)
        if on_click is not None:
            on_click(err, clicks, click)
        clicks.append(click)
        err = protocol.errors(target, protocol.binarize(predictor.predict(clicks)))
        ious.append(np.float32(protocol.iou_from_errors(target, err)))
    return clicks, ious


RUNS = [
    "baseline_no_click_model",
    "UD 0.0-0.1",
    "UD 0.4-0.5",
    "UD 0.9-1.0",
    "DT 0.0-0.1",
    "DT 0.4-0.5",
    "DT 0.9-1.0",
]


@pytest.mark.parametrize("run_index", range(len(RUNS)), ids=RUNS)
def test_every_recorded_click_is_reproduced(recorded, grabcut10, run_index):
    run = recorded["runs"][run_index]
    assert run["prior"] in RUNS[run_index]
    spec = _spec(run)
    for inst, sample in zip(run["instances"], grabcut10, strict=True):
        assert sample.image_path.name == inst["image"]
        clicks, ious = replay(sample, spec)
        assert [[c.y, c.x, c.positive] for c in clicks] == inst["clicks"], inst["image"]
        want = [np.float32(p["iou"]) for p in inst["per_click"]]
        assert ious == want, inst["image"]


@pytest.mark.parametrize("prior", ["DT"])
def test_sliced_maps_and_draws_match_the_record(recorded, grabcut10, prior):
    """The map each click was drawn from (support, mass) and the RNG use, click by click."""
    priors = {"UD": uniform_prior, "DT": distance_transform_prior}
    for run in recorded["runs"]:
        if run["prior"] != prior:
            continue
        low, high = run["quantile_low"], run["quantile_high"]
        inst, sample = run["instances"][2], grabcut10[2]
        stats = []

        def on_click(err, clicks, click, low=low, high=high, stats=stats, sample=sample):
            region = err.fn if click.positive else err.fp
            not_clicked = np.ones(region.shape, dtype=bool)
            for c in clicks:
                not_clicked[c.y, c.x] = False
            prior_map = priors[prior](sample.image, sample.gt == 1, region, clicks)
            m = sliced_map(prior_map, region, not_clicked, low, high)
            stats.append((m.dtype, int(np.count_nonzero(m)), float(m.sum(dtype=np.float64))))

        replay(sample, _spec(run), on_click=on_click)
        for got, want in zip(stats, inst["per_click"], strict=True):
            assert want["sampled"] and want["rng"]["p_dtype"] == "float32"
            assert got[0] == np.float32 and got[1] == want["click_map_nnz"]
            assert got[2] == pytest.approx(want["click_map_sum"], rel=1e-3)
        # One double per sampled click, from a fresh RandomState(42) per image.
        rs = np.random.RandomState(42)
        assert [p["rng"]["u"] for p in inst["per_click"]] == [rs.random_sample() for _ in stats]


def test_ud_groups_click_alike_and_dt_groups_differ(recorded):
    runs = {(r["prior"], r["quantile_low"]): r["instances"] for r in recorded["runs"]}
    clicks = {key: [i["clicks"] for i in insts] for key, insts in runs.items()}
    assert clicks[("UD", 0.0)] == clicks[("UD", 0.4)] == clicks[("UD", 0.9)]
    assert clicks[("DT", 0.0)] != clicks[("DT", 0.9)]


def test_mass_bounds_and_options():
    assert mass_bounds(group=1) == (0.0, 0.1)
    assert mass_bounds(group=4) == (0.3, 0.4) == (float("0.3"), float("0.4"))
    assert mass_bounds(group=10) == (0.9, 1.0)
    assert mass_bounds(mass="0.25-0.75") == (0.25, 0.75)
    assert mass_bounds() == (0.0, 1.0)
    for bad in [{"group": 0}, {"group": 11}, {"mass": "0.5"}, {"mass": "0.8-0.2"}]:
        with pytest.raises(ValueError, match="rclicks"):
            mass_bounds(**bad)
    with pytest.raises(ValueError, match="not both"):
        make_click_model("rclicks:prior=dt,group=1,mass=0-1")
    with pytest.raises(ValueError, match="prior"):
        make_click_model("rclicks:prior=nope")
    assert str(parse_click_model("rclicks:prior=dt,group=3")) == "rclicks:group=3,prior=dt"


def test_plugin_map_steers_every_click(grabcut10, tmp_path):
    """A clickability-map plugin file: all mass on the error pixels of the image's left half.

    The plugin's map is restricted by the clicker to the error region and unclicked pixels,
    and mass slices apply to it as to the built-in priors.
    """
    plugin = tmp_path / "left_half.py"
    plugin.write_text(
        "import numpy as np\n"
        "SEEN = []\n"
        "def clickability(image, gt, error, clicks):\n"
        "    SEEN.append((image.shape, image.dtype, gt.dtype, error.dtype, len(clicks)))\n"
        "    out = np.zeros(error.shape, np.float32)\n"
        "    out[:, : error.shape[1] // 2] = 1.0 + np.arange(error.shape[1] // 2)\n"
        "    return out\n"
    )
    sample = grabcut10[0]
    w = sample.gt.shape[1]
    seen: list[tuple[Click, protocol.Errors]] = []
    clicks, _ = replay(
        sample,
        f"rclicks:prior={plugin}:clickability,group=10",
        n_clicks=6,
        on_click=lambda err, clicks, click: seen.append((click, err)),
    )
    module = next(m for n, m in sys.modules.items() if n.startswith("iseg_bench_clickability_"))
    assert [s[4] for s in module.SEEN] == list(range(6))
    assert module.SEEN[0][:4] == (sample.image.shape, np.uint8, np.bool_, np.bool_)
    for click, err in seen:
        region = err.fn if click.positive else err.fp
        if region[:, : w // 2].any():
            assert click.x < w // 2 and region[click.y, click.x]
    # G10 of a map that grows to the right keeps only the right-most columns of the region.
    first = seen[0][1].fn[:, : w // 2]
    cols = np.flatnonzero(first.any(axis=0))
    assert clicks[0].x >= cols[len(cols) // 2]

    # The first click's map does not depend on the group: G1 reuses it (one plugin call less,
    # no second sort), and still draws from its own slice.
    hits = FIRST_CLICK_MAPS.hits
    g1, _ = replay(sample, f"rclicks:prior={plugin}:clickability,group=1", n_clicks=2)
    assert FIRST_CLICK_MAPS.hits == hits + 1
    assert [s[4] for s in module.SEEN] == [*range(6), 1]
    assert g1[0].x < clicks[0].x  # G1: the least likely (left-most) columns
