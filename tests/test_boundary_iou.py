"""`bench.protocol.boundary_iou` against the official functions (golden/metrics/boundary_iou.json
+ .npz): RClicks' `get_boundary_iou` on every case, sam-hq's `boundary_iou` where there is no
ignore pixel, the GT band pixel for pixel and the integer counts exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench import protocol


@pytest.fixture(scope="module")
def fixture(golden):
    folder = golden / "metrics"
    return json.loads((folder / "boundary_iou.json").read_text()), np.load(
        folder / "boundary_iou.npz"
    )


def same(a: float, b: float, **tol) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, **tol)


def test_every_real_case_equals_rclicks_and_samhq_without_ignore(fixture):
    reference, arrays = fixture
    checked = samhq_checked = 0
    for case in reference["cases"]:
        key = f"{case['dataset']}_{case['index']}"
        g = arrays[f"{key}_g"].astype(np.int64)
        d = protocol.boundary_width(g.shape)
        assert d == int(case["dilation_d"])
        band = protocol.mask_boundary(g == 1, d)
        np.testing.assert_array_equal(band, arrays[f"{key}_gt_boundary"].astype(bool))
        target = protocol.BoundaryTarget.from_gt(g)
        no_ignore = np.where(g == -1, 0, g)
        for name, result in case["results"].items():
            pred = arrays[f"{key}_pred_{name}"].astype(bool)
            value = protocol.boundary_iou(g, pred)
            assert same(value, result["rclicks_get_boundary_iou"], rel=1e-12, abs=0), (key, name)
            assert same(protocol.boundary_iou_from_target(target, pred), value, rel=0, abs=0)
            # the counts behind the ratio, exactly
            pred_band = protocol.mask_boundary(pred, d)
            valid = g != -1
            assert np.count_nonzero(pred_band) == result["pred_boundary_pixels"]
            assert (
                np.count_nonzero(pred_band & band & valid)
                == result["boundary_intersection_not_ignored"]
            )
            assert (
                np.count_nonzero((pred_band | band) & valid) == result["boundary_union_not_ignored"]
            )
            ignore_as_background = protocol.boundary_iou(no_ignore, pred)
            assert same(
                ignore_as_background,
                result["rclicks_get_boundary_iou_ignore_as_background"],
                rel=1e-12,
                abs=0,
            )
            assert same(
                float(np.float32(ignore_as_background)), result["samhq_boundary_iou_float32"]
            )
            if int(case["n_ignore"]) == 0:
                assert same(float(np.float32(value)), result["samhq_boundary_iou_float32"])
                samhq_checked += 1
            checked += 1
    assert checked == 140 and samhq_checked >= 100


def test_edge_cases(fixture):
    reference, arrays = fixture
    for case in reference["edge_cases"]:
        name = case["name"]
        g = arrays[f"edge_{name}_g"].astype(np.int64)
        pred = arrays[f"edge_{name}_pred"].astype(bool)
        assert protocol.boundary_width(g.shape) == case["dilation_d"]
        value = protocol.boundary_iou(g, pred)
        assert same(value, case["rclicks_get_boundary_iou"], rel=1e-12, abs=0), name
        if not (g == -1).any():
            assert same(float(np.float32(value)), case["samhq_boundary_iou_float32"]), name
