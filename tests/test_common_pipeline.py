"""Shared evaluation-time pipeline against the official code's golden outputs (golden/README.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.adapters.common.click_maps import coord_features, disk_maps, normalize_image


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
