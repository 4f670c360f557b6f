"""FocalClick's refiner: the local refinement network run on the focus crop.

Reproduces `isegm/model/is_segformer_model.py:RefineLayer` with its `ConvModule` (the module's
own conv + BatchNorm + ReLU class, which shadows mmcv's of the same name) and `XConvBnRelu`
(ClickSEG d61a76b); `is_hrnet_model.py` builds the same `RefineLayer` with the HRNet feature
width. The `refine` step around it (two RoIAligns and the click disks) lives in
`FocalRefineMixin.refine`, shared by the SegFormer and HRNet models
(`SegFormerModel.refine` / `HRNetModel.refine`, golden/clickseg/README.md quirk 8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.adapters.clickseg.roi_align import roi_align
from bench.adapters.common.click_maps import disk_maps

__all__ = ["ConvBnRelu", "FocalRefineMixin", "RefineLayer", "XConvBnRelu"]


class ConvBnRelu(nn.Module):
    """Conv (with bias) -> BatchNorm -> ReLU; official `is_segformer_model.py:ConvModule`."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding)
        self.norm = nn.BatchNorm2d(out_ch)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv(x)))


class XConvBnRelu(nn.Module):
    """Depthwise 3x3, pointwise 1x1, BatchNorm, ReLU (official `XConvBnRelu`)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv3x3 = nn.Conv2d(in_ch, in_ch, 3, 1, 1, groups=in_ch)
        self.conv1x1 = nn.Conv2d(in_ch, out_ch, 1, 1, 0)
        self.norm = nn.BatchNorm2d(out_ch)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv1x1(self.conv3x3(x))))


def _resize(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear", align_corners=True)


class RefineLayer(nn.Module):
    """Refined logits and trimap of the focus crop (official `RefineLayer`, feature_dims 32).

    Input: the crop's RGB in [0, 1] (not normalised), its two click disk maps, the RoIAligned
    coarse feature and the RoIAligned coarse logits. The SegFormer models' `feature_gate` is
    built (and saved in the checkpoints) but never used by the official forward; the HRNet
    model's RefineLayer (`is_hrnet_model.py`) has none.
    """

    def __init__(
        self, feature_indim: int = 256, feature_dims: int = 32, feature_gate: bool = True
    ) -> None:
        super().__init__()
        self.image_conv1 = ConvBnRelu(6, feature_dims, 3, 2, 1)
        self.image_conv2 = XConvBnRelu(feature_dims, feature_dims)
        self.image_conv3 = XConvBnRelu(feature_dims, feature_dims)
        self.refine_fusion = ConvBnRelu(feature_indim, feature_dims, 1, 1, 0)
        self.refine_fusion2 = XConvBnRelu(feature_dims, feature_dims)
        self.refine_fusion3 = XConvBnRelu(feature_dims, feature_dims)
        if feature_gate:
            self.feature_gate = nn.Sequential(nn.Conv2d(feature_dims, 1, 1), nn.Sigmoid())
        self.refine_pred = nn.Conv2d(feature_dims, 1, 3, 1, 1)
        self.refine_trimap = nn.Conv2d(feature_dims, 1, 3, 1, 1)

    def forward(
        self,
        image: torch.Tensor,
        click_map: torch.Tensor,
        feature: torch.Tensor,
        logits: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([image, click_map, torch.sigmoid(logits)], 1)
        feature = self.refine_fusion(feature)
        image_feature = self.image_conv3(self.image_conv2(self.image_conv1(x)))
        fused = _resize(feature, image_feature.shape[2:]) + image_feature
        fused = self.refine_fusion3(self.refine_fusion2(fused))
        pred = _resize(self.refine_pred(fused), x.shape[2:])
        trimap = _resize(self.refine_trimap(fused), x.shape[2:])
        gate = torch.sigmoid(trimap)
        return pred * gate + logits * (1 - gate), trimap


class FocalRefineMixin:
    """`refine(...)` of the FocalClick models; needs `self.refiner` (a `RefineLayer`)."""

    refiner: RefineLayer

    def refine(
        self,
        cropped_image: torch.Tensor,
        cropped_points: torch.Tensor,
        full_feature: torch.Tensor,
        full_logits: torch.Tensor,
        bboxes: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Official `refine`: `bboxes` is 1 x 5 `[0, x1, y1, x2, y2]` in the S x S input frame.

        The feature is RoIAligned at its own size with spatial scale 1/r, r = S / feature
        width; the logits at the crop size with scale 1; click disks have radius 5.
        """
        ratio = cropped_image.shape[-1] / full_feature.shape[-1]
        feature = roi_align(
            full_feature, bboxes, tuple(full_feature.shape[2:]), 1 / ratio, aligned=True
        )
        logits = roi_align(full_logits, bboxes, tuple(cropped_image.shape[2:]), 1, aligned=True)
        height, width = cropped_image.shape[2:]
        click_map = disk_maps(cropped_points, height, width).to(cropped_image.dtype)
        refined, trimap = self.refiner(cropped_image, click_map, feature, logits)
        return {"instances_refined": refined, "trimap": trimap, "instances_coarse": logits}
