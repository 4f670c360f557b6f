"""FocalClick's HRNet-18s-S2: RITM's HRNet-OCR with the FocalClick refiner.

ClickSEG d61a76b `isegm/model/is_hrnet_model.py:HRNetModel` (pipeline S2) builds the same
`isegm/model/modeling/hrnet_ocr.py:HighResolutionNet` as RITM (same names, shapes and forward;
golden/clickseg/manifests/focalclick_hrnet18s_s2.json lists RITM's HRNet-18s state_dict
followed by the refiner), so the backbone and OCR head are `bench.adapters.ritm.network`'s. What
differs: the forward also returns the OCR feature (2 x ocr_width = 96 channels at 1/4), which
the refiner RoIAligns, and the `RefineLayer` of `is_hrnet_model.py` has no `feature_gate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.adapters.clickseg.refiner import FocalRefineMixin, RefineLayer
from bench.adapters.common.click_maps import coord_features, normalize_image
from bench.adapters.ritm.network import HRNET_VARIANTS, HighResolutionNet, ScaleLayer

__all__ = ["OFFICIAL_CLASS", "FocalHRNetModel", "hrnet_config_check"]

OFFICIAL_CLASS = "isegm.model.is_hrnet_model.HRNetModel"


class FocalHRNetModel(FocalRefineMixin, nn.Module):
    """FocalClick HRNet-S2: `model(x, points)` -> instances, instances_aux (logits at the input
    size), feature (OCR feature at 1/4), click_map; `model.refine(...)` for the focus crop."""

    with_prev_mask = True

    def __init__(self, variant: str = "hrnet18s") -> None:
        super().__init__()
        config = HRNET_VARIANTS[variant]
        self.variant = variant
        self.maps_transform = nn.Sequential(
            nn.Conv2d(3, 16, 1),
            nn.LeakyReLU(negative_slope=0.2),
            nn.Conv2d(16, 64, 3, stride=2, padding=1),
            ScaleLayer(init_value=0.05),
        )
        self.feature_extractor = HighResolutionNet(
            width=config.width, ocr_width=config.ocr_width, small=config.small
        )
        self.refiner = RefineLayer(feature_indim=2 * config.ocr_width, feature_gate=False)

    def forward(self, x: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 4:
            raise ValueError(f"expected B x 4 x H x W (RGB + previous mask), got {tuple(x.shape)}")
        height, width = x.shape[2:]
        image = normalize_image(x[:, :3])
        coords = coord_features(x[:, 3:], points, height, width)
        net = self.feature_extractor
        feats = net.hrnet_features(image, self.maps_transform(coords))
        aux = net.aux_head(feats)
        feats = net.conv3x3_ocr(feats)
        feats = net.ocr_distri_head(feats, net.ocr_gather_head(feats, aux))
        main = net.cls_head(feats)
        size = (height, width)
        return {
            "instances": F.interpolate(main, size=size, mode="bilinear", align_corners=True),
            "instances_aux": F.interpolate(aux, size=size, mode="bilinear", align_corners=True),
            "feature": feats,
            "click_map": coords[:, 1:],
        }


def hrnet_config_check(params: Mapping[str, Any]) -> None:
    """Refuse a saved FocalClick `HRNetModel` config other than HRNet-18s-S2."""
    found = (params.get("width"), params.get("ocr_width"), params.get("small"))
    if found != (18, 48, True):
        raise ValueError(
            f"HRNet width {found[0]}, OCR width {found[1]}, small={found[2]}: only FocalClick "
            "HRNet-18s (18, 48, small) is implemented"
        )
    if params.get("pipeline_version", "s1") != "s2":
        raise ValueError(
            f"pipeline_version {params.get('pipeline_version')!r}: only S2 is implemented"
        )
