"""CDNet (Chen et al., ICCV 2021) as ClickSEG builds it: DeepLabV3+ ResNet-34 with the
feature-diffusion module (FDM) and the pixel-diffusion module (PDM).

An independent implementation of ClickSEG d61a76b:

* `isegm/model/is_deeplab_model.py:DeeplabModel` (and `is_model.py:ISModel`: normalisation,
  `maps_transform` with LeakyReLU), click disks of radius 5 and the FDM's radius-24 disks resized
  to ceil(h/8) x ceil(w/8) (bilinear, align_corners=True);
* `isegm/model/modeling/deeplab_v3.py:DeepLabV3Plus`, `_SkipProject`, `_DeepLabHead`, `_ASPP`,
  `_AsppPooling`, `_ASPPConv` (rates 12, 24, 36);
* `isegm/model/modeling/resnet.py:ResNetBackbone` over `resnetv1b.py:resnet34_v1b`
  (BasicBlockV1b, dilated: output stride 8, layer3 dilation 2 and layer4 dilation 4 with the
  first block of each one dilation step lower);
* `isegm/model/modeling/basic_blocks.py:SeparableConv2d` / `SepConvHead`;
* `isegm/model/modeling/cdnet/FDM.py:FDM_v3` (the one `DeepLabV3Plus` builds) and
  `cdnet/PDM.py:PDM` with its `LocalAffinity*` shift kernels.

Names and registration order follow the official modules, so `state_dict()` lists the manifest's
names in order (golden/clickseg/manifests/cdnet_resnet34.json) and checkpoints load with
`strict=True`. `latent_head` and `fdm_instances` are computed, as official, but the evaluation
predictor uses only `instances`, `click_map` and `PixelDiffusion` (README quirks 11-13).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.adapters.common.click_maps import disk_maps, normalize_image
from bench.adapters.ritm.network import ScaleLayer

__all__ = ["OFFICIAL_CLASS", "CDNetModel", "PixelDiffusion", "cdnet_config_check"]

OFFICIAL_CLASS = "isegm.model.is_deeplab_model.DeeplabModel"


def _resize(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear", align_corners=True)


class BasicBlockV1b(nn.Module):
    """ResNet basic block with separate dilations for its two convs (`resnetv1b.py`)."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        previous_dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, padding=previous_dilation, dilation=previous_dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


def _layer(inplanes: int, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
    """`ResNetV1b._make_layer` (no avg_down) for BasicBlockV1b."""
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
        )
    first_dilation = 2 if dilation == 4 else 1
    layers = [BasicBlockV1b(inplanes, planes, stride, first_dilation, dilation, downsample)]
    layers += [BasicBlockV1b(planes, planes, 1, dilation, dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNet34Backbone(nn.Module):
    """Dilated ResNet-34 v1b trunk (`resnet.py:ResNetBackbone`): the click features are added
    (zero-padded to 64 channels) after the stem's ReLU, before the max-pool."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _layer(64, 64, 3, 1, 1)
        self.layer2 = _layer(64, 128, 4, 2, 1)
        self.layer3 = _layer(128, 256, 6, 1, 2)
        self.layer4 = _layer(256, 512, 3, 1, 4)

    def forward(
        self, x: torch.Tensor, additional: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        x = self.relu(self.bn1(self.conv1(x)))
        if additional is not None:
            pad = x.shape[1] - additional.shape[1]
            x = x + F.pad(additional, [0, 0, 0, 0, 0, pad], mode="constant", value=0)
        x = self.maxpool(x)
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c1, c2, c3, c4


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 (no biases), BatchNorm, ReLU (`basic_blocks.py`)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, in_ch, 3, padding=1, bias=False, groups=in_ch),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SepConvHead(nn.Module):
    """`num_layers` separable convs then a 1x1 conv to `num_outputs` (`basic_blocks.py`)."""

    def __init__(self, num_outputs: int, in_ch: int, mid_ch: int, num_layers: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            SeparableConv2d(in_ch if i == 0 else mid_ch, mid_ch) for i in range(num_layers)
        ]
        layers.append(nn.Conv2d(mid_ch, num_outputs, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            in_ch,
            out_ch,
            kernel,
            padding=dilation if kernel == 3 else 0,
            dilation=dilation,
            bias=False,
        ),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(),
    )


class AsppPooling(nn.Module):
    """Global average pool, 1x1 conv-BN-ReLU, broadcast back (`_AsppPooling`)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.gap = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _resize(self.gap(x), x.shape[2:])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling, rates 12, 24, 36 (`_ASPP`); dropout 0.2 in `project`."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float) -> None:
        super().__init__()
        self.concurent = nn.ModuleList(
            [
                _conv_bn_relu(in_ch, out_ch),
                *(_conv_bn_relu(in_ch, out_ch, 3, rate) for rate in (12, 24, 36)),
                AsppPooling(in_ch, out_ch),
            ]
        )
        project: list[nn.Module] = [*_conv_bn_relu(5 * out_ch, out_ch)]
        if dropout > 0:
            project.append(nn.Dropout(dropout))
        self.project = nn.Sequential(*project)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([block(x) for block in self.concurent], dim=1))


class FDM(nn.Module):
    """Feature diffusion (`cdnet/FDM.py:FDM_v3`): non-local attention whose keys are weighted by
    the positive (negative) click disks plus the confident (> 0.8) gate regions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate_head_pos = SepConvHead(1, channels, channels)
        self.t = nn.Conv2d(channels, channels, 1, bias=False)
        self.p = nn.Conv2d(channels, channels, 1, bias=False)
        self.g = nn.Conv2d(channels, channels, 1, bias=False)
        # A module, as official: thop counts it (2 x 15.9 M ops at 384, golden compute.json).
        self.softmax = nn.Softmax(dim=2)
        self.z = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.z2 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def _branch(
        self,
        att: torch.Tensor,
        weight: torch.Tensor,
        gate: torch.Tensor,
        g: torch.Tensor,
        shape: tuple[int, int, int, int],
    ) -> torch.Tensor:
        b, c, h, w = shape
        a = self.softmax((att * weight).view(b, h * w, h * w))
        a = (a.view(b, h, w, h * w) * gate.permute(0, 2, 3, 1)).view(b, w * h, w * h)
        return torch.bmm(a, g).permute(0, 2, 1).contiguous().view(b, c, h, w)

    def forward(
        self, x: torch.Tensor, click_maps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        residual = x
        t, p, g = self.t(x), self.p(x), self.g(x)
        b, c, h, w = t.shape
        t = t.view(b, c, -1).permute(0, 2, 1)
        p = p.view(b, c, -1)
        g = g.view(b, c, -1).permute(0, 2, 1)
        gate_pos = torch.sigmoid(self.gate_head_pos(x))
        gate_neg = 1 - gate_pos
        weight_pos = click_maps[:, 0, :, :].unsqueeze(1) + (gate_pos > 0.8) * 1.0
        weight_neg = click_maps[:, 1, :, :].unsqueeze(1) + (gate_neg > 0.8) * 1.0
        att = torch.bmm(t, p).view(b, h * w, h, w)
        x_pos = self.z(self._branch(att, weight_pos, gate_pos, g, (b, c, h, w)))
        x_neg = self.z2(self._branch(att, weight_neg, gate_neg, g, (b, c, h, w)))
        return self.bn(x_pos) + residual + self.bn2(x_neg), gate_pos, gate_neg


class DeepLabV3Plus(nn.Module):
    """`feature_extractor`: backbone, decoder head, skip projection, ASPP, FDM (that order)."""

    def __init__(self, ch: int, dropout: float) -> None:
        super().__init__()
        self.backbone = ResNet34Backbone()
        self.head = nn.Module()
        self.head.block = nn.Sequential(
            SeparableConv2d(ch + 32, ch), SeparableConv2d(ch, ch), nn.Conv2d(ch, ch, 1)
        )
        self.skip_project = nn.Module()
        self.skip_project.skip_project = _conv_bn_relu(64, 32)
        self.aspp = ASPP(512, ch, dropout)
        self.FDM = FDM(ch)

    def forward(
        self, x: torch.Tensor, additional: torch.Tensor, small_clicks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        c1, _, _, c4 = self.backbone(x, additional)
        c1 = self.skip_project.skip_project(c1)
        x, pos_map, _ = self.FDM(self.aspp(c4), small_clicks)
        x = torch.cat((_resize(x, c1.shape[2:]), c1), dim=1)
        return self.head.block(x), pos_map


def _shift_kernel(pattern: str) -> torch.Tensor:
    """The fixed 3x3 kernels of `PDM.py`: `abs` (centre 1, one neighbour -1, 8 kernels), `copy`
    (one neighbour 1, 8 kernels) and `std` (each of the 9 positions 1)."""
    positions = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)]
    if pattern == "std":
        weight = torch.zeros(9, 1, 3, 3)
        for i in range(9):
            weight[i, 0, i // 3, i % 3] = 1
        return weight
    weight = torch.zeros(8, 1, 3, 3)
    for i, (r, c) in enumerate(positions):
        if pattern == "abs":
            weight[i, 0, 1, 1] = 1
            weight[i, 0, r, c] = -1
        else:
            weight[i, 0, r, c] = 1
    return weight


class LocalAffinity(nn.Module):
    """Shift-kernel responses at dilations 1, 2, 4, 8 with replicate padding:
    B x K x H x W -> B x K x (n_kernels * 4) x H x W (`PDM.py:LocalAffinity` and subclasses)."""

    dilations = (1, 2, 4, 8)

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = pattern
        self.register_buffer("kernel", _shift_kernel(pattern))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = _shift_kernel(self.pattern).to(device=self.kernel.device, dtype=x.dtype)
        if not torch.equal(expected, self.kernel.to(x.dtype)):
            # Official: `assert torch.all(self.weight_check.eq(self.kernel))`.
            raise ValueError(f"PDM {self.pattern} shift kernel differs from its fixed values")
        b, k, h, w = x.shape
        x = x.reshape(b * k, 1, h, w)
        kernel = self.kernel.to(x.dtype)
        affs = [
            F.conv2d(F.pad(x, [d] * 4, mode="replicate"), kernel, dilation=d)
            for d in self.dilations
        ]
        out = torch.cat(affs, 1).view(b, k, -1, h, w)
        if self.pattern == "abs":
            return torch.abs(out)
        if self.pattern == "std":
            return out.std(2, keepdim=True)
        return out


class PixelDiffusion(nn.Module):
    """`PDM.py:PDM` (5 iterations): gated mask + click impulses diffused along image affinities,
    plus the un-gated mask as residual. Buffers `aff_x`, `aff_m`, `aff_std` hold the kernels."""

    def __init__(self, num_iter: int = 5) -> None:
        super().__init__()
        self.num_iter = num_iter
        self.aff_x = LocalAffinity("abs")
        self.aff_m = LocalAffinity("copy")
        self.aff_std = LocalAffinity("std")

    def forward(
        self, image: torch.Tensor, mask: torch.Tensor, click_map: torch.Tensor
    ) -> torch.Tensor:
        mask = _resize(mask, image.shape[-2:])
        mask = (torch.sigmoid(mask) - 0.5) * 2
        residual = mask
        mask = mask * (torch.abs(mask) > 0.25)
        x_std = self.aff_std(image)
        x = -self.aff_x(image) / (1e-8 + 0.1 * x_std)
        x = F.softmax(x.mean(1, keepdim=True), 2)
        amp = 10
        mask = mask + click_map[:, 0, :, :] * amp - click_map[:, 1, :, :] * amp
        for _ in range(self.num_iter):
            mask = (self.aff_m(mask) * x).sum(2)
        return mask + residual


class CDNetModel(nn.Module):
    """CDNet ResNet-34: `model(x, points)` -> instances (logits at the input size), click_map,
    fdm_instances, latent_instances; `model.PixelDiffusion(image, logits, click_map)`.

    x is B x 3 x H x W RGB in [0, 1] (no previous mask: `with_prev_mask=False`).
    """

    with_prev_mask = False

    def __init__(self, deeplab_ch: int = 128, aspp_dropout: float = 0.2) -> None:
        super().__init__()
        self.maps_transform = nn.Sequential(
            nn.Conv2d(2, 16, 1),
            nn.LeakyReLU(negative_slope=0.2),
            nn.Conv2d(16, 64, 3, stride=2, padding=1),
            ScaleLayer(init_value=0.05),
        )
        self.feature_extractor = DeepLabV3Plus(deeplab_ch, aspp_dropout)
        self.head = SepConvHead(1, deeplab_ch, deeplab_ch // 2, num_layers=2)
        self.latent_head = SepConvHead(4, deeplab_ch, deeplab_ch // 2, num_layers=2)
        self.PDM = PixelDiffusion()

    def forward(self, x: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected B x 3 x H x W RGB, got {tuple(x.shape)}")
        height, width = x.shape[2:]
        image = normalize_image(x)
        click_map = disk_maps(points, height, width).to(image.dtype)
        fdm_clicks = disk_maps(points, height, width, radius=24).to(image.dtype)
        fdm_clicks = _resize(fdm_clicks, (math.ceil(height / 8), math.ceil(width / 8)))
        features, pos_map = self.feature_extractor(
            image, self.maps_transform(click_map), fdm_clicks
        )
        size = (height, width)
        return {
            "instances": _resize(self.head(features), size),
            "fdm_instances": _resize(pos_map, size),
            "latent_instances": _resize(self.latent_head(features), size),
            "click_map": click_map,
        }

    def PixelDiffusion(  # noqa: N802 - the official method name
        self, image: torch.Tensor, mask: torch.Tensor, click_map: torch.Tensor
    ) -> torch.Tensor:
        return self.PDM(image, mask, click_map)


def cdnet_config_check(params: Mapping[str, Any]) -> None:
    """Refuse a saved `DeeplabModel` config other than CDNet ResNet-34 (channels 128)."""
    backbone = params.get("backbone", "resnet50")
    if backbone != "resnet34":
        raise ValueError(f"DeeplabModel backbone {backbone!r}: only CDNet resnet34 is implemented")
    if params.get("deeplab_ch", 256) != 128:
        raise ValueError(f"deeplab_ch {params.get('deeplab_ch')!r}: CDNet ResNet-34 uses 128")
    if params.get("with_prev_mask", False):
        raise ValueError("with_prev_mask=True: CDNet ResNet-34 has no previous-mask input")
