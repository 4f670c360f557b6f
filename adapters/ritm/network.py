"""RITM's iter-mask HRNetModel: HRNetV2 backbone + OCR head with the coordinate branch.

An independent implementation of the official model (RITM b9b4460) described in PROTOCOL.md
sections 7.1 and 7.4:

* `isegm/model/is_model.py:ISModel` and `isegm/model/is_hrnet_model.py:HRNetModel`
  (normalisation, click disks, `maps_transform`, output resize);
* `isegm/model/modeling/hrnet_ocr.py:HighResolutionNet` / `HighResolutionModule`;
* `isegm/model/modeling/ocr.py:SpatialGather_Module` / `SpatialOCR_Module` /
  `ObjectAttentionBlock2D`;
* `isegm/model/modeling/resnetv1b.py:BasicBlockV1b` / `BottleneckV1b` (the same computation and
  parameter names as timm's ResNet blocks, reproduced in `bench.adapters.common.layers`);
* `isegm/model/ops.py:ScaleLayer`.

Module names and registration order reproduce the official ones, so `state_dict()` lists the
same names in the same order and an official checkpoint loads with `strict=True`. Summation and
interpolation order follow the official forward passes (every resize is bilinear with
`align_corners=True`), so float32 outputs agree to rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.adapters.common.click_maps import coord_features, normalize_image
from bench.adapters.common.layers import BasicBlock, Bottleneck

__all__ = [
    "HRNET_VARIANTS",
    "HRNetConfig",
    "HRNetModel",
    "ScaleLayer",
    "build_hrnet",
    "config_from_params",
    "model_from_config",
]

OFFICIAL_CLASS = "isegm.model.is_hrnet_model.HRNetModel"


@dataclass(frozen=True)
class HRNetConfig:
    """The constructor arguments that shape an iter-mask HRNetModel's weights."""

    width: int  # channels of the highest-resolution branch; branches have w, 2w, 4w, 8w
    ocr_width: int  # OCR key channels K; the OCR features have 2K channels
    small: bool  # 2 blocks per branch and fewer modules (HRNet-18s) instead of 4
    with_aux_output: bool = True


# `models/iter_mask/hrnet{18s,18,32}_cocolvis_itermask_3p.py` (HRNet-18 also for SBD).
HRNET_VARIANTS: dict[str, HRNetConfig] = {
    "hrnet18s": HRNetConfig(width=18, ocr_width=48, small=True),
    "hrnet18": HRNetConfig(width=18, ocr_width=64, small=False),
    "hrnet32": HRNetConfig(width=32, ocr_width=128, small=False),
}


class ScaleLayer(nn.Module):
    """Multiply by |s| for one learned scalar s (`isegm/model/ops.py:ScaleLayer`, lr_mult 1).

    The official forward computes |s * lr_mult|; with lr_mult 1 the product is exact, so
    |s| gives the same value.
    """

    def __init__(self, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), init_value, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.abs(self.scale)


def _conv_bn(
    in_ch: int, out_ch: int, kernel: int, stride: int = 1, relu: bool = True
) -> nn.Sequential:
    """Conv (no bias) + BatchNorm [+ ReLU]: the unit of HRNet's transitions and fusions."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _stride2_chain(in_ch: int, out_ch: int, links: int, relu_last: bool) -> nn.Sequential:
    """`links` stride-2 3x3 conv + BN units, ReLU after all but (optionally) the last one.

    Every link keeps `in_ch` channels except the last, which gives `out_ch`: the official
    fusion path to a lower-resolution branch and the official transition to a new branch.
    """
    return nn.Sequential(
        *(
            _conv_bn(
                in_ch,
                out_ch if k == links - 1 else in_ch,
                3,
                stride=2,
                relu=relu_last or k < links - 1,
            )
            for k in range(links)
        )
    )


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


class HighResolutionModule(nn.Module):
    """One multi-branch module: BasicBlocks per branch, then all-to-all fusion.

    `fuse_layers[i][j]` brings branch j to branch i: None for j == i, 1x1 conv + BN (then a
    bilinear upsample in forward) for j > i, a chain of stride-2 3x3 conv + BN (ReLU between
    links) for j < i. Official `hrnet_ocr.py:HighResolutionModule`, multi_scale_output=True.
    """

    def __init__(self, channels: list[int], num_blocks: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(ch, ch) for _ in range(num_blocks))) for ch in channels
        )
        fuse_layers = []
        for i, out_ch in enumerate(channels):
            row: list[nn.Module | None] = []
            for j, in_ch in enumerate(channels):
                if j > i:
                    row.append(_conv_bn(in_ch, out_ch, 1, relu=False))
                elif j == i:
                    row.append(None)
                else:
                    row.append(_stride2_chain(in_ch, out_ch, i - j, relu_last=False))
            fuse_layers.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse_layers)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        fused = []
        for i, row in enumerate(self.fuse_layers):
            # Official order: start from branch 0, then add branches 1, 2, ... in turn.
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, len(xs)):
                if j == i:
                    y = y + xs[j]
                elif j > i:
                    y = y + _upsample_to(row[j](xs[j]), xs[i])
                else:
                    y = y + row[j](xs[j])
            fused.append(self.relu(y))
        return fused


def _transition(pre_channels: list[int], channels: list[int]) -> nn.ModuleList:
    """Branch adapters between stages (official `_make_transition_layer`).

    Existing branches pass through (None) unless their width changes (3x3 conv + BN + ReLU,
    stride 1); each new branch is derived from the last old one by stride-2 3x3 conv + BN + ReLU
    links, wrapped in an outer Sequential as the official names require.
    """
    layers: list[nn.Module | None] = []
    for i, out_ch in enumerate(channels):
        if i < len(pre_channels):
            in_ch = pre_channels[i]
            layers.append(None if in_ch == out_ch else _conv_bn(in_ch, out_ch, 3))
        else:
            chain = _stride2_chain(pre_channels[-1], out_ch, i + 1 - len(pre_channels), True)
            layers.append(chain)
    return nn.ModuleList(layers)


def _apply_transition(transition: nn.ModuleList, ys: list[torch.Tensor]) -> list[torch.Tensor]:
    out = []
    for i, layer in enumerate(transition):
        if layer is None:
            out.append(ys[i])
        else:
            out.append(layer(ys[i] if i < len(ys) else ys[-1]))
    return out


class SpatialGather(nn.Module):
    """Object-region context: features pooled with a spatial softmax of the coarse logits.

    Official `ocr.py:SpatialGather_Module` (scale 1). Returns B x C x classes x 1.
    """

    def forward(self, feats: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        b, classes = logits.shape[:2]
        weights = F.softmax(logits.reshape(b, classes, -1), dim=2)  # B x K x HW
        pixels = feats.reshape(b, feats.shape[1], -1).permute(0, 2, 1)  # B x HW x C
        context = torch.matmul(weights, pixels)  # B x K x C
        return context.permute(0, 2, 1).unsqueeze(3)


def _conv_bn_relu_1x1(in_ch: int, out_ch: int) -> list[nn.Module]:
    """1x1 conv (no bias) + Sequential(BN, ReLU), the official OCR unit and its names."""
    return [
        nn.Conv2d(in_ch, out_ch, 1, bias=False),
        nn.Sequential(nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)),
    ]


class ObjectAttention(nn.Module):
    """Pixel-to-region attention (official `ocr.py:ObjectAttentionBlock2D`, scale 1)."""

    def __init__(self, channels: int, key_channels: int) -> None:
        super().__init__()
        self.key_channels = key_channels
        self.f_pixel = nn.Sequential(
            *_conv_bn_relu_1x1(channels, key_channels),
            *_conv_bn_relu_1x1(key_channels, key_channels),
        )
        self.f_object = nn.Sequential(
            *_conv_bn_relu_1x1(channels, key_channels),
            *_conv_bn_relu_1x1(key_channels, key_channels),
        )
        self.f_down = nn.Sequential(*_conv_bn_relu_1x1(channels, key_channels))
        self.f_up = nn.Sequential(*_conv_bn_relu_1x1(key_channels, channels))

    def forward(self, feats: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, _, h, w = feats.shape
        query = self.f_pixel(feats).reshape(b, self.key_channels, -1).permute(0, 2, 1)
        key = self.f_object(context).reshape(b, self.key_channels, -1)
        value = self.f_down(context).reshape(b, self.key_channels, -1).permute(0, 2, 1)
        sim = F.softmax((self.key_channels**-0.5) * torch.matmul(query, key), dim=-1)
        out = torch.matmul(sim, value).permute(0, 2, 1).reshape(b, self.key_channels, h, w)
        return self.f_up(out)


class SpatialOCR(nn.Module):
    """Object-contextual representation (official `ocr.py:SpatialOCR_Module`, dropout 0.05)."""

    def __init__(self, channels: int, key_channels: int) -> None:
        super().__init__()
        self.object_context_block = ObjectAttention(channels, key_channels)
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 1, bias=False),
            nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True)),
            nn.Dropout2d(0.05),
        )

    def forward(self, feats: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        attended = self.object_context_block(feats, context)
        return self.conv_bn_dropout(torch.cat([attended, feats], 1))


class HighResolutionNet(nn.Module):
    """HRNetV2-W`width` with the OCR head and one class (official `hrnet_ocr.py`).

    forward(image, additional_features) -> [main logits, aux logits], both at 1/4 resolution.
    """

    def __init__(self, width: int, ocr_width: int, small: bool) -> None:
        super().__init__()
        blocks = 2 if small else 4
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)

        stem_out = 64 * Bottleneck.expansion
        downsample = _conv_bn(64, stem_out, 1, relu=False)
        self.layer1 = nn.Sequential(
            Bottleneck(64, 64, downsample=downsample),
            *(Bottleneck(stem_out, 64) for _ in range(blocks - 1)),
        )

        widths = [width * 2**i for i in range(4)]
        modules_per_stage = {2: 1, 3: 3 if small else 4, 4: 2 if small else 3}
        self.transition1 = _transition([stem_out], widths[:2])
        self.stage2 = self._stage(widths[:2], modules_per_stage[2], blocks)
        self.transition2 = _transition(widths[:2], widths[:3])
        self.stage3 = self._stage(widths[:3], modules_per_stage[3], blocks)
        self.transition3 = _transition(widths[:3], widths)
        self.stage4 = self._stage(widths, modules_per_stage[4], blocks)

        aggregated = sum(widths)  # 15 * width
        ocr_channels = 2 * ocr_width
        self.conv3x3_ocr = nn.Sequential(
            nn.Conv2d(aggregated, ocr_channels, 3, padding=1),
            nn.BatchNorm2d(ocr_channels),
            nn.ReLU(inplace=True),
        )
        self.ocr_gather_head = SpatialGather()
        self.ocr_distri_head = SpatialOCR(ocr_channels, ocr_width)
        self.cls_head = nn.Conv2d(ocr_channels, 1, 1)
        self.aux_head = nn.Sequential(
            nn.Conv2d(aggregated, aggregated, 1),
            nn.BatchNorm2d(aggregated),
            nn.ReLU(inplace=True),
            nn.Conv2d(aggregated, 1, 1),
        )

    @staticmethod
    def _stage(channels: list[int], num_modules: int, num_blocks: int) -> nn.Sequential:
        return nn.Sequential(
            *(HighResolutionModule(channels, num_blocks) for _ in range(num_modules))
        )

    def hrnet_features(
        self, image: torch.Tensor, additional_features: torch.Tensor | None
    ) -> torch.Tensor:
        """Backbone features: the four branches concatenated at 1/4 resolution (15w channels)."""
        x = self.relu(self.bn1(self.conv1(image)))
        if additional_features is not None:
            x = x + additional_features
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        ys = self.stage2(_apply_transition(self.transition1, [x]))
        ys = self.stage3(_apply_transition(self.transition2, ys))
        ys = self.stage4(_apply_transition(self.transition3, ys))
        return torch.cat([ys[0], *(_upsample_to(y, ys[0]) for y in ys[1:])], 1)

    def forward(
        self, image: torch.Tensor, additional_features: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        feats = self.hrnet_features(image, additional_features)
        aux = self.aux_head(feats)
        feats = self.conv3x3_ocr(feats)
        context = self.ocr_gather_head(feats, aux)
        feats = self.ocr_distri_head(feats, context)
        return [self.cls_head(feats), aux]


class HRNetModel(nn.Module):
    """The whole iter-mask model: `model(x, points) -> {"instances", "instances_aux"}`.

    x is B x 4 x H x W: RGB in [0, 1] and the previous probability map; points is B x 2M x 3
    with rows (row, col, index), positive rows first, padding (-1, -1, -1) (PROTOCOL.md 6.5).
    The logits come back at H x W. The model normalises the image and draws the click disks
    itself, as the official ISModel does.
    """

    with_prev_mask = True

    def __init__(self, config: HRNetConfig) -> None:
        super().__init__()
        self.config = config
        # `is_model.py`: use_rgb_conv=False, use_leaky_relu=True, prev mask + 2 disk channels.
        self.maps_transform = nn.Sequential(
            nn.Conv2d(3, 16, 1),
            nn.LeakyReLU(negative_slope=0.2),
            nn.Conv2d(16, 64, 3, stride=2, padding=1),
            ScaleLayer(init_value=0.05),
        )
        self.feature_extractor = HighResolutionNet(
            width=config.width, ocr_width=config.ocr_width, small=config.small
        )

    def forward(self, x: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 4:
            raise ValueError(f"expected B x 4 x H x W (RGB + previous mask), got {tuple(x.shape)}")
        height, width = x.shape[-2:]
        image = normalize_image(x[:, :3])
        coords = coord_features(x[:, 3:], points, height, width)
        main, aux = self.feature_extractor(image, self.maps_transform(coords))
        outputs = {"instances": _resize(main, height, width)}
        if self.config.with_aux_output:
            outputs["instances_aux"] = _resize(aux, height, width)
        return outputs


def _resize(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=True)


def build_hrnet(variant: str) -> HRNetModel:
    """A model of one released architecture ("hrnet18s", "hrnet18", "hrnet32"), random weights.

    Build it under `with torch.device("meta"):` to inspect shapes without allocating memory.
    """
    try:
        config = HRNET_VARIANTS[variant]
    except KeyError:
        known = ", ".join(HRNET_VARIANTS)
        raise ValueError(f"unknown HRNet variant {variant!r}; expected one of {known}") from None
    return HRNetModel(config)


# Saved constructor arguments that do not change the weights' shapes but must have the values
# this implementation reproduces (official defaults or the iter-mask configs' settings).
_REQUIRED_VALUES: dict[str, Any] = {
    "use_rgb_conv": False,
    "use_leaky_relu": True,
    "use_disks": True,
    "norm_radius": 5,
    "with_prev_mask": True,
    "clicks_groups": None,
    "binary_prev_mask": False,
    "conv_extend": False,
    "cpu_dist_maps": False,
    "norm_layer": "torch.nn.modules.batchnorm.BatchNorm2d",
    "norm_mean_std": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
# Constructor defaults of the official HRNetModel/ISModel, used when a parameter is absent.
_OFFICIAL_DEFAULTS: dict[str, Any] = {
    "width": 48,
    "ocr_width": 256,
    "small": False,
    "with_aux_output": False,
    "use_rgb_conv": True,
    "use_leaky_relu": False,
    "use_disks": False,
    "norm_radius": 260,
    "with_prev_mask": False,
}
_IGNORED = {"backbone_lr_mult"}  # training-only


def _plain(value: Any) -> Any:
    """Unwrap a serialised record and turn lists/tuples into tuples, for comparison."""
    if isinstance(value, Mapping) and "value" in value and "type" in value:
        value = value["value"]
    if isinstance(value, Mapping) and "__tuple__" in value:
        value = value["__tuple__"]
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return value


def config_from_params(params: Mapping[str, Any]) -> HRNetConfig:
    """An HRNetConfig from a checkpoint's saved constructor parameters.

    `params` maps each name to its value, or to the saved record {"type", "value",
    "specified"} (`isegm/utils/serialization.py`). A setting this implementation does not
    reproduce raises ValueError naming it, rather than building a model that silently differs.
    """
    values = {name: _plain(value) for name, value in params.items()}
    unknown = set(values) - set(_REQUIRED_VALUES) - set(_OFFICIAL_DEFAULTS) - _IGNORED
    if unknown:
        raise ValueError(
            f"HRNetModel config has parameters this adapter does not know: {sorted(unknown)}"
        )
    for name, required in _REQUIRED_VALUES.items():
        value = values.get(name, _OFFICIAL_DEFAULTS.get(name, required))
        if value != _plain(required):
            raise ValueError(
                f"HRNetModel config sets {name}={value!r}; this adapter implements only the "
                f"iter-mask architecture with {name}={required!r}"
            )
    get = lambda name: values.get(name, _OFFICIAL_DEFAULTS[name])  # noqa: E731
    if int(get("ocr_width")) <= 0:
        raise ValueError("HRNetModel config without the OCR head (ocr_width <= 0) is not supported")
    return HRNetConfig(
        width=int(get("width")),
        ocr_width=int(get("ocr_width")),
        small=bool(get("small")),
        with_aux_output=bool(get("with_aux_output")),
    )


def model_from_config(config_params: Mapping[str, Any]) -> HRNetModel:
    """Build the architecture a checkpoint's saved config describes (weights not loaded)."""
    return HRNetModel(config_from_params(config_params))
