"""The random-walker baseline: seeding rule, output contract, and that clicks help on real data."""

from __future__ import annotations

import numpy as np
import pytest

from bench.adapters import make_predictor as make_registered
from bench.adapters import resolve_model
from bench.adapters.classical.random_walker import BACKGROUND, OBJECT, make_predictor
from bench.datasets import list_samples
from bench.protocol import PRED_THR, iou, next_click
from bench.sample import Click, Sample


def synthetic_sample(h: int = 90, w: int = 120) -> Sample:
    """A bright rectangle over the middle third of each side of a dark image; gt = rectangle."""
    image = np.full((h, w, 3), 30, dtype=np.uint8)
    gt = np.zeros((h, w), dtype=np.int8)
    box = (slice(h // 3, 2 * h // 3), slice(w // 3, 2 * w // 3))
    image[box] = 220
    gt[box] = 1
    return Sample(id="square", image=image, gt=gt, dataset="synthetic")


@pytest.mark.parametrize("border", ["always", "until_negative", "never"])
def test_seeds_follow_the_documented_rule(border):
    predictor = make_predictor(radius=2, max_side=240, border=border)
    predictor.start(synthetic_sample())
    only_positive = predictor.seeds([Click(45, 60, True), Click(0, 10, True)])
    frame = np.concatenate([only_positive[[0, -1], :].ravel(), only_positive[:, [0, -1]].ravel()])
    n_frame = frame.size
    # A positive disk (radius 2 -> 5 px wide at row 0) is drawn over the border seeds.
    assert (frame == BACKGROUND).sum() == (0 if border == "never" else n_frame - 5)
    assert only_positive[0, 10] == OBJECT
    assert only_positive[45, 60] == OBJECT and only_positive[45, 62] == OBJECT
    assert only_positive[45, 63] == 0  # radius 2
    # A later click wins where disks overlap.
    with_negative = predictor.seeds([Click(45, 60, True), Click(45, 61, False)])
    assert with_negative[45, 61] == BACKGROUND and with_negative[45, 59] == BACKGROUND
    assert with_negative[45, 58] == OBJECT
    assert (with_negative[-1, :] == BACKGROUND).all() == (border == "always")
    described = predictor.describe()
    assert described["radius_px_working_resolution"] == 2 and described["max_side"] == 240
    assert described["border"] == border and described["border_rule"]


def test_working_resolution_and_output_contract():
    sample = synthetic_sample(180, 480)  # longest side 480 -> processed at 240 x 90
    predictor = make_predictor(max_side=240)
    predictor.start(sample)
    assert predictor.image.shape[:2] == (90, 240)
    prob = predictor.predict([Click(90, 240, True)])
    assert prob.dtype == np.float32 and prob.shape == (180, 480)
    assert prob.min() >= 0 and prob.max() <= 1
    # One click inside finds the bright rectangle; the border seed keeps the background out.
    assert iou(sample.gt, prob > PRED_THR) > 0.9


def test_registry_entry_builds_this_predictor_and_rejects_unknown_options():
    predictor = make_registered(resolve_model("random-walker"), max_side=120, device="cpu")
    assert predictor.describe()["max_side"] == 120
    with pytest.raises(TypeError, match="unknown options"):
        make_predictor(radiuss=3)
    with pytest.raises(ValueError, match="border"):
        make_predictor(border="sometimes")


@pytest.mark.slow
def test_clicks_improve_iou_on_real_grabcut(data_root):
    """Official click rule and IoU on the first 5 GrabCut instances, 10 clicks each."""
    predictor = make_predictor()
    ious = []
    for ref in list_samples("grabcut", data_root)[:5]:
        sample = ref.load()[0]
        predictor.start(sample)
        clicks: list[Click] = []
        pred = np.zeros(sample.gt.shape, dtype=bool)
        trajectory = []
        for _ in range(10):
            clicks.append(next_click(sample.gt, pred, [(c.y, c.x) for c in clicks]))
            pred = predictor.predict(clicks) > PRED_THR
            trajectory.append(iou(sample.gt, pred))
        ious.append(trajectory)
    ious = np.array(ious)
    # Measured: mean IoU@1 0.222, IoU@10 0.795 (defaults: radius 5, max_side 240, border always).
    assert ious[:, 9].mean() > ious[:, 0].mean() + 0.4
    assert ious[:, 9].mean() > 0.7
