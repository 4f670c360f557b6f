"""SimpleClick's PlainVitModel (ViT-xTiny/B/L/H), written from PROTOCOL.md §7.1–7.3.

Official sources this reproduces (SimpleClick v1.0, f33112e):
`isegm/model/is_plainvit_model.py` (PlainVitModel, SimpleFPN), `isegm/model/is_model.py`
(normalisation, click maps, final resize), `isegm/model/modeling/models_vit.py` (ViT with the
windowed/global block schedule of `forward_backbone`), `isegm/model/modeling/swin_transformer.py:
SwinTransfomerSegHead` + `transformer_helper/decode_head.py` (all-MLP head) and
`isegm/model/modeling/pos_embed.py:interpolate_pos_embed_inference`.

Module and parameter names follow the official ones exactly, so official checkpoints load with
`strict=True`; parameters the segmentation path never uses (`backbone.cls_token`, row 0 of
`backbone.pos_embed`, `backbone.fc_norm`, `backbone.head`, `head.up_conv1/2` in `x1` mode) exist
for that reason only (golden/README.md §6.3).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.adapters.common.click_maps import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    disk_maps,
    normalize_image,
)
from bench.adapters.common.layers import Attention, Mlp, PatchEmbed

WINDOW_PIXELS = 224  # MAE pre-training size: windowed blocks see 224 x 224 px regions
UPSAMPLE_FACTORS = {"x1": 1, "x2": 2, "x4": 4}


@dataclass(frozen=True)
class PlainViTConfig:
    """Everything that shapes the network; the official config's parameters, flattened."""

    patch_size: tuple[int, int]
    embed_dim: int
    depth: int
    num_heads: int
    neck_out_dims: tuple[int, int, int, int]
    head_channels: int
    img_size: tuple[int, int] = (448, 448)  # training size: fixes the pos_embed grid
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    upsample: str = "x1"
    dropout_ratio: float = 0.1
    num_classes: int = 1
    align_corners: bool = False  # the head's resizes (bilinear, half-pixel)
    with_prev_mask: bool = True
    norm_radius: float = 5.0

    @property
    def trained_grid(self) -> tuple[int, int]:
        return (self.img_size[0] // self.patch_size[0], self.img_size[1] // self.patch_size[1])


# Official config scripts models/iter_mask/plainvit_{xtiny,base,large,huge}448_cocolvis_itermask.py
# with train.py's default --upsample x1 (head channels 256; xTiny fixes 128).
VARIANTS: dict[str, PlainViTConfig] = {
    "xtiny": PlainViTConfig((16, 16), 160, 8, 4, (96, 192, 288, 384), 128),
    "base": PlainViTConfig((16, 16), 768, 12, 12, (128, 256, 512, 1024), 256),
    "large": PlainViTConfig((16, 16), 1024, 24, 16, (192, 384, 768, 1536), 256),
    "huge": PlainViTConfig((14, 14), 1280, 32, 16, (240, 480, 960, 1920), 256),
}


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    first, second = value
    return (int(first), int(second))


class Block(nn.Module):
    """Pre-norm transformer block of `models_vit.py`, built from Attention and Mlp (timm's).

    timm's own `Block` computes the same thing but registers `norm2` after `attn`; the official
    order (norm1, norm2, attn, mlp) is kept here so our state_dict order equals the checkpoint's.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTBackbone(nn.Module):
    """Plain ViT whose blocks attend within 224-px windows except every `global_every`-th one.

    `forward` reproduces `VisionTransformer.forward_backbone` with `shuffle=False`: the token grid
    is split into non-overlapping windows (raster order of windows, raster order inside each),
    consecutive windowed blocks stay split, and tokens are merged back before each global block.
    There is no final norm; the class token is not used.
    """

    def __init__(self, config: PlainViTConfig) -> None:
        super().__init__()
        dim = config.embed_dim
        grid = config.trained_grid
        self.patch_size = config.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid[0] * grid[1] + 1, dim))
        self.patch_embed = PatchEmbed(
            img_size=config.img_size,
            patch_size=config.patch_size,
            in_chans=3,
            embed_dim=dim,
        )
        self.blocks = nn.Sequential(
            *(
                Block(dim, config.num_heads, config.mlp_ratio, config.qkv_bias)
                for _ in range(config.depth)
            )
        )
        # unused: MAE classification leftovers, kept for strict loading
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, 1000)
        if config.depth % 4:
            raise ValueError(f"depth {config.depth}: the official schedule needs a multiple of 4")
        self.global_every = 6 if config.depth == 12 else config.depth // 4

    def global_block_indices(self) -> list[int]:
        """0-based indices of the blocks that attend over the whole grid."""
        return [i - 1 for i in range(1, len(self.blocks) + 1) if i % self.global_every == 0]

    def windows_per_axis(self, grid: tuple[int, int]) -> tuple[int, int]:
        """Official `patchify`: floor(grid / (224 / p)) windows per axis, each must tile exactly."""
        counts = tuple(
            g // (WINDOW_PIXELS // p) for g, p in zip(grid, self.patch_size, strict=True)
        )
        if min(counts) < 1 or grid[0] % counts[0] or grid[1] % counts[1]:
            raise ValueError(
                f"token grid {grid} cannot be split into 224-px windows (patch {self.patch_size}); "
                "use an input of at least 224 px whose grid is a multiple of the window count"
            )
        return counts  # type: ignore[return-value]

    def forward(self, image: torch.Tensor, click_tokens: torch.Tensor) -> torch.Tensor:
        """Normalised image (B x 3 x H x W) + click tokens (B x N x D) -> B x D x gh x gw."""
        batch = image.shape[0]
        grid = (image.shape[2] // self.patch_size[0], image.shape[3] // self.patch_size[1])
        if self.pos_embed.shape[1] != grid[0] * grid[1] + 1:
            raise ValueError(
                f"input {tuple(image.shape[2:])} gives a {grid} token grid but pos_embed has "
                f"{self.pos_embed.shape[1] - 1} positions; resize it first (set_input_size)"
            )
        tokens = self.patch_embed(image) + click_tokens
        tokens = tokens + self.pos_embed[:, 1:]
        windows = self.windows_per_axis(grid)
        windowed = False
        for number, block in enumerate(self.blocks, start=1):
            if number % self.global_every:
                if not windowed:
                    tokens = split_windows(tokens, grid, windows)
                    windowed = True
            else:
                tokens = merge_windows(tokens, grid, windows, batch)
                windowed = False
            tokens = block(tokens)
        if windowed:  # the official schedule always ends on a global block; keep it general
            tokens = merge_windows(tokens, grid, windows, batch)
        return tokens.transpose(1, 2).reshape(batch, -1, grid[0], grid[1])


def split_windows(
    tokens: torch.Tensor, grid: tuple[int, int], windows: tuple[int, int]
) -> torch.Tensor:
    """B x (gh*gw) x D -> (B*nh*nw) x (gh/nh * gw/nw) x D, windows and tokens in raster order."""
    batch, _, dim = tokens.shape
    (gh, gw), (nh, nw) = grid, windows
    x = tokens.view(batch, nh, gh // nh, nw, gw // nw, dim).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(batch * nh * nw, (gh // nh) * (gw // nw), dim)


def merge_windows(
    tokens: torch.Tensor, grid: tuple[int, int], windows: tuple[int, int], batch: int
) -> torch.Tensor:
    """Inverse of `split_windows`."""
    dim = tokens.shape[-1]
    (gh, gw), (nh, nw) = grid, windows
    x = tokens.view(batch, nh, nw, gh // nh, gw // nw, dim).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(batch, gh * gw, dim)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(1, channels)  # LayerNorm over C, H, W with per-channel affine


class SimpleFeaturePyramid(nn.Module):
    """Official `SimpleFPN`: 1/4, 1/8, 1/16, 1/32 maps from the single 1/16 token map.

    Sequential indices match the official ones (GELU/GroupNorm positions included) so that the
    state_dict names `neck.down_4.{0,1,3,4,5,6}` etc. line up.
    """

    def __init__(self, in_dim: int, out_dims: tuple[int, int, int, int]) -> None:
        super().__init__()
        c4 = max(out_dims[0] * 2, in_dim // 2)
        c8 = max(out_dims[1], in_dim // 2)
        c32 = max(out_dims[3], in_dim * 2)
        self.down_4 = nn.Sequential(
            nn.ConvTranspose2d(in_dim, c4, 2, stride=2),
            _norm(c4),
            nn.GELU(),
            nn.ConvTranspose2d(c4, c4 // 2, 2, stride=2),
            _norm(c4 // 2),
            nn.Conv2d(c4 // 2, out_dims[0], 1),
            _norm(out_dims[0]),
            nn.GELU(),
        )
        self.down_8 = nn.Sequential(
            nn.ConvTranspose2d(in_dim, c8, 2, stride=2),
            _norm(c8),
            nn.Conv2d(c8, out_dims[1], 1),
            _norm(out_dims[1]),
            nn.GELU(),
        )
        self.down_16 = nn.Sequential(
            nn.Conv2d(in_dim, out_dims[2], 1), _norm(out_dims[2]), nn.GELU()
        )
        self.down_32 = nn.Sequential(
            nn.Conv2d(in_dim, c32, 2, stride=2),
            _norm(c32),
            nn.Conv2d(c32, out_dims[3], 1),
            _norm(out_dims[3]),
            nn.GELU(),
        )

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        return [
            self.down_4(features),
            self.down_8(features),
            self.down_16(features),
            self.down_32(features),
        ]


class ConvReLU(nn.Module):
    """mmcv `ConvModule` as the head builds it (no norm, ReLU): keeps the `.conv` name."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


def _up_block(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(channels, channels // 2, 2, stride=2),
        _norm(channels // 2),
        nn.Conv2d(channels // 2, channels // 2, 1),
        _norm(channels // 2),
        nn.GELU(),
    )


class AllMLPHead(nn.Module):
    """Official `SwinTransfomerSegHead`: per-level 1x1 conv + ReLU, resize to the 1/4 map
    (bilinear, half-pixel), concat, 1x1 fusion + ReLU, [x2/x4 up blocks], dropout, 1x1 classifier.

    Width is `channels * {x1: 1, x2: 2, x4: 4}`, so `conv_seg` always sees `channels`.
    """

    def __init__(self, config: PlainViTConfig) -> None:
        super().__init__()
        if config.upsample not in UPSAMPLE_FACTORS:
            raise ValueError(f"upsample must be one of {sorted(UPSAMPLE_FACTORS)}")
        width = config.head_channels * UPSAMPLE_FACTORS[config.upsample]
        self.upsample = config.upsample
        self.align_corners = config.align_corners
        # Registration order = official state_dict order (BaseDecodeHead makes conv_seg first).
        self.conv_seg = nn.Conv2d(config.head_channels, config.num_classes, 1)
        self.dropout = nn.Dropout2d(config.dropout_ratio)
        self.convs = nn.ModuleList(ConvReLU(c, width) for c in config.neck_out_dims)
        self.fusion_conv = ConvReLU(width * len(config.neck_out_dims), width)
        self.up_conv1 = _up_block(width)
        self.up_conv2 = _up_block(width // 2)

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        size = pyramid[0].shape[2:]
        levels = [
            F.interpolate(conv(x), size=size, mode="bilinear", align_corners=self.align_corners)
            for conv, x in zip(self.convs, pyramid, strict=True)
        ]
        out = self.fusion_conv(torch.cat(levels, dim=1))
        if self.upsample == "x2":
            out = self.up_conv1(out)
        elif self.upsample == "x4":
            out = self.up_conv2(self.up_conv1(out))
        return self.conv_seg(self.dropout(out))

    def unused_modules(self) -> list[str]:
        return {"x1": ["up_conv1", "up_conv2"], "x2": ["up_conv2"], "x4": []}[self.upsample]


class PlainViTModel(nn.Module):
    """Click-conditioned ViT segmenter: `model(x, points) -> {"instances": B x 1 x H x W logits}`.

    x is B x 4 x H x W = [RGB in [0, 1], previous probability map]; points is B x 2M x 3 with rows
    (row, col, click index), positives first, padding rows (-1, -1, -1) (PROTOCOL.md §6.5).
    """

    def __init__(self, config: PlainViTConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed_coords = PatchEmbed(
            img_size=config.img_size,
            patch_size=config.patch_size,
            in_chans=3 if config.with_prev_mask else 2,
            embed_dim=config.embed_dim,
        )
        self.backbone = ViTBackbone(config)
        self.neck = SimpleFeaturePyramid(config.embed_dim, config.neck_out_dims)
        self.head = AllMLPHead(config)

    def click_maps(self, x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """[prev, positive disks, negative disks] (official `ISModel.get_coord_features`).

        Same as the shared `coord_features`, but with the config's disk radius and without the
        prev channel for models trained without it.
        """
        height, width = x.shape[2:]
        disks = disk_maps(points, height, width, self.config.norm_radius).to(x.dtype)
        return torch.cat((x[:, 3:4], disks), dim=1) if self.config.with_prev_mask else disks

    def forward(
        self, x: torch.Tensor, points: torch.Tensor, *, intermediates: bool = False
    ) -> dict[str, torch.Tensor]:
        """`intermediates=True` also returns `backbone_features` and `head_logits_lowres`."""
        image = normalize_image(x[:, :3])
        coords = self.click_maps(x, points)
        features = self.backbone(image, self.patch_embed_coords(coords))
        lowres = self.head(self.neck(features))
        # ISModel.forward: bilinear (corners) back to the input size.
        instances = F.interpolate(lowres, size=x.shape[2:], mode="bilinear", align_corners=True)
        out = {"instances": instances}
        if intermediates:
            out.update(backbone_features=features, head_logits_lowres=lowres)
        return out

    def unused_modules(self) -> list[str]:
        """Modules with weights that the segmentation forward never runs."""
        return ["backbone.fc_norm", "backbone.head"] + [
            f"head.{name}" for name in self.head.unused_modules()
        ]


def build_simpleclick(variant: str, img_size: int = 448, **config_overrides: Any) -> PlainViTModel:
    """A model of one of the paper's variants ("xtiny", "base", "large", "huge").

    `img_size` is the training size, which fixes the position-embedding grid of the weights
    (448 for every released checkpoint). Overrides replace `PlainViTConfig` fields, e.g.
    `upsample="x2", head_channels=128`.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown SimpleClick variant {variant!r}; known: {sorted(VARIANTS)}")
    config = dataclasses.replace(VARIANTS[variant], img_size=_pair(img_size), **config_overrides)
    return PlainViTModel(config)


_INERT_BACKBONE_KEYS = {"pos_drop_rate", "attn_drop_rate", "proj_drop_rate", "global_pool"}


def config_from_params(params: dict[str, Any]) -> PlainViTConfig:
    """`PlainViTConfig` from a checkpoint's saved constructor parameters (`config_params`).

    Refuses settings this implementation does not reproduce instead of silently ignoring them.
    """
    backbone = dict(params["backbone_params"])
    neck = dict(params["neck_params"])
    head = dict(params["head_params"])
    unsupported = {
        "random_split": params.get("random_split", False),  # stochastic token shuffle
        "use_rgb_conv": params.get("use_rgb_conv", False),  # RITM's maps_transform branch
        "use_disks": not params.get("use_disks", True),  # tanh distance maps
        "backbone in_chans != 3": backbone.get("in_chans", 3) != 3,
        "head in_index != [0, 1, 2, 3]": list(head.get("in_index", [0, 1, 2, 3])) != [0, 1, 2, 3],
        "neck in_dim != embed_dim": neck.get("in_dim", backbone["embed_dim"])
        != backbone["embed_dim"],
        "head in_channels != neck out_dims": list(head.get("in_channels", neck["out_dims"]))
        != list(neck["out_dims"]),
        "interpolate_mode": head.get("interpolate_mode", "bilinear") != "bilinear",
    }
    mean_std = params.get("norm_mean_std", (IMAGENET_MEAN, IMAGENET_STD))
    unsupported["norm_mean_std"] = [list(map(float, v)) for v in mean_std] != [
        list(IMAGENET_MEAN),
        list(IMAGENET_STD),
    ]
    extra = set(backbone) - {
        "img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio",
        "qkv_bias", *_INERT_BACKBONE_KEYS,
    }  # fmt: skip
    for key in sorted(extra):
        unsupported[f"backbone_params[{key!r}]"] = True
    refused = [name for name, flag in unsupported.items() if flag]
    if refused:
        raise ValueError(f"unsupported SimpleClick config settings: {', '.join(refused)}")
    return PlainViTConfig(
        patch_size=_pair(backbone["patch_size"]),
        embed_dim=int(backbone["embed_dim"]),
        depth=int(backbone["depth"]),
        num_heads=int(backbone["num_heads"]),
        neck_out_dims=tuple(int(c) for c in neck["out_dims"]),  # type: ignore[arg-type]
        head_channels=int(head["channels"]),
        img_size=_pair(backbone.get("img_size", 224)),
        mlp_ratio=float(backbone.get("mlp_ratio", 4.0)),
        qkv_bias=bool(backbone.get("qkv_bias", True)),
        upsample=str(head.get("upsample", "x1")),
        dropout_ratio=float(head.get("dropout_ratio", 0.1)),
        num_classes=int(head.get("num_classes", 1)),
        align_corners=bool(head.get("align_corners", False)),
        with_prev_mask=bool(params.get("with_prev_mask", True)),
        norm_radius=float(params.get("norm_radius", 5)),
    )


def model_from_config(params: dict[str, Any]) -> PlainViTModel:
    """Rebuild the architecture a checkpoint was saved from (no weights loaded)."""
    return PlainViTModel(config_from_params(params))


def resize_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Trained (1, 1 + g*g, D) position embedding -> (1, 1 + gh*gw, D) for a new token grid.

    Official `interpolate_pos_embed_inference`: the patch part is reshaped to the square trained
    grid, resized with bicubic (align_corners=False), flattened in raster order; the class slot
    is kept. Always start from the pristine trained tensor, as the official script re-loads the
    model for every dataset.
    """
    trained = math.isqrt(pos_embed.shape[1] - 1)
    if trained * trained != pos_embed.shape[1] - 1:
        raise ValueError(f"pos_embed with {pos_embed.shape[1] - 1} positions is not a square grid")
    if (trained, trained) == tuple(grid):
        return pos_embed.clone()
    dim = pos_embed.shape[2]
    patch = pos_embed[:, 1:].reshape(1, trained, trained, dim).permute(0, 3, 1, 2)
    patch = F.interpolate(patch, size=tuple(grid), mode="bicubic", align_corners=False)
    patch = patch.permute(0, 2, 3, 1).flatten(1, 2)
    return torch.cat((pos_embed[:, :1], patch), dim=1)


def set_input_size(
    model: PlainViTModel, size: tuple[int, int], pristine_pos_embed: torch.Tensor
) -> None:
    """Make `model` run at `size` (H, W) pixels: resize pos_embed from the trained grid."""
    patch = model.config.patch_size
    grid = (size[0] // patch[0], size[1] // patch[1])
    model.backbone.windows_per_axis(grid)  # fail now, not on the first click
    source = pristine_pos_embed.to(device=model.backbone.pos_embed.device)
    resized = resize_pos_embed(source.float(), grid).to(model.backbone.pos_embed.dtype)
    model.backbone.pos_embed = nn.Parameter(resized, requires_grad=False)


def _leaf_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            yield name, module


def thop_convention_param_count(model: PlainViTModel) -> int:
    """Parameters as the paper's Table 5 counts them (thop, golden/README.md §1).

    thop counts the parameters of leaf modules that run in the forward pass and that it has a
    rule for: not the ViT's directly held `pos_embed`/`cls_token`, not the unused classifier
    parts and head up-blocks, and not GroupNorm (thop has no GroupNorm rule).
    """
    unused = tuple(model.unused_modules())
    total = 0
    for name, module in _leaf_modules(model):
        if isinstance(module, nn.GroupNorm) or name.startswith(unused):
            continue
        total += sum(p.numel() for p in module.parameters(recurse=False))
    return total
