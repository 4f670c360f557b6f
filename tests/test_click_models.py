"""Click models (`bench.clicks`): the official rule through the registry, and the simulated
users of `bench.clicks.simulated` on the real GrabCut masks, driven by the golden fake predictor
(`tests/plugins/shifted_reveal.py`) and by dilated / eroded object masks whose thin error bands
run along GrabCut's ignore band."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import ndimage, stats

from bench import protocol
from bench.cli import main
from bench.clicks import ClickContext, instance_rng, make_click_model, parse_click_model
from bench.datasets import list_samples
from bench.sample import IGNORE, Click, Sample
from bench.store import PROTOCOL_COLUMNS, read_trajectories

SIMULATED = ["jitter", "random-in-error", "border-distance", "first-click-random"]
PLUGIN = Path(__file__).parent / "plugins" / "shifted_reveal.py"
PROBE = f"{Path(__file__).parent / 'plugins' / 'batch_probe.py'}:make_predictor"
FAULTY = f"{Path(__file__).parent / 'plugins' / 'faulty.py'}:make_predictor"
BENCH = [sys.executable, "-m", "bench"]


def _load_plugin():
    spec = importlib.util.spec_from_file_location("shifted_reveal_plugin", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shifted_reveal = _load_plugin()


@pytest.fixture(scope="module")
def grabcut(data_root) -> list[Sample]:
    samples = [s for ref in list_samples("grabcut", data_root) for s in ref.load()]
    assert len(samples) == 50
    return samples


def context(sample: Sample, seed: int = 0, target: protocol.Target | None = None) -> ClickContext:
    """What `bench run --datasets grabcut --seed SEED` hands the model for this instance."""
    target = target or protocol.Target.from_gt(sample.gt)
    return ClickContext("grabcut", sample.id, target, instance_rng(seed, "grabcut", sample.id))


Check = Callable[[Click, protocol.Errors, list[Click], Sample], None]


def trajectory(sample: Sample, spec: str, seed: int = 0, n_clicks: int = 20, check=None):
    """The official loop with the golden fake predictor; returns clicks and float32 IoUs."""
    model = make_click_model(spec)
    target = protocol.Target.from_gt(sample.gt)
    ctx = context(sample, seed, target)
    predictor = shifted_reveal.make_predictor()
    predictor.start(sample)
    err = protocol.errors(target, np.zeros(sample.gt.shape, dtype=bool))
    clicks: list[Click] = []
    ious: list[np.float32] = []
    for _ in range(n_clicks):
        click = model(err, list(clicks), ctx)
        if check is not None:
            check(click, err, clicks, sample)
        clicks.append(click)
        err = protocol.errors(target, protocol.binarize(predictor.predict(clicks)))
        ious.append(np.float32(protocol.iou_from_errors(target, err)))
    return clicks, ious


# --- official -----------------------------------------------------------------------------


def test_official_through_registry_reproduces_golden_trajectories(grabcut, golden):
    """Every GrabCut click and float32 IoU of the official fixtures, via `make_click_model`."""
    reference = json.loads((golden / "protocol" / "GrabCut.json").read_text())["instances"]
    for sample, ref in zip(grabcut, reference, strict=True):
        clicks, ious = trajectory(sample, "official")
        assert [list(c) for c in clicks] == ref["clicks"], sample.id
        assert [float(v) for v in ious] == ref["ious"], sample.id


def test_official_equals_protocol_rule_on_dilated_masks(grabcut):
    model = make_click_model("official")
    for sample in grabcut[:10]:
        target = protocol.Target.from_gt(sample.gt)
        pred = cv2.dilate(target.object_valid.view(np.uint8), np.ones((9, 9), np.uint8)) > 0
        err = protocol.errors(target, pred)
        clicks = [Click(0, 0, False), Click(5, 7, True)]
        expected = protocol.next_click_from_errors(err, [(0, 0), (5, 7)])
        assert model(err, clicks, context(sample)) == expected


# --- every simulated model on real masks --------------------------------------------------


def edt(region: np.ndarray) -> np.ndarray:
    """Independent exact EDT (scipy), the image edge counting as non-error like the official.

    Computed on the region's bounding box plus a one-pixel frame (all non-error), which
    changes no value and keeps the property tests fast."""
    out = np.zeros(region.shape)
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    if rows.size:
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        frame = np.pad(region[r0:r1, c0:c1], 1)
        out[r0:r1, c0:c1] = ndimage.distance_transform_edt(frame)[1:-1, 1:-1]
    return out


def check_click(spec: str) -> tuple[Check, dict[str, int]]:
    """A per-click property check for one model, and counters that prove it was exercised."""
    seen = {"clicks": 0, "fallback": 0, "near_ignore": 0, "nothing_left": 0}

    def check(click: Click, err: protocol.Errors, clicks: list[Click], sample: Sample) -> None:
        h, w = sample.gt.shape
        official = protocol.next_click_from_errors(err, [(c.y, c.x) for c in clicks])
        left = (err.fn | err.fp).copy()
        for c in clicks:
            left[c.y, c.x] = False
        if not left.any():  # a perfect prediction: the official rule's (0, 0) negative click
            assert click == official == Click(0, 0, False)
            seen["nothing_left"] += 1
            return
        assert 0 <= click.y < h and 0 <= click.x < w
        assert (click.y, click.x) not in {(c.y, c.x) for c in clicks}, "clicked twice"
        assert sample.gt[click.y, click.x] != IGNORE, "clicked an ignore pixel"
        region = err.fn if click.positive else err.fp
        assert region[click.y, click.x], "not in the error region its polarity claims"
        seen["clicks"] += 1
        y0, y1, x0, x1 = max(click.y - 2, 0), click.y + 3, max(click.x - 2, 0), click.x + 3
        seen["near_ignore"] += bool((sample.gt[y0:y1, x0:x1] == IGNORE).any())
        if spec == "first-click-random" and not clicks:
            assert click.positive and sample.gt[click.y, click.x] == 1
            return
        if spec == "first-click-random":
            assert click == official
            return
        assert click.positive == official.positive, "region chosen unlike the official rule"
        if spec == "jitter":
            assert max(abs(click.y - official.y), abs(click.x - official.x)) <= 20
        if spec == "border-distance":
            squares = np.rint(edt(region) ** 2)
            deep = squares >= 25
            for c in clicks:
                deep[c.y, c.x] = False
            if deep.any():
                assert squares[click.y, click.x] >= 25, "closer than d to the border"
            else:
                assert click == official, "fallback is not the interior-most pixel"
                seen["fallback"] += 1

    return check, seen


@pytest.mark.parametrize("spec", SIMULATED)
def test_clicks_land_in_claimed_region_on_golden_trajectories(grabcut, spec):
    assert sum(int((s.gt == IGNORE).any()) for s in grabcut) >= 40  # the property has teeth
    check, seen = check_click(spec)
    for sample in grabcut:
        trajectory(sample, spec, check=check)
    assert seen["clicks"] + seen["nothing_left"] == 50 * 20
    assert seen["clicks"] > 900 and seen["near_ignore"] > 0
    if spec == "border-distance":
        assert seen["fallback"] > 0  # late, thin error regions exercise the fallback


@pytest.mark.parametrize("spec", SIMULATED)
@pytest.mark.parametrize("op", ["dilate", "erode"])
def test_clicks_land_in_claimed_region_on_thin_error_bands(grabcut, spec, op):
    """A dilated (eroded) object leaves a thin FP (FN) band that GrabCut's ignore band cuts."""
    check, seen = check_click(spec)
    model = make_click_model(spec)
    kernel = np.ones((7, 7), np.uint8)
    for sample in grabcut:
        target = protocol.Target.from_gt(sample.gt)
        obj = target.object_valid.view(np.uint8)
        pred = (cv2.dilate(obj, kernel) if op == "dilate" else cv2.erode(obj, kernel)) > 0
        err = protocol.errors(target, pred)
        ctx = context(sample, target=target)
        clicks: list[Click] = [protocol.next_click_from_errors(err, [])]
        for _ in range(5):
            click = model(err, list(clicks), ctx)
            check(click, err, clicks, sample)
            clicks.append(click)
    assert seen["clicks"] == 50 * 5


@pytest.mark.parametrize("spec", SIMULATED)
def test_deterministic_for_a_seed_and_different_for_another(grabcut, spec):
    subset = grabcut[:8]
    first = [trajectory(s, spec, seed=0)[0] for s in subset]
    # Instance order does not matter: each instance's generator depends on its id only.
    again = [trajectory(s, spec, seed=0)[0] for s in reversed(subset)][::-1]
    other = [trajectory(s, spec, seed=1)[0] for s in subset]
    assert first == again
    assert sum(a != b for a, b in zip(first, other, strict=True)) == len(subset)
    official = [trajectory(s, "official")[0] for s in subset]
    assert sum(a != b for a, b in zip(first, official, strict=True)) == len(subset)


def test_first_click_random_varies_then_follows_the_official_rule(grabcut):
    sample = grabcut[0]
    firsts = {trajectory(sample, "first-click-random", seed=s, n_clicks=1)[0][0] for s in range(20)}
    assert len(firsts) >= 18
    assert all(c.positive and sample.gt[c.y, c.x] == 1 for c in firsts)


# --- distributions on synthetic regions -----------------------------------------------------


def synthetic(fn: np.ndarray, fp: np.ndarray | None = None) -> protocol.Errors:
    fp = np.zeros_like(fn) if fp is None else fp
    return protocol.Errors(fn, fp, int(fn.sum()), int(fp.sum()))


def synthetic_context(shape: tuple[int, int], seed: int = 0) -> ClickContext:
    target = protocol.Target.from_gt(np.ones(shape, np.int8))
    return ClickContext("synthetic", "s", target, np.random.default_rng(seed))


@pytest.mark.parametrize("sigma", [2.0, 5.0])
def test_jitter_is_gaussian_around_the_official_point(sigma):
    fn = np.ones((201, 201), bool)
    err, ctx = synthetic(fn), synthetic_context(fn.shape)
    model = make_click_model(f"jitter:sigma={sigma}")
    centre = protocol.next_click_from_errors(err, [])
    assert (centre.y, centre.x) == (100, 100)
    offsets = np.array([(c.y - 100, c.x - 100) for c in (model(err, [], ctx) for _ in range(4000))])
    assert np.abs(offsets.mean(axis=0)).max() < 0.1 * sigma
    np.testing.assert_allclose(offsets.std(axis=0), sigma, rtol=0.05)
    assert np.abs(offsets).max() <= np.ceil(4 * sigma)


def test_jitter_resamples_inside_a_thin_region_instead_of_snapping():
    """A 3-px-wide band: snapping would put ~88% of sigma-5 clicks on the band's two rims (every
    draw with |dy| > 1.5); resampling keeps the Gaussian's shape across the band, weights
    exp(-1/50) : 1 : exp(-1/50), i.e. near-equal rows."""
    fn = np.zeros((101, 101), bool)
    fn[49:52, :] = True
    err, ctx = synthetic(fn), synthetic_context(fn.shape)
    model = make_click_model("jitter:sigma=5")
    rows = np.array([model(err, [], ctx).y for _ in range(3000)])
    assert set(np.unique(rows)) <= {49, 50, 51}
    share = np.bincount(rows - 49, minlength=3) / rows.size
    np.testing.assert_allclose(share, [1 / 3, 1 / 3, 1 / 3], atol=0.04)


def test_jitter_zero_sigma_is_official(grabcut):
    sample = grabcut[3]
    assert trajectory(sample, "jitter:sigma=0")[0] == trajectory(sample, "official")[0]


def test_random_in_error_is_uniform_and_uses_the_official_region_choice():
    """FN: a long 1-px line (300 px, max distance 1); FP: a 5x5 square (25 px, max 3). The
    official rule picks the square, so every click is a uniform negative click in it."""
    fn = np.zeros((40, 400), bool)
    fn[2, 50:350] = True
    fp = np.zeros_like(fn)
    fp[20:25, 20:25] = True
    err, ctx = synthetic(fn, fp), synthetic_context(fn.shape)
    model = make_click_model("random-in-error")
    clicks = [model(err, [], ctx) for _ in range(5000)]
    assert not any(c.positive for c in clicks)
    counts = np.zeros((5, 5))
    for c in clicks:
        counts[c.y - 20, c.x - 20] += 1
    assert counts.min() > 0
    assert stats.chisquare(counts.ravel()).pvalue > 0.001


def test_random_in_error_avoids_clicked_pixels():
    fn = np.zeros((10, 10), bool)
    fn[4:6, 4:6] = True
    err, ctx = synthetic(fn), synthetic_context(fn.shape)
    model = make_click_model("random-in-error")
    clicked = [Click(4, 4, True), Click(4, 5, True), Click(5, 4, True)]
    assert {model(err, clicked, ctx) for _ in range(50)} == {Click(5, 5, True)}


def test_border_distance_keeps_d_and_falls_back_to_the_interior_most_pixel():
    fn = np.zeros((60, 60), bool)
    fn[10:40, 15:45] = True  # 30 x 30: pixels 4+ rows/cols in have distance >= 5
    err, ctx = synthetic(fn), synthetic_context(fn.shape)
    clicks = [make_click_model("border-distance:d=5")(err, [], ctx) for _ in range(3000)]
    ys, xs = np.array([c.y for c in clicks]), np.array([c.x for c in clicks])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (14, 35, 19, 40)
    official = protocol.next_click_from_errors(err, [])
    assert make_click_model("border-distance:d=16")(err, [], ctx) == official
    deepest = [official]
    assert make_click_model("border-distance:d=15")(err, deepest, ctx) != official


# --- degenerate cases and options ---------------------------------------------------------


@pytest.mark.parametrize("spec", ["official", *SIMULATED])
def test_nothing_left_to_click_gives_the_official_click(grabcut, spec):
    sample = grabcut[0]
    target = protocol.Target.from_gt(sample.gt)
    model = make_click_model(spec)
    perfect = protocol.errors(target, target.object_valid.copy())
    assert model(perfect, [Click(3, 3, True)], context(sample)) == Click(0, 0, False)
    one = np.zeros_like(target.object_valid)
    one[7, 9] = True
    only_clicked = synthetic(one)
    assert model(only_clicked, [Click(7, 9, True)], context(sample)) == Click(0, 0, False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("jitter:sigma=-1", "sigma must be finite and >= 0"),
        ("jitter:sigma=abc", "sigma must be a number"),
        ("jitter:radius=3", "unexpected keyword argument 'radius'"),
        ("border-distance:d=-2", "d must be finite and >= 0"),
        ("random-in-error:sigma=5", "unexpected keyword argument 'sigma'"),
        ("first-click-random:d=5", "unexpected keyword argument 'd'"),
        ("official:sigma=5", "takes no options"),
    ],
)
def test_bad_options_are_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        make_click_model(text)


# --- end to end through `bench run` (batched predictor: the golden fake, one per instance) ---


def run_args(data_root: Path, out: Path, spec: str, limit: int, *extra: str) -> list[str]:
    return ["run", "--model", PROBE, "--datasets", "grabcut", "--data-root", str(data_root),
            "--out", str(out), "--limit", str(limit), "--click-model", spec, "--seed", "7",
            "--no-progress", *extra]  # fmt: skip


def bench_run(*args: str) -> None:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)


def protocol_frame(run_dir: Path) -> pd.DataFrame:
    return read_trajectories(run_dir)[PROTOCOL_COLUMNS].reset_index(drop=True)


@pytest.mark.parametrize("spec", [*SIMULATED[:1], "jitter:sigma=2", *SIMULATED[1:]])
def test_run_at_batch8_equals_batch1_and_the_direct_loop(spec, grabcut, data_root, tmp_path):
    b1, b8 = tmp_path / "b1", tmp_path / "b8"
    bench_run(*run_args(data_root, b1, spec, 12))
    bench_run(*run_args(data_root, b8, spec, 12, "--batch-size", "8"))
    manifest = json.loads((b8 / "manifest.json").read_text())
    assert manifest["engine"]["effective_batch_size"] == 8
    assert manifest["protocol"]["click_model"] == parse_click_model(spec).to_json()
    assert manifest["protocol"]["seed"] == 7
    frame = protocol_frame(b1)
    pd.testing.assert_frame_equal(frame, protocol_frame(b8))
    # The engine seeds each instance as `context` does: the clicks are the direct loop's.
    for sample, (sid, group) in zip(grabcut, frame.groupby("sample_id", sort=False)):
        assert sid == sample.id
        clicks = [Click(int(r.y), int(r.x), bool(r.positive)) for r in group.itertuples()]
        assert clicks == trajectory(sample, spec, seed=7)[0], sid


@pytest.mark.slow
@pytest.mark.parametrize("spec", SIMULATED)
def test_killed_and_resumed_run_equals_uninterrupted(spec, data_root, tmp_path):
    """The kill lands at a known point, whatever the machine's load: the faulty plugin (the
    golden fake, unbroken) pauses in its 11th `start()` and says so, after 10 entries are
    journaled (batch 1 opens an instance only once the previous one is stored)."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    bench_run(*run_args(data_root, full, spec, 24))
    args = run_args(data_root, killed, spec, 24)
    cmd = [*BENCH, *args[:2], FAULTY, *args[3:]]
    marker = tmp_path / "paused"
    env = {
        **os.environ,
        "ISEG_FAULTS_PAUSE_AT_START": "11",
        "ISEG_FAULTS_PAUSE_MARKER": str(marker),
    }
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 300  # a guard against a hang, not a timing assumption
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the run never reached the pause"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    journal = killed / "journal.jsonl"
    assert journal.read_bytes().count(b"\n") == 10, "killed after exactly ten entries"
    subprocess.run(cmd, check=True, timeout=300, capture_output=True)
    pd.testing.assert_frame_equal(protocol_frame(killed), protocol_frame(full))
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"] == 1
