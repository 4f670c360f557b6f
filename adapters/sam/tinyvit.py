"""TinyViT-5M, MobileSAM's image encoder, written here without timm.

MobileSAM (Zhang et al., "Faster Segment Anything", 2023) distils SAM's ViT-H image encoder into
TinyViT-5M (Wu et al., ECCV 2022) and keeps SAM's prompt encoder and mask decoder. The official
encoder, `mobile_sam/modeling/tiny_vit_sam.py` (ChaoningZhang/MobileSAM, commit 34bbbfd), imports
timm for `DropPath`, `to_2tuple`, `trunc_normal_` and `register_model`; timm pulls torchvision,
which this project never installs. `build_sam_vit_t` uses drop_path_rate 0 (every DropPath is
an identity) and the initialisers are overwritten by the checkpoint, so none of the four is
needed for inference.

Module and parameter names follow the official file so that `mobile_sam.pt` (a bare state_dict,
439 entries) loads strictly; the unused ImageNet classifier (`norm_head`, `head`) is built
because the released file holds it. Computations follow the official forward passes in the same
order (tests/test_mobilesam.py compares with the official model's outputs in
shared/golden/mobilesam).

One deliberate difference: the official `Attention.train(False)` caches `attention_biases[:,
attention_bias_idxs]` in a buffer `ab`, and `build_sam_vit_t` calls `.eval()` before loading the
checkpoint, so right after the official builder the cache holds the constructor's zeros (the
official README's second `.eval()` refreshes it; golden README, quirk 1). Here the bias table is
gathered from the loaded parameters at every forward, which is what the README's usage gives.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

# build_sam_vit_t's TinyViT arguments (mobile_sam/build_sam.py).
EMBED_DIMS = (64, 128, 160, 320)
DEPTHS = (2, 2, 6, 2)
NUM_HEADS = (2, 4, 5, 10)
WINDOW_SIZES = (7, 7, 14, 7)
MLP_RATIO = 4.0
MBCONV_EXPAND_RATIO = 4.0
LOCAL_CONV_SIZE = 3
NUM_CLASSES = 1000
IMG_SIZE = 1024
GRID = 64  # forward_features hard-codes the 64 x 64 token grid (1024 / 16)


class ConvBN(nn.Sequential):
    """Official `Conv2d_BN`: a bias-free convolution `c` followed by BatchNorm `bn`."""

    def __init__(
        self, a: int, b: int, ks: int = 1, stride: int = 1, pad: int = 0, groups: int = 1
    ) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(a, b, ks, stride, pad, 1, groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(b))


class PatchEmbed(nn.Module):
    """Two stride-2 3x3 ConvBN with a GELU between: 1024 -> 256 x 256 tokens."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        half = embed_dim // 2
        self.seq = nn.Sequential(
            ConvBN(in_chans, half, 3, 2, 1), nn.GELU(), ConvBN(half, embed_dim, 3, 2, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 project, residual, GELU."""

    def __init__(self, chans: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(chans * expand_ratio)
        self.conv1 = ConvBN(chans, hidden, ks=1)
        self.conv2 = ConvBN(hidden, hidden, ks=3, stride=1, pad=1, groups=hidden)
        self.conv3 = ConvBN(hidden, chans, ks=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        x = self.conv3(x)
        x += shortcut
        return F.gelu(x)


class PatchMerging(nn.Module):
    """1x1, 3x3 depthwise (stride 2, or 1 into the 320-wide last stage), 1x1; tokens out."""

    def __init__(self, input_resolution: tuple[int, int], dim: int, out_dim: int) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        stride = 1 if out_dim in (320, 448, 576) else 2  # the official rule, verbatim
        self.conv1 = ConvBN(dim, out_dim, 1, 1, 0)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            h, w = self.input_resolution
            x = x.view(len(x), h, w, -1).permute(0, 3, 1, 2)
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        x = self.conv3(x)
        return x.flatten(2).transpose(1, 2)


class ConvLayer(nn.Module):
    """Stage 0: MBConv blocks on the B x C x H x W map, then PatchMerging."""

    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, out_dim: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, MBCONV_EXPAND_RATIO) for _ in range(depth))
        self.downsample = PatchMerging(resolution, dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class Attention(nn.Module):
    """LeViT-style window attention with a learned bias per head and per |dy|, |dx| offset."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, resolution: tuple[int, int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim**-0.5
        self.key_dim = key_dim
        self.d = key_dim  # attn_ratio 1
        self.dh = key_dim * num_heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, self.dh + 2 * key_dim * num_heads)
        self.proj = nn.Linear(self.dh, dim)
        points = list(itertools.product(range(resolution[0]), range(resolution[1])))
        offsets: dict[tuple[int, int], int] = {}
        idxs = []
        for p1 in points:
            for p2 in points:
                offset = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                idxs.append(offsets.setdefault(offset, len(offsets)))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, len(offsets)))
        n = len(points)
        self.register_buffer(
            "attention_bias_idxs", torch.LongTensor(idxs).view(n, n), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(self.norm(x))
        q, k, v = qkv.view(b, n, self.num_heads, -1).split([self.key_dim, self.key_dim, self.d], 3)
        q, k, v = q.permute(0, 2, 1, 3), k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)
        bias = self.attention_biases[:, self.attention_bias_idxs]
        attn = ((q @ k.transpose(-2, -1)) * self.scale + bias).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, self.dh))


class TinyViTBlock(nn.Module):
    """Window attention (zero-padded to whole windows), depthwise 3x3 ConvBN, MLP."""

    def __init__(
        self, dim: int, resolution: tuple[int, int], num_heads: int, window_size: int
    ) -> None:
        super().__init__()
        self.input_resolution = resolution
        self.window_size = window_size
        self.attn = Attention(dim, dim // num_heads, num_heads, (window_size, window_size))
        self.mlp = Mlp(dim, int(dim * MLP_RATIO))
        pad = LOCAL_CONV_SIZE // 2
        self.local_conv = ConvBN(dim, dim, ks=LOCAL_CONV_SIZE, stride=1, pad=pad, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.input_resolution
        b, length, c = x.shape
        ws = self.window_size
        res_x = x
        if h == ws and w == ws:
            x = self.attn(x)
        else:
            x = x.view(b, h, w, c)
            pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
            if pad_b or pad_r:
                x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
            ph, pw = h + pad_b, w + pad_r
            nh, nw = ph // ws, pw // ws
            x = x.view(b, nh, ws, nw, ws, c).transpose(2, 3).reshape(b * nh * nw, ws * ws, c)
            x = self.attn(x)
            x = x.view(b, nh, nw, ws, ws, c).transpose(2, 3).reshape(b, ph, pw, c)
            if pad_b or pad_r:
                x = x[:, :h, :w].contiguous()
            x = x.view(b, length, c)
        x = res_x + x
        x = x.transpose(1, 2).reshape(b, c, h, w)
        x = self.local_conv(x)
        x = x.view(b, c, length).transpose(1, 2)
        return x + self.mlp(x)


class BasicLayer(nn.Module):
    """Stages 1-3: TinyViT blocks on tokens, then PatchMerging (not after the last stage)."""

    def __init__(
        self,
        dim: int,
        resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window_size: int,
        out_dim: int | None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim, resolution, num_heads, window_size) for _ in range(depth)
        )
        self.downsample = None if out_dim is None else PatchMerging(resolution, dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class LayerNorm2d(nn.Module):
    """Channel LayerNorm of the neck (the official file's own copy of SAM's `LayerNorm2d`)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class TinyViT(nn.Module):
    """MobileSAM's image encoder: 1 x 3 x 1024 x 1024 -> 1 x 256 x 64 x 64 embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.img_size = IMG_SIZE  # read by Sam.preprocess / postprocess_masks
        self.patch_embed = PatchEmbed(3, EMBED_DIMS[0])
        patches = IMG_SIZE // 4
        self.layers = nn.ModuleList()
        for i, dim in enumerate(EMBED_DIMS):
            # The official resolution rule: stage 3 keeps stage 2's grid (stride-1 merging).
            side = patches // (2 ** (i - 1 if i == 3 else i))
            out_dim = EMBED_DIMS[i + 1] if i < len(EMBED_DIMS) - 1 else None
            if i == 0:
                layer: nn.Module = ConvLayer(dim, (side, side), DEPTHS[i], EMBED_DIMS[1])
            else:
                layer = BasicLayer(
                    dim, (side, side), DEPTHS[i], NUM_HEADS[i], WINDOW_SIZES[i], out_dim
                )
            self.layers.append(layer)
        self.norm_head = nn.LayerNorm(EMBED_DIMS[-1])  # unused; in the released state_dict
        self.head = nn.Linear(EMBED_DIMS[-1], NUM_CLASSES)  # unused; in the released state_dict
        self.neck = nn.Sequential(
            nn.Conv2d(EMBED_DIMS[-1], 256, kernel_size=1, bias=False),
            LayerNorm2d(256),
            nn.Conv2d(256, 256, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(256),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        b, _, c = x.size()
        x = x.view(b, GRID, GRID, c).permute(0, 3, 1, 2)
        return self.neck(x)
