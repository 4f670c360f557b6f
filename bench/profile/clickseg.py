"""`bench profile` rows of the ClickSEG models (FocalClick, CDNet).

Counts, as golden/clickseg/compute.json defines them:

* `gflops_paper` / `params_thop_M`: thop on the coarse forward at the evaluation input
  (FocalClick: 1 x 4 x 256 x 256 with the previous mask; CDNet: 1 x 3 x 384 x 384), 2 x MACs,
  the convention of SimpleClick's Table 5 (which lists these networks as SegFormer-B0/B3 and
  ResNet-34). FocalClick's refiner runs outside that forward (`model.refine`), and thop does
  not see CDNet's PixelDiffusion (functional convolutions, no parameters).
* `gflops_full`: torch's FlopCounterMode on the same forward (attention and FDM matmuls
  included).
* `gmacs_clickseg`: ClickSEG's own unit: `scripts/count_flops.py` prints mmcv
  `get_model_complexity_info` multiply-accumulates as "FLOPs". mmcv is not installed here;
  this column is thop's MAC count of the full forward, which compute.json puts within 0.2 % of
  mmcv's (B0 1.711 vs 1.709 GMACs, B3 12.372 vs 12.368, HRNet-18s 3.664 vs 3.655, CDNet 56.80
  vs 56.75). The script's own printed figure counts the segmentor alone without the click
  branch (compute.json `count_flops_strings`), not reproduced here.
* `gflops_refiner_paper` / `_full`: FocalClick's refiner alone at 256 (image 3 ch, click map
  2 ch, feature at 64 x 64, logits 1 ch), counted once per click on top of the coarse pass.

Seconds per click run the official predictors (`FocalPredictor`, `DiffisionPredictor`); the
model share times the coarse forward plus the refiner (FocalClick) or PixelDiffusion (CDNet).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.profile import clicks as profile_clicks
from bench.profile import counts as profile_counts
from bench.profile import memory as profile_memory
from bench.sample import Sample

CLICKSEG_FAMILY = "clickseg"
CLICKSEG_CONVENTION = (
    "multiply-accumulates (ClickSEG scripts/count_flops.py unit), counted by thop on the "
    "coarse forward (mmcv's counter within 0.2 %, golden/clickseg/compute.json)"
)
_LABELS = {
    "focalclick-segformer-b0-s2": "FocalClick SegFormer-B0-S2 256",
    "focalclick-segformer-b3-s2": "FocalClick SegFormer-B3-S2 256",
    "focalclick-hrnet18s-s2": "FocalClick HRNet-18s-S2 256",
    "cdnet-resnet34": "CDNet ResNet-34 384",
}


def clickseg_targets() -> dict[str, Any]:
    """`ProfileTarget`s of the registered ClickSEG models (variant = registry name)."""
    from bench.adapters.clickseg.models import INFER_SIZE
    from bench.profile import ProfileTarget

    return {
        name: ProfileTarget(name, CLICKSEG_FAMILY, name, INFER_SIZE[name], label)
        for name, label in _LABELS.items()
    }


def build_network(
    target: Any, device: torch.device | str = "cpu", checkpoint: Path | str | None = None
) -> nn.Module:
    """Random weights, or the official checkpoint loaded strictly (`load_clickseg`)."""
    from bench.adapters.clickseg.predictor import build_model, load_clickseg

    if checkpoint is not None:
        network = load_clickseg(target.name, checkpoint)[0]
    else:
        network = build_model(target.name)
    return network.to(device).eval()


def is_cdnet(target: Any) -> bool:
    return target.name.startswith("cdnet")


def network_inputs(target: Any, size: int, device: torch.device | str = "cpu") -> tuple:
    """compute.json's thop inputs: randn image (+ previous mask for FocalClick), randn points."""
    generator = torch.Generator().manual_seed(0)
    channels = 3 if is_cdnet(target) else 4
    image = torch.randn(1, channels, size, size, generator=generator)
    points = torch.randn(1, 2, 3, generator=generator)
    return image.to(device), points.to(device)


class _Refine(nn.Module):
    """FocalClick's refiner as one module call, for the counters."""

    def __init__(self, refiner: nn.Module) -> None:
        super().__init__()
        self.refiner = refiner

    def forward(self, image, click_map, feature, logits):  # type: ignore[no-untyped-def]
        return self.refiner(image, click_map, feature, logits)


def refiner_inputs(network: nn.Module, size: int, device: torch.device | str = "cpu") -> tuple:
    channels = network.refiner.refine_fusion.conv.in_channels
    generator = torch.Generator().manual_seed(0)
    shapes = [(1, 3, size, size), (1, 2, size, size), (1, channels, size // 4, size // 4)]
    shapes.append((1, 1, size, size))
    return tuple(torch.randn(s, generator=generator).to(device) for s in shapes)


@dataclasses.dataclass(frozen=True)
class ClickSEGCounts:
    params: profile_counts.ParamCounts
    paper: profile_counts.PaperCount
    full_flops: int
    refiner_paper: profile_counts.PaperCount | None
    refiner_full: int | None


def count_clickseg_network(
    target: Any, size: int, checkpoint: Path | str | None = None
) -> ClickSEGCounts:
    """Parameters and FLOPs on the CPU (the click disks and PDM kernels need real values)."""
    network = build_network(target, "cpu", checkpoint)
    params = profile_counts.count_parameters(network)
    inputs = network_inputs(target, size)
    with torch.no_grad():
        paper = profile_counts.count_paper_flops_on(network, inputs)
        full, _ = profile_counts.count_full_flops_on(network, inputs)
        refiner_paper = refiner_full = None
        if not is_cdnet(target):
            refine = _Refine(network.refiner).eval()
            refine_inputs = refiner_inputs(network, size)
            refiner_paper = profile_counts.count_paper_flops_on(refine, refine_inputs)
            refiner_full, _ = profile_counts.count_full_flops_on(refine, refine_inputs)
    return ClickSEGCounts(params, paper, full, refiner_paper, refiner_full)


def predictor(target: Any, network: nn.Module, size: int, device: torch.device) -> Any:
    """The official evaluation predictor around an already built network."""
    if is_cdnet(target):
        from bench.adapters.clickseg.cdnet_predictor import CDNetPredictor

        return CDNetPredictor(network, device=device)
    from bench.adapters.clickseg.focal_predictor import FocalPredictor

    return FocalPredictor(network, infer_size=size, device=device)


def profile_clickseg(
    profile: Any,
    target: Any,
    size: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    checkpoint: Path | str | None = None,
    samples: Callable[[], Iterable[Sample]] | None = None,
    dataset: str = "",
    max_clicks: int = profile_clicks.DEFAULT_MAX_CLICKS,
    warmup_clicks: int = profile_clicks.DEFAULT_WARMUP_CLICKS,
):
    """One `ProfileRow` (`profile` is the `bench.profile` module, passed to avoid a cycle)."""
    if dtype != torch.float32:
        raise ValueError(f"{target.name}: the ClickSEG predictors run in float32 only")
    if is_cdnet(target) and size != target.size:
        raise ValueError(f"{target.name}: the official CDNet predictor always runs at 384")
    device = torch.device(device)
    counts = count_clickseg_network(target, size, checkpoint)
    image, points = network_inputs(target, size, device)

    def prepare() -> nn.Module:
        network = build_network(target, device, checkpoint)
        with torch.inference_mode():
            network(image, points)  # warm-up
        return network

    def forward(network: nn.Module) -> None:
        with torch.inference_mode():
            network(image, points)

    network, memory = profile_memory.measure_peak_memory(prepare, forward, device)
    spc = None
    if samples is not None:
        timed = [network, network.PDM if is_cdnet(target) else network.refiner]
        run = predictor(target, network, size, device)
        times = profile_clicks.time_clicks(run, timed, samples(), device, max_clicks)
        spc = profile_clicks.summarize(times, dataset, warmup_clicks)
    row = profile.make_row(
        target,
        size,
        device,
        dtype,
        profile.Counts(counts.params, counts.paper, counts.full_flops),
        memory,
        spc,
        checkpoint,
    )
    return dataclasses.replace(
        row,
        flops_convention_clickseg=CLICKSEG_CONVENTION,
        gmacs_clickseg=counts.paper.macs / 1e9,
        gflops_refiner_paper=None if counts.refiner_paper is None else counts.refiner_paper.gflops,
        gflops_refiner_full=None if counts.refiner_full is None else counts.refiner_full / 1e9,
    )
