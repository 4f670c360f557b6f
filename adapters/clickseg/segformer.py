"""FocalClick's SegFormer model: MiT backbone with the click side branch, MLP decoder, refiner.

An independent implementation of ClickSEG d61a76b:

* `isegm/model/modeling/segformer/mix_transformer.py`: `OverlapPatchEmbed`, `Attention`
  (spatial-reduction attention), `Mlp` with `DWConv`, `Block`, `MixVisionTransformer`
  (`forward_features` with `patch_embed_side1`), `mit_b0` / `mit_b3`;
* `isegm/model/modeling/segformer/segformer_head.py:SegFormerHead` (mmcv `ConvModule` =
  conv without bias + `bn` + ReLU) and `segformer_model.py:SegFormer`;
* `isegm/model/is_segformer_model.py:SegFormerModel` (S2 pipeline) with its `RefineLayer`
  (`bench.adapters.clickseg.refiner`).

Module names and registration order reproduce the official ones, so `state_dict()` lists the
official names in the official order (golden/clickseg/manifests) and checkpoints load with
`strict=True`. golden/clickseg/README.md quirk 10: the official model builds a
`maps_transform` its forward never uses (kept here, it is in every checkpoint), the click
features enter through `patch_embed_side1` and are added to the stage-1 output *after* that
output was handed to the decoder; LayerNorms of the blocks use eps 1e-6, those of the patch
embeddings and the attention's reduction eps 1e-5, as official.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.adapters.clickseg.refiner import FocalRefineMixin, RefineLayer
from bench.adapters.common.click_maps import coord_features, normalize_image
from bench.adapters.ritm.network import ScaleLayer

__all__ = [
    "MIT_VARIANTS",
    "OFFICIAL_CLASS",
    "MiTConfig",
    "MixVisionTransformer",
    "SegFormerModel",
    "segformer_config_from_params",
]

OFFICIAL_CLASS = "isegm.model.is_segformer_model.SegFormerModel"


@dataclass(frozen=True)
class MiTConfig:
    """A Mix Transformer variant with its decoder width (`segformer_model.py:SegFormer`)."""

    embed_dims: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    decoder_dim: int
    sr_ratios: tuple[int, int, int, int] = (8, 4, 2, 1)
    mlp_ratio: int = 4


MIT_VARIANTS: dict[str, MiTConfig] = {
    "b0": MiTConfig((32, 64, 160, 256), (1, 2, 5, 8), (2, 2, 2, 2), decoder_dim=256),
    "b3": MiTConfig((64, 128, 320, 512), (1, 2, 5, 8), (3, 4, 18, 3), decoder_dim=512),
}


class OverlapPatchEmbed(nn.Module):
    """Strided conv (padding k // 2) then LayerNorm over B x N x C tokens."""

    def __init__(self, patch_size: int, stride: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            in_chans, embed_dim, patch_size, stride=stride, padding=patch_size // 2
        )
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        height, width = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), int(height), int(width)


class Attention(nn.Module):
    """Multi-head attention whose keys/values are spatially reduced by a stride-`sr` conv."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        b, n, c = x.shape
        heads = self.num_heads
        q = self.q(x).reshape(b, n, heads, c // heads).permute(0, 2, 1, 3)
        if self.sr_ratio > 1:
            reduced = x.permute(0, 2, 1).reshape(b, c, height, width)
            reduced = self.norm(self.sr(reduced).reshape(b, c, -1).permute(0, 2, 1))
            kv = self.kv(reduced)
        else:
            kv = self.kv(x)
        kv = kv.reshape(b, -1, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class DWConv(nn.Module):
    """Depthwise 3x3 conv on the token grid."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        b, _, c = x.shape
        x = x.transpose(1, 2).view(b, c, height, width)
        return self.dwconv(x).flatten(2).transpose(1, 2)


class MixFFN(nn.Module):
    """fc1 -> depthwise conv -> GELU -> fc2 (official `mix_transformer.py:Mlp`)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = self.act(self.dwconv(self.fc1(x), height, width))
        return self.fc2(x)


class Block(nn.Module):
    """Pre-norm transformer block; drop-path is an identity at evaluation."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, sr_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MixFFN(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), height, width)
        return x + self.mlp(self.norm2(x), height, width)


def _to_map(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return x.reshape(x.shape[0], height, width, -1).permute(0, 3, 1, 2).contiguous()


class MixVisionTransformer(nn.Module):
    """Four-stage MiT; `forward(image, side)` returns the four stage outputs (1/4 .. 1/32).

    `side` (B x 3 x H x W: previous mask and the two click disk maps) is embedded by
    `patch_embed_side1` and added to the stage-1 output after that output was recorded.
    """

    def __init__(self, config: MiTConfig) -> None:
        super().__init__()
        dims = config.embed_dims
        self.patch_embed1 = OverlapPatchEmbed(7, 4, 3, dims[0])
        self.patch_embed2 = OverlapPatchEmbed(3, 2, dims[0], dims[1])
        self.patch_embed3 = OverlapPatchEmbed(3, 2, dims[1], dims[2])
        self.patch_embed4 = OverlapPatchEmbed(3, 2, dims[2], dims[3])
        self.patch_embed_side1 = OverlapPatchEmbed(7, 4, 3, dims[0])
        for stage in range(4):
            blocks = nn.ModuleList(
                Block(
                    dims[stage], config.num_heads[stage], config.mlp_ratio, config.sr_ratios[stage]
                )
                for _ in range(config.depths[stage])
            )
            setattr(self, f"block{stage + 1}", blocks)
            setattr(self, f"norm{stage + 1}", nn.LayerNorm(dims[stage], eps=1e-6))

    def forward(self, x: torch.Tensor, side: torch.Tensor | None = None) -> list[torch.Tensor]:
        side_map = None
        if side is not None:
            af, h, w = self.patch_embed_side1(side)
            side_map = _to_map(af, h, w)
        outs = []
        for stage in range(1, 5):
            tokens, h, w = getattr(self, f"patch_embed{stage}")(x)
            for block in getattr(self, f"block{stage}"):
                tokens = block(tokens, h, w)
            x = _to_map(getattr(self, f"norm{stage}")(tokens), h, w)
            outs.append(x)
            if stage == 1 and side_map is not None:
                x = x + side_map
        return outs


class LinearEmbed(nn.Module):
    """Per-pixel linear projection (official `segformer_head.py:MLP`)."""

    def __init__(self, input_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(input_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.flatten(2).transpose(1, 2))


class ConvBnReluNoBias(nn.Module):
    """mmcv `ConvModule(k=1, norm_cfg=BN)`: conv without bias, `bn`, ReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class SegFormerHead(nn.Module):
    """All-MLP decoder: stages projected, upsampled to 1/4 (align_corners=False), fused."""

    def __init__(self, in_channels: tuple[int, ...], embed_dim: int) -> None:
        super().__init__()
        self.linear_c4 = LinearEmbed(in_channels[3], embed_dim)
        self.linear_c3 = LinearEmbed(in_channels[2], embed_dim)
        self.linear_c2 = LinearEmbed(in_channels[1], embed_dim)
        self.linear_c1 = LinearEmbed(in_channels[0], embed_dim)
        self.linear_fuse = ConvBnReluNoBias(embed_dim * 4, embed_dim)
        self.linear_pred = nn.Conv2d(embed_dim, 1, kernel_size=1)
        self.dropout = nn.Dropout2d(0.1)

    def forward(self, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        c1, c2, c3, c4 = inputs
        n = c4.shape[0]
        size = tuple(c1.shape[2:])

        def embed(layer: LinearEmbed, c: torch.Tensor, resize: bool) -> torch.Tensor:
            out = layer(c).permute(0, 2, 1).reshape(n, -1, c.shape[2], c.shape[3])
            if resize:
                out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
            return out

        fused = torch.cat(
            [
                embed(self.linear_c4, c4, True),
                embed(self.linear_c3, c3, True),
                embed(self.linear_c2, c2, True),
                embed(self.linear_c1, c1, False),
            ],
            dim=1,
        )
        feature = self.dropout(self.linear_fuse(fused))
        return self.linear_pred(feature), feature


class SegFormer(nn.Module):
    """`feature_extractor`: backbone + decode head (official `segformer_model.py:SegFormer`)."""

    def __init__(self, config: MiTConfig) -> None:
        super().__init__()
        self.backbone = MixVisionTransformer(config)
        self.decode_head = SegFormerHead(config.embed_dims, config.decoder_dim)

    def forward(
        self, x: torch.Tensor, side: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode_head(self.backbone(x, side))


class SegFormerModel(FocalRefineMixin, nn.Module):
    """FocalClick SegFormer-S2: `model(x, points)` -> instances (logits at the input size),
    feature (decoder feature at 1/4), click_map; `model.refine(...)` for the focus crop.

    x is B x 4 x S x S (RGB in [0, 1] and the previous probability), points B x 2M x 3 rows
    (row, col, index), positives first, padded with (-1, -1, -1).
    """

    with_prev_mask = True

    def __init__(self, variant: str) -> None:
        super().__init__()
        if variant not in MIT_VARIANTS:
            raise ValueError(f"unknown SegFormer variant {variant!r}; known: {list(MIT_VARIANTS)}")
        self.variant = variant
        config = MIT_VARIANTS[variant]
        # Registration order = official state_dict order: maps_transform (ISModel, replaced in
        # SegFormerModel.__init__ but keeping its slot), feature_extractor, refiner.
        self.maps_transform = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.LeakyReLU(negative_slope=0.2),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            ScaleLayer(init_value=0.05),
        )
        self.feature_extractor = SegFormer(config)
        self.refiner = RefineLayer(feature_indim=config.decoder_dim)

    def forward(self, x: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 4:
            raise ValueError(f"expected B x 4 x H x W (RGB + previous mask), got {tuple(x.shape)}")
        height, width = x.shape[2:]
        image = normalize_image(x[:, :3])
        side = coord_features(x[:, 3:], points, height, width)
        logits, feature = self.feature_extractor(image, side)
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=True)
        return {
            "instances": logits,
            "instances_aux": logits,
            "feature": feature,
            "click_map": side[:, 1:],
        }


def segformer_config_from_params(params: Mapping[str, Any]) -> str:
    """The MiT variant of a saved `SegFormerModel` config; refuses what we do not implement."""
    version = params.get("model_version", "b0")
    pipeline = params.get("pipeline_version", "s1")
    if version not in MIT_VARIANTS:
        raise ValueError(f"SegFormer model_version {version!r} is not one of {list(MIT_VARIANTS)}")
    if pipeline != "s2":
        raise ValueError(
            f"pipeline_version {pipeline!r}: only the S2 models (full-resolution coarse input) "
            "are implemented"
        )
    return str(version)
