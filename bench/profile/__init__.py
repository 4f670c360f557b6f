"""`bench profile`: parameters per module, FLOPs, peak memory and seconds per click.

One row per (model, input size) in `profile.csv`, the compute side of the paper's Tables 1
and 5. No weights are needed: the architecture is built with random weights unless a
checkpoint is given, and everything that depends on shapes only (parameters, FLOPs) is
counted on the meta device, so even ViT-H costs no memory there.

Conventions (each named in the CSV):

* Parameters: `params_*_M` are full counts (every parameter of the state_dict) / 1e6;
  `params_*_Mi` the same / 2^20, the unit of the paper's Table 1; `params_thop_M` is thop's
  count / 1e6, the paper's Table 5 figure (it omits parameters that thop does not see, see
  `bench.profile.counts`). Backbone / neck / head are the SimpleClick top-level modules; the
  coordinate patch embedding (`patch_embed_coords`) belongs to none of them and is listed in
  `params_by_module` with every other top-level module (RITM: `maps_transform`,
  `feature_extractor`; Table 1 has no RITM row, so their backbone/neck/head cells stay empty).
* FLOPs: `gflops_paper` (thop, 2 x MACs, no attention matmuls) and `gflops_full`
  (FlopCounterMode, attention included), one forward pass at batch 1, input S x S.
* Peak memory: see `bench.profile_memory`; the resident network (weights in `dtype`) plus one
  forward pass of batch 1 at S x S after an unmeasured warm-up pass, on CUDA and CPU alike.
* Seconds per click: see `bench.profile_clicks`.

Why the paper's Table 1 parts do not add up to its Table 5 totals: Table 1 divides full module
counts by 2^20 and leaves out `patch_embed_coords`; Table 5 is thop's count / 1e6, which also
leaves out `pos_embed`, `cls_token`, the unused classifier (`backbone.head`, `fc_norm`), the
head's unused `up_conv1/2` and every GroupNorm. E.g. ViT-B: 82.99 + 9.04 + 0.90 = 92.92 Mi
(paper 83.0 + 9.0 + 0.9), full count 98.03 M, thop 96.46 M (paper 96.46).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.adapters import Predictor
from bench.adapters.common.cascade import CascadeConfig
from bench.profile import clicks as profile_clicks
from bench.profile import counts as profile_counts
from bench.profile import memory as profile_memory
from bench.sample import Sample

SIMPLECLICK = "simpleclick"
RITM = "ritm"
SIMPLECLICK_TRAINED_SIZE = 448


@dataclass(frozen=True)
class ProfileTarget:
    """How to build one registered model's architecture and the size the paper profiles it at."""

    name: str  # model registry name
    family: str  # SIMPLECLICK, RITM, "sam" / "sam2" (bench.profile.sam), "clickseg"
    variant: str  # builder variant
    size: int  # paper Table 5 input size (also the evaluation's network input size)
    label: str  # the paper's row
    # CFR-ICL: the evaluation's cascade-forward refinement (more forwards on the first clicks).
    cascade: CascadeConfig | None = None


TARGETS: dict[str, ProfileTarget] = {
    t.name: t
    for t in (
        ProfileTarget("simpleclick-vit-xt", SIMPLECLICK, "xtiny", 448, "ViT-xTiny 448"),
        ProfileTarget("simpleclick-vit-b", SIMPLECLICK, "base", 448, "ViT-B 448"),
        ProfileTarget("simpleclick-vit-l", SIMPLECLICK, "large", 448, "ViT-L 448"),
        ProfileTarget("simpleclick-vit-h", SIMPLECLICK, "huge", 448, "ViT-H 448"),
        # Table 5's "ViT-B 224" is the 448 architecture run at 224 (golden/README.md section 2).
        ProfileTarget("simpleclick-vit-b224", SIMPLECLICK, "base", 224, "ViT-B 224"),
        ProfileTarget("ritm-hrnet18s", RITM, "hrnet18s", 400, "HRNet18s-OCR48 400"),
        ProfileTarget("ritm-hrnet18", RITM, "hrnet18", 400, "HRNet18-OCR64 400"),
        ProfileTarget("ritm-hrnet32", RITM, "hrnet32", 400, "HRNet32-OCR128 400"),
        # CFR-ICL: SimpleClick's networks, evaluated with its defaults (cf_n=4, acf).
        *(
            ProfileTarget(
                f"cfr-icl-vit-{suffix}",
                SIMPLECLICK,
                variant,
                448,
                f"ViT-{suffix.upper()} 448, CFR-ICL cf_n=4 + acf",
                CascadeConfig(cf_n=4, acf=True),
            )
            for suffix, variant in (("b", "base"), ("l", "large"), ("h", "huge"))
        ),
    )
}

TABLE1_MODULES = {SIMPLECLICK: ("backbone", "neck", "head"), RITM: (None, None, None)}

PARAMS_CONVENTION = "full parameter count (state_dict); _M = /1e6, _Mi = /2^20 (Table 1)"

CSV_COLUMNS = (
    "model",
    "input_size",
    "device",
    "dtype",
    "params_M",
    "params_backbone_M",
    "params_neck_M",
    "params_head_M",
    "gflops_paper",
    "gflops_full",
    "flops_convention_paper",
    "flops_convention_full",
    "peak_mem_MiB",
    "mem_kind",
    "spc_model_median_s",
    "spc_model_iqr_s",
    "spc_harness_median_s",
    "spc_dataset",
)
"""The columns the report reads, in this order; `ProfileRow` appends more after them."""


def resolve_target(name: str) -> ProfileTarget:
    """SimpleClick / RITM (`TARGETS`), SAM family (`bench.profile.sam.sam_targets`) or ClickSEG
    (`bench.profile.clickseg.clickseg_targets`)."""
    from bench.profile.clickseg import clickseg_targets
    from bench.profile.sam import sam_targets

    targets = {**TARGETS, **sam_targets(), **clickseg_targets()}
    try:
        return targets[name]
    except KeyError:
        known = ", ".join(targets)
        raise KeyError(f"no architecture to profile for {name!r}; profilable: {known}") from None


SIMPLECLICK_PATCH = 16
SIMPLECLICK_WINDOW = 224


def check_input_size(target: ProfileTarget, size: int) -> None:
    """Refuse a size the network cannot run at, before anything is built: SimpleClick's
    windowed blocks tile the token grid with 224-px windows (`isegm/model/modeling/models_vit.py`
    `patchify`, `PlainViT.windows_per_axis` here), SAM's encoder takes 1024 only."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"{target.name}: input size {size!r} must be a positive number of pixels")
    if target.family in ("sam", "sam2"):
        from bench.profile.sam import SAM_INPUT_SIZE

        if size != SAM_INPUT_SIZE:
            raise ValueError(
                f"{target.name}: the image encoder runs at {SAM_INPUT_SIZE} x {SAM_INPUT_SIZE} "
                f"only (got {size})"
            )
    if target.family == SIMPLECLICK:
        grid = size // SIMPLECLICK_PATCH
        windows = grid // (SIMPLECLICK_WINDOW // SIMPLECLICK_PATCH)
        if windows < 1 or grid % windows:
            raise ValueError(
                f"{target.name}: input size {size} cannot be split into {SIMPLECLICK_WINDOW}-px "
                f"windows (token grid {grid} of {SIMPLECLICK_PATCH}-px patches); use at least "
                f"{SIMPLECLICK_WINDOW} px, e.g. 224, 448, 672"
            )


def build_network(
    target: ProfileTarget,
    size: int | None = None,
    device: torch.device | str = "cpu",
    checkpoint: Path | str | None = None,
) -> nn.Module:
    """The network of `target` on `device` (``"meta"`` for shapes only), eval mode, input `size`.

    Random weights from the adapters' builders unless `checkpoint` is given, in which case the
    architecture comes from the checkpoint's saved config and its weights are loaded strictly.
    SimpleClick is built at its training size (448, the position-embedding grid of every
    released checkpoint) and, for another input size, its position embedding is resized as the
    official `interpolate_pos_embed_inference` does; thop and FlopCounterMode count nothing
    that depends on it. RITM runs at any size as built.
    """
    network = build_trained_network(target, device, checkpoint)
    set_input_size(target, network, target.size if size is None else size)
    return network


def build_trained_network(
    target: ProfileTarget, device: torch.device | str = "cpu", checkpoint: Path | str | None = None
) -> nn.Module:
    """The network as trained and saved (no input-size adaptation), eval mode."""
    if checkpoint is not None:
        network = _network_from_checkpoint(target, Path(checkpoint), device)
    else:
        with torch.device(device):
            network = _random_network(target)
    return network.eval()


def trained_pos_embed(target: ProfileTarget, network: nn.Module) -> torch.Tensor | None:
    """SimpleClick: a copy of the trained position embedding, the source of every resize."""
    if target.family != SIMPLECLICK:
        return None
    return network.backbone.pos_embed.detach().clone()


def set_input_size(
    target: ProfileTarget, network: nn.Module, size: int, pristine: torch.Tensor | None = None
) -> None:
    """Make a SimpleClick network run at size x size: resize the position embedding from
    `pristine` (default: the current one, right for a network still at its trained size)."""
    if target.family != SIMPLECLICK:
        return
    from bench.adapters.simpleclick import network as simpleclick

    current = network.backbone.pos_embed
    if pristine is None:
        if network.config.img_size == (size, size):
            return
        pristine = current.detach().clone()
    simpleclick.set_input_size(network, (size, size), pristine)


def _random_network(target: ProfileTarget) -> nn.Module:
    if target.family == SIMPLECLICK:
        from bench.adapters.simpleclick.network import build_simpleclick

        return build_simpleclick(target.variant, img_size=SIMPLECLICK_TRAINED_SIZE)
    from bench.adapters.ritm.network import build_hrnet

    return build_hrnet(target.variant)


def _network_from_checkpoint(
    target: ProfileTarget, path: Path, device: torch.device | str
) -> nn.Module:
    """The adapters' strict loaders (they also refuse a checkpoint of another variant); on the
    meta device only the saved config is used."""
    if str(device) == "meta":
        from bench.adapters.checkpoint import config_params, read_checkpoint

        params = config_params(read_checkpoint(path))
        if target.family == SIMPLECLICK:
            from bench.adapters.simpleclick.network import model_from_config
        else:
            from bench.adapters.ritm.network import model_from_config
        with torch.device("meta"):
            return model_from_config(params)
    if target.family == SIMPLECLICK:
        from bench.adapters.simpleclick.predictor import load_plainvit

        network = load_plainvit(target.variant, path)[0]
    else:
        from bench.adapters.ritm.predictor import load_hrnet

        network = load_hrnet(target.variant, path)[0]
    return network.to(device)


@dataclass(frozen=True)
class ProfileRow:
    model: str
    input_size: int
    device: str
    dtype: str
    params_M: float
    params_backbone_M: float | None
    params_neck_M: float | None
    params_head_M: float | None
    gflops_paper: float
    gflops_full: float
    flops_convention_paper: str
    flops_convention_full: str
    peak_mem_MiB: float | None
    mem_kind: str
    spc_model_median_s: float | None
    spc_model_iqr_s: float | None
    spc_harness_median_s: float | None
    spc_dataset: str
    # Beyond the report's columns:
    params_convention: str
    params_thop_M: float
    params_Mi: float
    params_backbone_Mi: float | None
    params_neck_Mi: float | None
    params_head_Mi: float | None
    params_by_module: str  # JSON {top-level module: parameter count}
    spc_harness_iqr_s: float | None
    spc_total_median_s: float | None
    spc_timed_clicks: int | None
    spc_warmup_clicks: int | None
    checkpoint: str
    torch_threads: int  # intra-op CPU threads (CPU timings depend on them and on other load)
    # SAM family only (bench.profile.sam): encoder once per instance, decoder per click.
    timing_split: str = ""
    decoder_pass: str = ""
    params_encoder_M: float | None = None
    params_decoder_M: float | None = None
    gflops_encoder_paper: float | None = None
    gflops_decoder_paper: float | None = None
    gflops_encoder_full: float | None = None
    gflops_decoder_full: float | None = None
    spc_encoder_median_s: float | None = None  # image encoder forward, per instance
    spc_encoder_iqr_s: float | None = None
    spc_start_median_s: float | None = None  # whole start(): what `bench run` stores as start_s
    spc_encoder_instances: int | None = None
    # CFR-ICL cascade: the first clicks run up to cf_n + 1 forwards (GFLOPs are per forward).
    cascade: str = ""
    forwards_per_click: float | None = None  # mean network forwards over the timed clicks
    # ClickSEG only (bench.profile.clickseg): its MAC unit and FocalClick's refiner per click.
    flops_convention_clickseg: str = ""
    gmacs_clickseg: float | None = None
    gflops_refiner_paper: float | None = None
    gflops_refiner_full: float | None = None


def _scaled(count: int | None, unit: float) -> float | None:
    return None if count is None else count / unit


@dataclass(frozen=True)
class Counts:
    params: profile_counts.ParamCounts
    paper: profile_counts.PaperCount
    full_flops: int


def count_network(target: ProfileTarget, size: int, checkpoint: Path | str | None = None) -> Counts:
    """Parameters (architecture at its own size) and FLOPs of one forward pass at `size`.

    Counted on the meta device (shapes only, no weights); a network whose construction or
    forward pass needs real values is counted on the CPU instead, with the same result.
    """
    try:
        return _count_on(target, size, checkpoint, "meta")
    except (NotImplementedError, RuntimeError):
        return _count_on(target, size, checkpoint, "cpu")


def _count_on(
    target: ProfileTarget, size: int, checkpoint: Path | str | None, device: str
) -> Counts:
    network = build_trained_network(target, device, checkpoint)
    params = profile_counts.count_parameters(network)
    set_input_size(target, network, size)
    paper = profile_counts.count_paper_flops(network, size)
    full, _ = profile_counts.count_full_flops(network, size)
    return Counts(params, paper, full)


def _parts(target: ProfileTarget, params: profile_counts.ParamCounts) -> list[int | None]:
    return [
        None if module is None else params.part(module)
        for module in TABLE1_MODULES.get(target.family, (None, None, None))  # SAM: none
    ]


@dataclass(frozen=True, eq=False)
class DeviceNetwork:
    """A network resident on its device, with what its predictor needs to resize it."""

    network: nn.Module
    trained_pos_embed: torch.Tensor | None  # SimpleClick only


def profile_one(
    target: ProfileTarget,
    size: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    checkpoint: Path | str | None = None,
    samples: Callable[[], Iterable[Sample]] | None = None,
    dataset: str = "",
    max_clicks: int = profile_clicks.DEFAULT_MAX_CLICKS,
    warmup_clicks: int = profile_clicks.DEFAULT_WARMUP_CLICKS,
) -> ProfileRow:
    """Profile one model at one input size; the click loop runs when `samples` is given."""
    import bench.profile as profile
    from bench.profile import clickseg, sam

    if target.family == clickseg.CLICKSEG_FAMILY:
        return clickseg.profile_clickseg(
            profile,
            target,
            size,
            device,
            dtype,
            checkpoint,
            samples,
            dataset,
            max_clicks,
            warmup_clicks,
        )
    if target.family in sam.SAM_FAMILIES:
        return sam.profile_sam(
            target, size, device, dtype, checkpoint, samples, dataset, max_clicks, warmup_clicks
        )
    device = torch.device(device)
    counts = count_network(target, size, checkpoint)
    built, memory = measure_network_memory(target, size, device, dtype, checkpoint)
    spc = None
    if samples is not None:
        predictor = evaluation_predictor(built, target, size, device)
        times = profile_clicks.time_clicks(predictor, built.network, samples(), device, max_clicks)
        spc = profile_clicks.summarize(times, dataset, warmup_clicks)
    del built
    return make_row(target, size, device, dtype, counts, memory, spc, checkpoint)


def make_row(
    target: ProfileTarget,
    size: int,
    device: torch.device,
    dtype: torch.dtype,
    counts: Counts,
    memory: profile_memory.PeakMemory | None,
    spc: profile_clicks.SpcSummary | None,
    checkpoint: Path | str | None = None,
) -> ProfileRow:
    parts = _parts(target, counts.params)
    mega = [_scaled(p, profile_counts.MEGA) for p in parts]
    mebi = [_scaled(p, profile_counts.MEBI) for p in parts]
    return ProfileRow(
        model=target.name,
        input_size=size,
        device=str(device),
        dtype=dtype_name(dtype),
        params_M=counts.params.total / profile_counts.MEGA,
        params_backbone_M=mega[0],
        params_neck_M=mega[1],
        params_head_M=mega[2],
        gflops_paper=counts.paper.gflops,
        gflops_full=counts.full_flops / 1e9,
        flops_convention_paper=profile_counts.PAPER_CONVENTION,
        flops_convention_full=profile_counts.FULL_CONVENTION,
        peak_mem_MiB=None if memory is None else memory.mib,
        mem_kind="" if memory is None else memory.kind,
        spc_model_median_s=None if spc is None else spc.model_median_s,
        spc_model_iqr_s=None if spc is None else spc.model_iqr_s,
        spc_harness_median_s=None if spc is None else spc.harness_median_s,
        spc_dataset="" if spc is None else spc.dataset,
        params_convention=PARAMS_CONVENTION,
        params_thop_M=counts.paper.params / profile_counts.MEGA,
        params_Mi=counts.params.total / profile_counts.MEBI,
        params_backbone_Mi=mebi[0],
        params_neck_Mi=mebi[1],
        params_head_Mi=mebi[2],
        params_by_module=json.dumps(dict(counts.params.by_top_level_module)),
        spc_harness_iqr_s=None if spc is None else spc.harness_iqr_s,
        spc_total_median_s=None if spc is None else spc.total_median_s,
        spc_timed_clicks=None if spc is None else spc.timed_clicks,
        spc_warmup_clicks=None if spc is None else spc.warmup_clicks,
        checkpoint="" if checkpoint is None else str(checkpoint),
        torch_threads=torch.get_num_threads(),
        cascade=_cascade_text(target.cascade),
        forwards_per_click=None if spc is None else spc.mean_forwards,
    )


def _cascade_text(cascade: CascadeConfig | None) -> str:
    if cascade is None or not cascade.enabled:
        return ""
    return f"cf_n={cascade.cf_n}, acf={str(cascade.acf).lower()}, cf_click={cascade.cf_click}"


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; expected one of {', '.join(DTYPES)}") from None


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def measure_network_memory(
    target: ProfileTarget,
    size: int,
    device: torch.device,
    dtype: torch.dtype,
    checkpoint: Path | str | None = None,
) -> tuple[DeviceNetwork, profile_memory.PeakMemory]:
    """Build the network on `device` in `dtype`, then measure one batch-1 forward pass.

    The peak includes the resident weights. One unmeasured forward pass runs first, so that
    one-off allocations (library kernels and workspaces, allocator growth) that stay resident
    count once, as resident memory, and the measured pass shows the steady state. Reduced
    precision follows the adapters' predictors: weights and the image tensor in `dtype`,
    click coordinates left as they are.
    """
    image, points = profile_counts.network_inputs(size, device)

    def forward(built: DeviceNetwork) -> None:
        with torch.inference_mode():
            built.network(image.to(dtype), points)

    def prepare() -> DeviceNetwork:
        network = build_trained_network(target, device, checkpoint).to(dtype)
        pristine = trained_pos_embed(target, network)
        set_input_size(target, network, size, pristine)
        built = DeviceNetwork(network, pristine)
        forward(built)  # warm-up
        return built

    return profile_memory.measure_peak_memory(prepare, forward, device)


def evaluation_predictor(
    built: DeviceNetwork, target: ProfileTarget, size: int, device: torch.device
) -> Predictor:
    """The adapters' evaluation predictor (`EvalPredictor`) around an already built network,
    random-init or loaded (the adapters' registry factories insist on a checkpoint).

    The official evaluation of the family (eval-mode cvpr, NoBRS, flip averaging; PROTOCOL.md
    section 5) at the paper's size; at another size, ZoomIn to that size on every dataset
    (SimpleClick's `--eval-mode fixedN`, RITM's longest side N), with CFR-ICL's cascade where
    the target has one. SimpleClick's position
    embedding follows the zoom target per dataset, as its predictor factory does
    (`bench.adapters.simpleclick.predictor`, which needs a checkpoint).
    """
    from bench.adapters.common.eval_predictor import EvalPredictor, ritm_cvpr_zoom_in

    network = built.network
    on_dataset = None
    if target.family == SIMPLECLICK:
        from bench.adapters.simpleclick.predictor import zoom_rule

        zoom_in = zoom_rule(None if size == target.size == SIMPLECLICK_TRAINED_SIZE else size, True)

        def on_dataset(dataset: str) -> None:
            side = zoom_in(dataset).target_size[0]
            set_input_size(target, network, side, built.trained_pos_embed)

    elif size == target.size:
        zoom_in = ritm_cvpr_zoom_in
    else:

        def zoom_in(dataset: str):
            return dataclasses.replace(ritm_cvpr_zoom_in(dataset), target_size=size)

    def forward(x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return network(x, points)["instances"]

    dtype = next(network.parameters()).dtype
    return EvalPredictor(
        forward,
        zoom_in=zoom_in,
        with_flip=True,
        device=device,
        dtype=dtype,
        on_dataset=on_dataset,
        cascade=target.cascade,
    )


def write_csv(rows: Sequence[ProfileRow], path: Path | str) -> Path:
    """Write `profile.csv`: the report's columns first, then the rest of `ProfileRow`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f.name for f in fields(ProfileRow)]
    assert tuple(names[: len(CSV_COLUMNS)]) == CSV_COLUMNS
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in asdict(row).items()})
    return path


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e-3 else round(value, 6)
    return value
