"""Parameter and FLOP counts of one network, in the paper's convention and in the full one.

Two FLOP conventions, never mixed:

* ``paper``: what SimpleClick's notebooks print (``notebooks/analyze_effiency.ipynb``,
  ``notebooks/test_simpleclick_model_size*.ipynb``, PROTOCOL.md section 9):
  ``thop.profile(model, inputs=(randn(1, 4, S, S), randn(1, 2, 3)))`` and GFLOPs = 2 x MACs.
  thop only sees leaf modules it has a rule for, so the attention matrix products (functional
  ``q @ k``), softmax, GELU, GroupNorm and functional interpolation are left out; its
  parameter count likewise skips parameters of modules without a rule or that never run
  (``pos_embed``, ``cls_token``, the unused classifier, GroupNorm).
* ``full``: ``torch.utils.flop_counter.FlopCounterMode`` on the same call, which counts every
  matrix product and convolution the forward dispatches (attention included) at 2 flops per
  multiply-add and nothing else (no normalisation, elementwise or interpolation ops).

Both are counted by the libraries; nothing is counted by hand here. The full count equals
2 x fvcore's conv + linear + matmul counts (golden/compute.json, fvcore counts a multiply-add
as one flop) exactly for every model; fvcore's total also holds normalisation and bilinear
upsampling, 0.1 % (ViT-H) to 1.3 % (ViT-xTiny at 224) more.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

PAPER_CONVENTION = "thop: 2 x MACs of thop-counted modules (no attention matmuls); paper Table 5"
FULL_CONVENTION = "torch FlopCounterMode: 2 x MACs of all conv/matmul incl. attention"

MEGA = 1e6
MEBI = float(2**20)  # paper Table 1 divides parameter counts by 2^20 (golden/README.md section 1)


@dataclass(frozen=True)
class ParamCounts:
    """Full parameter counts (every `nn.Parameter`, as in the state_dict) by top-level module."""

    total: int
    by_top_level_module: Mapping[str, int]

    def part(self, name: str) -> int | None:
        """Count of one top-level module, None where the model has no such module."""
        return self.by_top_level_module.get(name)


def count_parameters(model: nn.Module) -> ParamCounts:
    """Group `named_parameters()` by their first name component (the manifests' grouping).

    Shapes only, so a model built on the meta device is counted without allocating weights.
    Modules that hold no parameters (``dist_maps``) do not appear.
    """
    by_module: dict[str, int] = {}
    for name, parameter in model.named_parameters():
        top = name.split(".", 1)[0]
        by_module[top] = by_module.get(top, 0) + parameter.numel()
    return ParamCounts(total=sum(by_module.values()), by_top_level_module=by_module)


def network_inputs(
    size: int | tuple[int, int], device: torch.device | str = "cpu", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The notebooks' profiling inputs: image + previous mask 1 x 4 x S x S, points 1 x 2 x 3.

    Standard-normal as in the notebooks; counts depend on shapes only, so the values (and the
    seed) never change a figure. On the meta device no values exist at all.
    """
    height, width = (size, size) if isinstance(size, int) else size
    device = torch.device(device)
    if device.type == "meta":
        return (
            torch.empty(1, 4, height, width, device=device),
            torch.empty(1, 2, 3, device=device),
        )
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(1, 4, height, width, generator=generator)
    points = torch.randn(1, 2, 3, generator=generator)
    return image.to(device), points.to(device)


@dataclass(frozen=True)
class PaperCount:
    """thop's result: multiply-accumulates and the parameters of the modules it counted."""

    macs: int
    params: int

    @property
    def gflops(self) -> float:
        return 2 * self.macs / 1e9


def count_paper_flops(model: nn.Module, size: int | tuple[int, int]) -> PaperCount:
    """thop.profile exactly as the official notebooks call it (eval mode, no grad).

    thop attaches temporary buffers and hooks, which are all removed again; its stdout chatter
    is swallowed. Works on the meta device (its rules read shapes only).
    """
    return count_paper_flops_on(model, network_inputs(size, _model_device(model)))


def count_paper_flops_on(model: nn.Module, inputs: tuple) -> PaperCount:
    """`thop.profile(model, inputs=inputs)` with the clean-up `count_paper_flops` describes."""
    with warnings.catch_warnings():  # thop 0.1.1 compares versions with distutils
        warnings.simplefilter("ignore", DeprecationWarning)
        import thop

    before = {id(m) for m in model.modules() if set(m._buffers) & _THOP_BUFFERS}
    hooks_before = {id(m): set(m._forward_hooks) for m in model.modules()}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            macs, params = thop.profile(model, inputs=inputs, verbose=False)
    finally:
        # thop 0.1.1 adds `total_ops`/`total_params` buffers to every module but removes them
        # only from the modules it hooked; drop the rest so the state_dict stays official.
        # A module registered under two parents (SAM 2's Hiera shares its MaxPool2d between a
        # block and its attention) is hooked twice and thop removes one hook only: drop every
        # hook thop left behind.
        for module in model.modules():
            if id(module) not in before:
                for name in _THOP_BUFFERS:
                    module._buffers.pop(name, None)
            for key in set(module._forward_hooks) - hooks_before.get(id(module), set()):
                del module._forward_hooks[key]
    return PaperCount(macs=int(round(float(macs))), params=int(round(float(params))))


_THOP_BUFFERS = {"total_ops", "total_params"}


def count_full_flops(model: nn.Module, size: int | tuple[int, int]) -> tuple[int, dict[str, int]]:
    """Total flops and flops per aten operator of one forward pass under FlopCounterMode."""
    return count_full_flops_on(model, network_inputs(size, _model_device(model)))


def count_full_flops_on(model: nn.Module, inputs: tuple) -> tuple[int, dict[str, int]]:
    """FlopCounterMode over `model(*inputs)` in eval mode, no grad.

    `F.scaled_dot_product_attention` runs with its math backend while counting: the fused CPU
    kernel has no FlopCounterMode formula, so on the CPU the attention products would go
    uncounted while the meta device (which decomposes SDPA) counts them. With the math backend
    they appear as `bmm` on every device.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
            model(*inputs)
    finally:
        model.train(was_training)
    by_operator = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), by_operator


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")
