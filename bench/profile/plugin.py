"""Profile any predictor through its calls: a plugin (`file.py:factory`, `module:factory`, an
entry point) or a registered model without a paper-convention counter.

Nothing about the architecture is assumed. The predictor runs the real protocol
(`bench.engine.instance`: official clicks, threshold, IoU) on real instances, and:

* seconds per click: each click's wall time, the predictor's `predict` call as model time,
  the rest (click rule, binarisation, IoU, boundary IoU) as harness time; `start` (once per
  instance, e.g. an image encoder) timed on its own;
* FLOPs: `torch.utils.flop_counter.FlopCounterMode` around `start` and every `predict` of the
  first instance, in a pass of their own (counting slows the calls it counts). Per click:
  (start + all predicts) / clicks, the encoder amortised as `bench run`'s SPC does it; start and
  one predict are also given apart. Work outside torch (numpy, OpenCV) is not counted: a
  predictor that makes no torch call gets no FLOPs, not zero;
* peak memory: `bench.profile.memory` around building the predictor and the timed loop;
* parameters: those of the `torch.nn.Module`s the predictor holds as attributes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.profile import ProfileRow, dtype_name
from bench.profile import clicks as profile_clicks
from bench.profile import memory as profile_memory
from bench.sample import Sample, predictor_input

FLOPS_CONVENTION = (
    "FlopCounterMode around the predictor's calls on the first instance: (start + every "
    "predict) / clicks; torch operations only"
)
NO_PAPER_CONVENTION = "none (not a registered family with a paper-convention counter)"


def predictor_modules(predictor: Any) -> list[nn.Module]:
    """The `nn.Module`s a predictor holds as attributes (one level down, as plugins keep their
    network in `self.net` or `self.model`), without duplicates."""
    found: list[nn.Module] = []
    if isinstance(predictor, nn.Module):
        found.append(predictor)
    for value in vars(predictor).values() if hasattr(predictor, "__dict__") else ():
        if isinstance(value, nn.Module) and all(value is not m for m in found):
            found.append(value)
    return found


def count_parameters(modules: Iterable[nn.Module]) -> int | None:
    seen: dict[int, int] = {}
    for module in modules:
        for p in module.parameters():
            seen[id(p)] = p.numel()
    return sum(seen.values()) if seen else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_instance(
    predictor: Any, sample: Sample, settings: Any, device: torch.device
) -> tuple[float, list[profile_clicks.ClickTime]]:
    from bench.clicks import make_click_model
    from bench.engine import instance as runner

    rule = make_click_model(settings.click_model)
    state = runner.start_instance(sample.gt, sample.dataset, sample.id, settings.seed)
    _sync(device)
    tic = time.perf_counter()
    predictor.start(predictor_input(sample, predictor))
    _sync(device)
    start_s = time.perf_counter() - tic
    times = []
    while not state.done:
        tic = time.perf_counter()
        click = runner.propose_click(state, rule)
        if click is None:
            break
        before = time.perf_counter()
        prob = predictor.predict(list(state.clicks))
        _sync(device)
        model = time.perf_counter() - before
        runner.observe_prediction(state, prob, settings)
        total = time.perf_counter() - tic
        times.append(profile_clicks.ClickTime(sample.id, len(state.clicks), total, model, 1))
    return start_s, times


def count_flops(predictor: Any, sample: Sample, settings: Any) -> tuple[int, list[int]]:
    """FLOPs of `start` and of each `predict` over one instance of the protocol."""
    from torch.utils.flop_counter import FlopCounterMode

    from bench.clicks import make_click_model
    from bench.engine import instance as runner

    rule = make_click_model(settings.click_model)
    state = runner.start_instance(sample.gt, sample.dataset, sample.id, settings.seed)
    with FlopCounterMode(display=False) as counter:
        predictor.start(predictor_input(sample, predictor))
    start = int(counter.get_total_flops())
    per_click = []
    while not state.done:
        if runner.propose_click(state, rule) is None:
            break
        with FlopCounterMode(display=False) as counter:
            prob = predictor.predict(list(state.clicks))
        per_click.append(int(counter.get_total_flops()))
        runner.observe_prediction(state, prob, settings)
    return start, per_click


def _median_iqr(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return float(q50), float(q75 - q25)


def profile_predictor(
    model: str,
    samples: Callable[[], Iterable[Sample]],
    dataset: str,
    device: torch.device | str = "cpu",
    max_clicks: int = profile_clicks.DEFAULT_MAX_CLICKS,
    warmup_clicks: int = profile_clicks.DEFAULT_WARMUP_CLICKS,
    options: dict[str, Any] | None = None,
) -> ProfileRow:
    """One `profile.csv` row for the `--model` text `model` (see the module doc)."""
    from bench.adapters import make_predictor, resolve_model
    from bench.engine.instance import ProtocolSettings

    spec = resolve_model(model)
    device = torch.device(device)
    settings = ProtocolSettings(max_clicks=max_clicks)
    first = next(iter(samples()), None)
    if first is None:
        raise ValueError(f"{dataset}: no instance to profile {model} on")
    runs: list[tuple[float, list[profile_clicks.ClickTime]]] = []

    def loop(predictor: Any) -> None:
        for sample in samples():
            runs.append(_timed_instance(predictor, sample, settings, device))

    predictor, memory = profile_memory.measure_peak_memory(
        lambda: make_predictor(spec, **(options or {})), loop, device
    )
    start_flops, click_flops = count_flops(predictor, first, settings)
    times = [t for _, clicks in runs for t in clicks]
    timed = times[warmup_clicks:]
    model_median, model_iqr = _median_iqr([t.model_s for t in timed])
    harness_median, harness_iqr = _median_iqr([t.harness_s for t in timed])
    starts = [s for s, _ in runs]
    start_median, start_iqr = _median_iqr(starts)
    counted = start_flops + sum(click_flops)
    gflops = counted / len(click_flops) / 1e9 if click_flops and counted else float("nan")
    params = count_parameters(predictor_modules(predictor))
    dtypes = {p.dtype for m in predictor_modules(predictor) for p in m.parameters()}
    return ProfileRow(
        model=spec.name,
        input_size=int(max(first.gt.shape)),
        device=str(device),
        dtype=dtype_name(dtypes.pop()) if len(dtypes) == 1 else "",
        params_M=float("nan") if params is None else params / 1e6,
        params_backbone_M=None,
        params_neck_M=None,
        params_head_M=None,
        gflops_paper=float("nan"),
        gflops_full=gflops,
        flops_convention_paper=NO_PAPER_CONVENTION,
        flops_convention_full=FLOPS_CONVENTION,
        peak_mem_MiB=memory.mib,
        mem_kind=memory.kind,
        spc_model_median_s=model_median,
        spc_model_iqr_s=model_iqr,
        spc_harness_median_s=harness_median,
        spc_dataset=dataset,
        params_convention="parameters of the predictor's nn.Module attributes",
        params_thop_M=float("nan"),
        params_Mi=float("nan") if params is None else params / 2**20,
        params_backbone_Mi=None,
        params_neck_Mi=None,
        params_head_Mi=None,
        params_by_module="{}",
        spc_harness_iqr_s=harness_iqr,
        spc_total_median_s=_median_iqr([t.total_s for t in timed])[0],
        spc_timed_clicks=len(timed),
        spc_warmup_clicks=min(warmup_clicks, len(times)),
        checkpoint="",
        torch_threads=torch.get_num_threads(),
        gflops_encoder_full=start_flops / 1e9 if counted else None,
        gflops_decoder_full=(
            float(np.mean(click_flops)) / 1e9 if counted and click_flops else None
        ),
        spc_encoder_median_s=start_median,
        spc_encoder_iqr_s=start_iqr,
        spc_encoder_instances=len(starts),
    )
