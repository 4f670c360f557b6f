"""Hand-derived cases for the rules of PROTOCOL.md section 2 and 4 that golden data may not
isolate: ties, padding, ignore bands, clicked pixels, the degenerate click, float32 NoC."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bench import metrics, protocol
from bench.sample import Click


def official_rule(gt, pred, clicked=()):
    """Reference implementation with scipy's exact EDT on the whole padded image."""
    valid = gt != -1
    fn = (gt == 1) & ~pred & valid
    fp = (gt != 1) & pred & valid
    maps = []
    for mask in (fn, fp):
        dt = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        for y, x in clicked:
            dt[y, x] = 0
        maps.append(dt)
    positive = maps[0].max() > maps[1].max()
    chosen = maps[0] if positive else maps[1]
    ys, xs = np.where(chosen == chosen.max())
    return Click(int(ys[0]), int(xs[0]), bool(positive))


def test_first_click_is_interior_most_object_pixel():
    gt = np.zeros((9, 11), np.int8)
    gt[2:7, 3:10] = 1  # 5 x 7 block: centre row 4, cols 5..7 tie at distance 3
    click = protocol.next_click(gt, np.zeros_like(gt, bool))
    assert click == Click(4, 5, True)


def test_region_touching_border_counts_outside_as_non_error():
    gt = np.zeros((6, 6), np.int8)
    gt[0:3, :] = 1  # touches top, left and right edges
    click = protocol.next_click(gt, np.zeros_like(gt, bool))
    # (1, 1) is 2 px from the padded top row, the padded left column and row 3; it is the
    # first such pixel in raster order. Without the padding, row 0 would be 3 px from row 3.
    assert click == Click(1, 1, True)


def test_tie_between_fn_and_fp_gives_negative_click():
    gt = np.zeros((5, 10), np.int8)
    gt[1:4, 1:4] = 1
    pred = np.zeros_like(gt, bool)
    pred[1:4, 6:9] = True  # FP block the same shape as the FN block
    assert protocol.next_click(gt, pred) == Click(2, 7, False)


def test_nothing_wrong_gives_negative_click_at_origin():
    gt = np.zeros((4, 4), np.int8)
    gt[1:3, 1:3] = 1
    assert protocol.next_click(gt, gt == 1) == Click(0, 0, False)


def test_clicked_pixel_is_never_clicked_twice():
    gt = np.zeros((7, 7), np.int8)
    gt[2:5, 2:5] = 1
    first = protocol.next_click(gt, np.zeros_like(gt, bool))
    second = protocol.next_click(gt, np.zeros_like(gt, bool), [(first.y, first.x)])
    assert first == Click(3, 3, True)
    assert second.positive and (second.y, second.x) != (3, 3)
    assert second == official_rule(gt, np.zeros_like(gt, bool), [(3, 3)])


def test_ignore_band_is_a_boundary_and_excluded_from_iou():
    gt = np.zeros((8, 8), np.int8)
    gt[1:7, 1:7] = 1
    gt[1:7, 4] = -1  # ignore column splits the object
    pred = np.zeros_like(gt, bool)
    click = protocol.next_click(gt, pred)
    assert gt[click.y, click.x] == 1
    pred[:, :4] = True
    # I = 18 object pixels left of the band, U = 18 + 12 right FN + 6 FP outside object
    # rows 0 and 7 in cols 0..3 (8) and col 0 rows 1..6 (6): FP = 14; U = 18 + 12 + 14
    assert protocol.iou(gt, pred) == np.float32(18 / (18 + 12 + 14))


def test_iou_of_nothing_is_nan():
    gt = np.zeros((3, 3), np.int8)
    assert np.isnan(protocol.iou(gt, np.zeros_like(gt, bool)))


@pytest.mark.parametrize("seed", range(25))
def test_matches_reference_rule_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(5, 60, size=2)
    gt = (ndimage.gaussian_filter(rng.random((h, w)), 2) > 0.5).astype(np.int8)
    gt[rng.random((h, w)) < 0.05] = -1
    pred = ndimage.gaussian_filter(rng.random((h, w)), 2) > 0.5
    clicked = [tuple(int(v) for v in rng.integers(0, (h, w))) for _ in range(3)]
    assert protocol.next_click(gt, pred, clicked) == official_rule(gt, pred, clicked)


def test_noc_compares_in_float32():
    # 0.89999998 rounds to float32 0.9 == float32(0.9000000000000001): reached in the NoC.
    ious = np.array([0.5, 0.89999998, 0.95], dtype=np.float32)
    assert metrics.noc(ious, metrics.official_threshold(0.90)) == 2


def test_nof_counts_a_hit_at_the_last_click():
    ious = np.zeros(20, np.float32)
    ious[-1] = 0.95
    values = metrics.nocs([ious], metrics.official_threshold(0.90))
    assert values.tolist() == [20] and metrics.nof(values) == 1


def test_nof_never_reached_rule_is_the_named_fix():
    at_last = np.zeros(20, np.float32)
    at_last[-1] = 0.95
    never = np.zeros(20, np.float32)
    thr = metrics.official_threshold(0.90)
    assert metrics.nof(metrics.nocs([at_last, never], thr)) == 2
    assert metrics.nof_never_reached([at_last, never], thr) == 1
