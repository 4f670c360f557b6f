"""Seconds per click over a real click loop, with the network's share timed on its own.

The official SPC is the wall time of the whole dataset loop divided by the clicks simulated
(PROTOCOL.md section 4.6): network, flip pass, zoom-in, clicker and data loading together,
synchronised only by the per-click copy of the prediction to the host. Here each click is
timed separately so that a median and a spread exist, and the network's forward passes are
timed with hooks on the network module (CUDA synchronised on both sides), so that the
harness's own share (click rule, zoom-in, resizing, IoU) is the remainder.

The loop is `bench run`'s (PROTOCOL.md section 3), driven through `bench.engine.instance`'s step
functions: the official click rule on the previous binary prediction,
`predictor.predict(all clicks)`, threshold 0.49, IoU. Each click's total covers exactly those
steps; loading and decoding the images, which the official SPC also includes, happens between
instances and is not timed.

On a CPU shared with other work, torch's OpenMP threads stall whenever one of them is
descheduled: on 2 busy cores one HRNet-18s forward took 0.34 s with 1 thread and 8.3 s with 2.
`bench profile --threads` sets the thread count, and every row records it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bench.adapters import Predictor
from bench.clicks import make_click_model
from bench.engine import instance as runner
from bench.sample import Sample, predictor_input

DEFAULT_MAX_CLICKS = 20  # official --n-clicks
DEFAULT_WARMUP_CLICKS = 3


@dataclass(frozen=True)
class ClickTime:
    """Wall time of one click of the loop and the part spent inside the network's forward."""

    sample_id: str
    click_index: int  # 1-based within the instance
    total_s: float
    model_s: float
    forward_calls: int

    @property
    def harness_s(self) -> float:
        return self.total_s - self.model_s


@dataclass(frozen=True)
class SpcSummary:
    """Median and interquartile range over the timed clicks (warm-up clicks excluded)."""

    dataset: str
    timed_clicks: int
    warmup_clicks: int
    model_median_s: float
    model_iqr_s: float
    harness_median_s: float
    harness_iqr_s: float
    total_median_s: float
    mean_total_s: float  # the official SPC's definition, on the timed clicks
    mean_forwards: float = float("nan")  # network forwards per timed click (CFR-ICL: > 1)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def forward_timer(
    network: nn.Module | Sequence[nn.Module], device: torch.device | str
) -> Iterator[list[float]]:
    """Collect the duration of every `network(...)` call made inside the block.

    The hooks synchronise the device before starting and after finishing the clock, so an
    asynchronous CUDA forward is charged to the network and not to whoever reads its output.
    Several modules (a SAM prompt encoder and mask decoder, called one after the other) share
    one list.
    """
    device = torch.device(device)
    durations: list[float] = []
    started: list[float] = []

    def before(module: nn.Module, args: object) -> None:
        _synchronize(device)
        started.append(time.perf_counter())

    def after(module: nn.Module, args: object, output: object) -> None:
        _synchronize(device)
        durations.append(time.perf_counter() - started.pop())

    modules = [network] if isinstance(network, nn.Module) else list(network)
    handles = []
    for module in modules:
        handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield durations
    finally:
        for handle in handles:
            handle.remove()


def _instance_clicks(
    predictor: Predictor,
    sample: Sample,
    durations: list[float],
    device: torch.device,
    settings: runner.ProtocolSettings,
) -> Iterator[ClickTime]:
    rule = make_click_model(settings.click_model)
    state = runner.start_instance(sample.gt, sample.dataset, sample.id, settings.seed, sample.image)
    predictor.start(predictor_input(sample, predictor))
    while not state.done:
        _synchronize(device)
        first_forward = len(durations)
        start = time.perf_counter()
        runner.propose_click(state, rule)
        prob = predictor.predict(list(state.clicks))
        runner.observe_prediction(state, prob, settings)
        _synchronize(device)
        total = time.perf_counter() - start
        forwards = durations[first_forward:]
        yield ClickTime(sample.id, len(state.clicks), total, float(sum(forwards)), len(forwards))


def time_clicks(
    predictor: Predictor,
    network: nn.Module | Sequence[nn.Module],
    samples: Iterable[Sample],
    device: torch.device | str = "cpu",
    max_clicks: int = DEFAULT_MAX_CLICKS,
    stop_at_iou: float | None = None,
) -> list[ClickTime]:
    """Run the evaluation loop of `bench.engine.instance` over `samples` and time every click.

    Like `bench run`, every instance gets `max_clicks` clicks unless `stop_at_iou` is given
    (the official early stop, 0.90 by default in the official script, which SPC depends on).
    """
    device = torch.device(device)
    settings = runner.ProtocolSettings(max_clicks=max_clicks, stop_at_iou=stop_at_iou)
    times: list[ClickTime] = []
    with forward_timer(network, device) as durations:
        for sample in samples:
            times.extend(_instance_clicks(predictor, sample, durations, device, settings))
    return times


def _median_iqr(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return float("nan"), float("nan")
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return float(q50), float(q75 - q25)


def summarize(times: list[ClickTime], dataset: str, warmup_clicks: int) -> SpcSummary:
    """Statistics over the clicks after the first `warmup_clicks` of the run."""
    timed = times[warmup_clicks:]
    model = np.array([t.model_s for t in timed])
    harness = np.array([t.harness_s for t in timed])
    total = np.array([t.total_s for t in timed])
    model_median, model_iqr = _median_iqr(model)
    harness_median, harness_iqr = _median_iqr(harness)
    return SpcSummary(
        dataset=dataset,
        timed_clicks=len(timed),
        warmup_clicks=min(warmup_clicks, len(times)),
        model_median_s=model_median,
        model_iqr_s=model_iqr,
        harness_median_s=harness_median,
        harness_iqr_s=harness_iqr,
        total_median_s=_median_iqr(total)[0],
        mean_total_s=float(total.mean()) if total.size else float("nan"),
        mean_forwards=float(np.mean([t.forward_calls for t in timed])) if timed else float("nan"),
    )
