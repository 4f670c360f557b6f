"""The five network building blocks the SimpleClick and RITM networks used to take from timm.

Why our own: timm imports torchvision at import time, and PyPI's Linux torchvision wheels are
CUDA builds pinned to the newest torch. Installing timm therefore either replaces a CPU torch
with a CUDA one (and a dozen `nvidia-*` wheels), or, with the CPU torch kept, makes
`import timm` fail ("operator torchvision::nms does not exist"). Five small modules are not
worth that.

Each block reproduces timm 1.0 (`huggingface/pytorch-image-models`) exactly for the arguments
our networks pass, with the same submodule names and registration order, so `state_dict()`
lists the same names in the same order (official checkpoints keep loading with
`strict=True`), and the same operations in the same order, so outputs are bit-identical:

* `Attention`: `timm/layers/attention.py:Attention` with `qk_norm=False`, `scale_norm=False`,
  `gated=False` and the fused path (`use_fused_attn()` is true by default on torch >= 2.0):
  one `qkv` linear, heads split as (3, B, heads, N, head_dim), `F.scaled_dot_product_attention`,
  heads merged, `proj`. timm's identity `q_norm`/`k_norm`/`norm` are left out (no weights, no op).
* `Mlp`: `timm/layers/mlp.py:Mlp` with `use_conv=False`, no norm: fc1, act, drop1, fc2, drop2.
* `PatchEmbed`: `timm/layers/patch_embed.py:PatchEmbed` with `flatten=True`, no norm,
  `strict_img_size=False`, `dynamic_img_pad=False`: a patch-size stride conv, then NCHW -> NLC.
* `BasicBlock` / `Bottleneck`: `timm/models/resnet.py:BasicBlock` / `Bottleneck` with
  cardinality 1, base width 64, no attention / anti-aliasing / drop-block / drop-path: the
  residual is added in place before the last ReLU, as timm (and RITM's own
  `isegm/model/modeling/resnetv1b.py:BasicBlockV1b` / `BottleneckV1b`) do.

Dropout modules stay (with timm's names) although evaluation runs them as identities, so the
module tree matches what the official networks were built from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Attention", "BasicBlock", "Bottleneck", "Mlp", "PatchEmbed"]


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


class Attention(nn.Module):
    """Multi-head self-attention over B x N x C tokens (fused scaled-dot-product kernel)."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0
        )
        x = x.transpose(1, 2).reshape(batch, tokens, channels)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    """Two linear layers with an activation between (the transformer block's feed-forward)."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(self.act(self.fc1(x)))
        return self.drop2(self.fc2(x))


class PatchEmbed(nn.Module):
    """Image B x C x H x W -> tokens B x (H/p * W/p) x D by a stride-p convolution.

    `img_size` only records the training grid (timm keeps it for `strict_img_size`); any input
    whose sides are multiples of the patch size is accepted, as with timm's
    `strict_img_size=False`.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int] = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
    ) -> None:
        super().__init__()
        self.img_size = _pair(img_size)
        self.patch_size = _pair(patch_size)
        self.grid_size = (
            self.img_size[0] // self.patch_size[0],
            self.img_size[1] // self.patch_size[1],
        )
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(
            in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2:]
        if height % self.patch_size[0] or width % self.patch_size[1]:
            raise ValueError(
                f"input {height} x {width} is not a multiple of the patch size {self.patch_size}"
            )
        return self.proj(x).flatten(2).transpose(1, 2)


class BasicBlock(nn.Module):
    """ResNet basic block: 3x3 conv-BN-ReLU, 3x3 conv-BN, + shortcut, ReLU."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        outplanes = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, outplanes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(outplanes)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        return self.act2(x)


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 reduce, 3x3, 1x1 expand (x4), each with BN, + shortcut, ReLU."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        outplanes = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(planes, outplanes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        return self.act3(x)
