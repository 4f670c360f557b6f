"""Shared evaluation-time pipeline against the official code's golden outputs (golden/README.md)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from bench.adapters.common.click_maps import coord_features, disk_maps, normalize_image
from bench.adapters.common.eval_predictor import (
    EvalPredictor,
    ZoomInConfig,
    ritm_cvpr_zoom_in,
    simpleclick_cvpr_zoom_in,
)
from bench.adapters.common.flip import flip_forward, flip_inverse
from bench.adapters.common.points import net_clicks, points_tensor
from bench.adapters.common.zoom_in import (
    ZoomState,
    box_iou,
    clicks_to_crop,
    expand_box,
    positives_inside,
    roi_image_size,
    zoom_forward,
    zoom_inverse,
)
from bench.datasets import list_samples
from bench.protocol import PRED_THR, iou, next_click
from bench.sample import Click, Sample


@pytest.mark.parametrize("model", ["simpleclick_vit_xtiny448", "ritm_hrnet18s"])
def test_coord_features_match_official(golden, model):
    io = np.load(golden / "equivalence" / f"{model}_io.npz")
    x = torch.from_numpy(io["input"])
    points = torch.from_numpy(io["points"])
    height, width = x.shape[2:]
    got = coord_features(x[:, 3:], points, height, width).numpy()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, io["coord_features"])
    # Both polarities carry disks (2 positive clicks, 1 negative).
    assert got[0, 1].sum() > got[0, 2].sum() > 0


def test_disk_maps_drop_only_points_with_both_coordinates_negative():
    points = torch.tensor([[[-3.0, 10.0, 0.0], [-1.0, -1.0, -1.0]]], dtype=torch.float64)
    maps = disk_maps(points, 20, 20)
    # (row -3, col 10) is kept: its disk reaches row 2 at col 10 (5^2 <= 25), not row 3.
    assert (
        maps[0, 0, 2, 10] == 1
        and maps[0, 0, 3, 10] == 0
        and maps[0, 0, 0, 14] == 1
        and maps[0, 0, 0, 15] == 0
    )
    assert maps[0, 1].sum() == 0
    dropped = torch.tensor([[[-0.5, -2.0, 0.0], [-1.0, -1.0, -1.0]]], dtype=torch.float64)
    assert disk_maps(dropped, 20, 20).sum() == 0


def test_normalize_image_uses_imagenet_statistics():
    x = torch.full((1, 3, 2, 2), 0.5)
    out = normalize_image(x)
    expected = (0.5 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(out[0, :, 0, 0], expected)


# --- points tensor (PROTOCOL.md 6.5) ----------------------------------------------------------


@pytest.mark.parametrize("model", ["simpleclick_vit_xtiny448", "ritm_hrnet18s"])
def test_points_tensor_matches_official_encoding(golden, model):
    record = json.loads((golden / "equivalence" / "summary.json").read_text())["models"][model]
    clicks = [Click(c["y"], c["x"], c["is_positive"]) for c in record["clicks"]]
    points = points_tensor([net_clicks(clicks)])
    assert points.dtype == torch.int64  # untransformed clicks: integer tensor
    assert points.tolist() == record["points_tensor"]


def test_points_tensor_pads_truncates_and_types_like_official():
    clicks = net_clicks(
        [Click(1, 2, True), Click(3, 4, False), Click(5, 6, False), Click(7, 8, True)]
    )
    points = points_tensor([clicks, clicks[:1]])
    assert points.shape == (2, 4, 3)
    assert points[0].tolist() == [[1, 2, 0], [7, 8, 3], [3, 4, 1], [5, 6, 2]]
    assert points[1].tolist() == [[1, 2, 0], [-1, -1, -1], [-1, -1, -1], [-1, -1, -1]]
    # Limit 1: the first click only; M = min(limit, max count) = 1.
    limited = points_tensor([clicks], net_clicks_limit=1)
    assert limited.tolist() == [[[1, 2, 0], [-1, -1, -1]]]
    mapped = [c._replace(row=c.row * 0.5) for c in clicks]
    assert points_tensor([mapped]).dtype == torch.float64


# --- ZoomIn pieces (PROTOCOL.md 6.3) ----------------------------------------------------------


def test_expand_box_rounds_half_to_even_and_keeps_min_size():
    # centre 10.5, height max(1.4 * 10, 200) = 200: 10.5 - 100 = -89.5 -> -90, 110.5 -> 110.
    assert expand_box((6, 15, 6, 15), 1.4, 200) == (-90, 110, -90, 110)
    # width 1.4 * 250 = 350 about centre 124.5: -50.5 -> -50, 299.5 -> 300.
    assert expand_box((0, 9, 0, 249), 1.4, 200)[2:] == (-50, 300)


def test_box_iou_uses_per_axis_hull():
    assert box_iou((0, 9, 0, 9), (0, 9, 0, 9)) == 1.0
    # rows: inter 5, hull 15; cols identical.
    assert box_iou((0, 9, 0, 9), (5, 14, 0, 9)) == pytest.approx(5 / 15)
    assert box_iou((0, 9, 0, 9), (20, 29, 0, 9)) == 0.0


def test_positive_click_on_last_roi_row_counts_as_outside():
    roi = (10, 20, 10, 20)
    assert positives_inside(roi, net_clicks([Click(19, 19, True), Click(30, 30, False)]))
    assert not positives_inside(roi, net_clicks([Click(20, 15, True)]))
    assert not positives_inside(roi, net_clicks([Click(15, 20, True)]))


def test_roi_image_size_int_target_keeps_aspect_and_tuple_is_exact():
    assert roi_image_size((0, 99, 0, 199), 400) == (200, 400)
    assert roi_image_size((0, 99, 0, 199), (448, 448)) == (448, 448)
    # 201 x 301 -> scale 400/301: 201 * 1.3289 = 267.1 -> 267.
    assert roi_image_size((0, 200, 0, 300), 400) == (267, 400)


def test_clicks_map_to_crop_by_pixel_area_scaling():
    mapped = clicks_to_crop(net_clicks([Click(50, 20, True)]), (40, 139, 10, 59), (200, 100))
    assert mapped[0].row == 200 * 10 / 100 and mapped[0].col == 100 * 10 / 50


def test_ritm_stale_roi_quirk_pastes_full_image_prediction_into_old_roi():
    """Skip >= 0 and an empty previous prediction: forward is the full image unchanged, but the
    inverse still squeezes the full-image map into the stored ROI (PROTOCOL.md 6.3, quirk)."""
    config = ritm_cvpr_zoom_in("GrabCut")
    image = torch.rand(1, 4, 60, 80)
    empty_prev = torch.zeros(1, 1, 60, 80)
    state = ZoomState(roi=(10, 29, 20, 59), roi_image_hw=(200, 400), has_prev=True)
    clicks = net_clicks([Click(15, 30, True), Click(40, 5, False)])
    view, after = zoom_forward(config, state, image, empty_prev, clicks)
    assert not view.zoomed and view.image is image and view.clicks == clicks
    assert after == state
    full = torch.ones(1, 1, 60, 80)
    back, _ = zoom_inverse(after, full, (60, 80))
    inside = back[0, 0, 10:30, 20:60]
    torch.testing.assert_close(inside, torch.ones_like(inside))
    assert back.sum() == inside.sum()  # zero outside the stale ROI


def test_flip_mirrors_columns_in_network_frame_and_averages_logits():
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(1, 2, 3, 5)
    batch, lists = flip_forward(x, [net_clicks([Click(1, 0, True)])])
    assert torch.equal(batch[1], x[0].flip(-1))
    assert lists[1][0].col == 4 and lists[1][0].row == 1
    logits = torch.stack([x[0, :1], x[0, :1].flip(-1) + 2])
    torch.testing.assert_close(flip_inverse(logits), x[:, :1] + 1, rtol=0, atol=0)


def test_zoom_in_settings_per_dataset():
    assert simpleclick_cvpr_zoom_in("DAVIS").target_size == (672, 672)
    assert simpleclick_cvpr_zoom_in("GrabCut") == ZoomInConfig((448, 448), skip_clicks=-1)
    assert ritm_cvpr_zoom_in("DAVIS") == ZoomInConfig(600, skip_clicks=1)
    assert ritm_cvpr_zoom_in("Berkeley").target_size == 400


# --- the whole predictor around the official FakeClickNet (golden/README.md section 4) -------


def fake_click_net(x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """FakeClickNet of golden/README.md section 4, in float64.

    Each click only reaches pixels closer than rr, so the kernel is evaluated on that window;
    outside it k = 0 and the running sum is unchanged, which keeps the values identical.
    """
    height, width = x.shape[2:]
    rr = 0.15 * min(height, width)
    r2 = rr * rr
    rows = points.to(torch.float64).cpu().numpy()
    n_pos = rows.shape[1] // 2
    out = []
    for b in range(x.shape[0]):
        acc = np.zeros((height, width))
        for j, (y, x_, index) in enumerate(rows[b]):
            if index < 0:
                continue
            r0, r1 = max(0, math.floor(y - rr)), min(height, math.ceil(y + rr) + 1)
            c0, c1 = max(0, math.floor(x_ - rr)), min(width, math.ceil(x_ + rr) + 1)
            if r0 >= r1 or c0 >= c1:
                continue
            yy = np.arange(r0, r1, dtype=np.float64)[:, None] - y
            xx = np.arange(c0, c1, dtype=np.float64)[None, :] - x_
            k = np.maximum(0, 1 - (yy * yy + xx * xx) / r2)
            window = acc[r0:r1, c0:c1]
            acc[r0:r1, c0:c1] = window + 8 * k if j < n_pos else window - 8 * k
        prev = x[b, 3].to(torch.float64).cpu().numpy()
        out.append((6 * (prev - 0.5) + acc) - 1)
    return torch.from_numpy(np.stack(out)[:, None].astype(np.float32))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The pipeline is elementwise work on small maps: on the 2-core test machine, running
    alongside other tests, torch's thread pool costs more than it gains (values are unchanged)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ZOOM_SETTINGS = {"simpleclick": simpleclick_cvpr_zoom_in, "ritm": ritm_cvpr_zoom_in}


@pytest.fixture(scope="module")
def pipeline_golden(golden):
    return json.loads((golden / "pipeline" / "pipeline_fake_net.json").read_text())


def run_official_loop(predictor, sample, n_clicks):
    """The official per-instance loop (PROTOCOL.md 3) with the harness' click rule and IoU."""
    predictor.start(sample)
    clicks: list[Click] = []
    pred = np.zeros(sample.gt.shape, dtype=bool)
    for _ in range(n_clicks):
        clicks.append(next_click(sample.gt, pred, [(c.y, c.x) for c in clicks]))
        prob = predictor.predict(clicks)
        assert prob.dtype == np.float32 and prob.shape == sample.gt.shape
        pred = prob > PRED_THR
        state = predictor.state.zoom
        yield clicks[-1], prob, iou(sample.gt, pred), state


def check_instances(pipeline_golden, golden, data_root, setting, picks):
    record = pipeline_golden["settings"][setting]
    saved = np.load(golden / "pipeline" / f"{setting}_eval_probs.npz")
    saved_clicks = [int(k) for k in saved["saved_clicks"]]
    predictor = EvalPredictor(fake_click_net, ZOOM_SETTINGS[setting])
    refs = {}
    for dataset, index in picks:
        inst = next(
            i for i in record["instances"] if i["dataset"] == dataset and i["index"] == index
        )
        if dataset not in refs:
            refs[dataset] = list_samples(dataset.lower(), data_root)
        sample = refs[dataset][index].load()[0]
        assert f"{sample.id}.jpg" == inst["image"] and list(sample.gt.shape) == inst["hw"]
        steps = run_official_loop(predictor, sample, len(inst["per_click"]))
        for k, (step, want) in enumerate(zip(steps, inst["per_click"]), start=1):
            click, prob, got_iou, zoom = step
            where = f"{setting} {dataset}[{index}] click {k}"
            assert (click.y, click.x, click.positive) == (
                want["y"],
                want["x"],
                want["is_positive"],
            ), where
            assert (list(zoom.roi) if zoom.roi else None) == want["roi"], where
            hw = list(zoom.roi_image_hw) if zoom.roi_image_hw else None
            assert hw == want["roi_image_hw"], where
            assert got_iou == pytest.approx(want["iou"], abs=1e-6), where
            summary = want["prob"]
            assert int((prob > PRED_THR).sum()) == summary["n_above_thr"], where
            assert float(prob.sum(dtype=np.float64)) == pytest.approx(summary["sum"], abs=1e-2)
            assert float(prob.max()) == pytest.approx(summary["max"], abs=1e-6), where
            if index == 0 and k in saved_clicks:
                ref = saved[f"{dataset}_0_probs_at_clicks"][saved_clicks.index(k)]
                np.testing.assert_allclose(prob, ref, rtol=0, atol=1e-4, err_msg=where)


@pytest.mark.parametrize("setting", ["simpleclick", "ritm"])
def test_fake_net_pipeline_matches_official_on_first_instances(
    pipeline_golden, golden, data_root, setting
):
    """GrabCut[0] and DAVIS[0] (whose full maps are stored), 20 clicks of the real loop."""
    check_instances(pipeline_golden, golden, data_root, setting, [("GrabCut", 0), ("DAVIS", 0)])


@pytest.mark.parametrize("setting", ["simpleclick", "ritm"])
def test_fake_net_pipeline_matches_official_on_other_recorded_instances(
    pipeline_golden, golden, data_root, setting
):
    picks = [(i["dataset"], i["index"]) for i in pipeline_golden["settings"][setting]["instances"]]
    picks = [p for p in picks if p[1] != 0]
    assert len(picks) == 10  # GrabCut 1..7, DAVIS 1..3
    check_instances(pipeline_golden, golden, data_root, setting, picks)


def test_predictor_casts_forward_inputs_and_reports_dataset_changes():
    seen: list[tuple] = []
    datasets: list[str] = []

    def forward(x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        seen.append((x.dtype, tuple(x.shape), points.dtype))
        return (x[:, 3:] - 0.5).to(x.dtype) + 3.0  # positive logits everywhere

    predictor = EvalPredictor(
        forward, ritm_cvpr_zoom_in, dtype=torch.float64, on_dataset=datasets.append
    )
    image = np.zeros((50, 70, 3), dtype=np.uint8)
    gt = np.zeros((50, 70), dtype=np.int8)
    for name in ("GrabCut", "GrabCut", "DAVIS"):
        predictor.start(Sample("x", image, gt, name))
    assert datasets == ["GrabCut", "DAVIS"]
    prob = predictor.predict([Click(10, 20, True)])
    assert prob.dtype == np.float32 and prob.shape == (50, 70)
    # RITM click 1: native size, flip batch of 2, integer points; sigmoid(2.5) everywhere.
    assert seen[-1] == (torch.float64, (2, 4, 50, 70), torch.int64)
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-2.5)), rtol=1e-6)
    predictor.predict([Click(10, 20, True), Click(40, 60, False)])
    # Click 2 zooms (DAVIS: longest side 600): ROI = the whole 50 x 70 image -> 429 x 600.
    assert seen[-1] == (torch.float64, (2, 4, 429, 600), torch.float64)


def test_flip_halves_are_averaged_as_logits_before_the_sigmoid():
    """FakeClickNet is mirror-symmetric, so the golden run cannot tell logit from probability
    averaging; a network whose two halves disagree can (PROTOCOL.md 6.1 step 6)."""

    def forward(x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        halves = torch.tensor([4.0, -2.0]).view(2, 1, 1, 1)
        return halves.expand(2, 1, *x.shape[2:]).clone()

    predictor = EvalPredictor(forward, simpleclick_cvpr_zoom_in)
    predictor.start(Sample("x", np.zeros((30, 40, 3), np.uint8), np.zeros((30, 40), np.int8), "G"))
    prob = predictor.predict([Click(5, 5, True)])
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-1.0)), rtol=1e-6)


def test_disk_maps_round_the_float64_difference_like_official_in_place_subtraction():
    """Official DistMaps subtracts float64 zoomed clicks in place from a float32 grid: the
    difference is formed in float64 and rounded, not the click rounded first (PROTOCOL.md 7.1)."""
    row = 1000.00003  # float32(row) == 1000.0, but float32(995 - row) == -5.00003
    grid = torch.arange(1001, dtype=torch.float32)
    grid.add_(-torch.tensor([row], dtype=torch.float64))  # the official operation
    assert grid[995] * grid[995] > 25
    as_float64 = torch.tensor([[[row, 0.0, 0.0], [-1, -1, -1]]], dtype=torch.float64)
    as_float32 = as_float64.to(torch.float32)
    assert disk_maps(as_float64, 1001, 3)[0, 0, 995, 0] == 0
    assert disk_maps(as_float32, 1001, 3)[0, 0, 995, 0] == 1
