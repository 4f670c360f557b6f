"""The official evaluation-time predictor around any click network, as `start`/`predict`.

Reproduces `isegm/inference/predictors/base.py:BasePredictor` as `scripts/evaluate_model.py`
builds it for NoC evaluation (NoBRS, ZoomIn, SigmoidForPred, AddHorizontalFlip; RITM b9b4460,
SimpleClick f33112e; PROTOCOL.md section 6.1). The network is any callable
`forward(x, points) -> logits`: x is B x 4 x h x w (RGB in [0, 1], previous probability), the
points tensor is that of PROTOCOL.md 6.5, and logits are B x 1 x h x w. The network normalises
the image and draws the click disks itself (`click_maps`), like the official `ISModel`.

One click is three steps so a batched engine can run the middle one for many instances at once:
`prepare_inputs` (state + clicks -> network input), the forward, and `map_output_back`
(logits -> full-size probability + next state). Only the forward touches the model.
`open_instance`/`predict_batch` (the `bench.adapters.BatchPredictor` interface) do exactly that:
one forward per group of instances whose network inputs have the same size (on the CPU, the
instances' forwards side by side instead, `cpu_parallel`).

CFR-ICL's cascade-forward refinement (`cascade`) repeats the three steps on the same clicks
(`bench.adapters.common.cascade`); in a batched call the instances still cascading (first
clicks) go on together, round by round, while the others are done. The official code
runs one instance at a time; every transform here is per instance and the network treats batch
items independently (eval-mode BatchNorm, per-sample GroupNorm/LayerNorm, padding click rows
dropped by DistMaps), so batching changes only the float rounding of the batched kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.adapters.common.cascade import CascadeConfig, changed_pixels, stops_early
from bench.adapters.common.cpu_parallel import SingleThreadedPool, plan_forwards
from bench.adapters.common.flip import flip_forward, flip_inverse
from bench.adapters.common.points import batch_points, net_clicks, points_tensor
from bench.adapters.common.zoom_in import (
    ZoomInConfig,
    ZoomState,
    ritm_cvpr_zoom_in,
    simpleclick_cvpr_zoom_in,
    zoom_forward,
    zoom_inverse,
)
from bench.sample import Click, Sample

__all__ = [
    "CascadeConfig",
    "CascadeTrace",
    "EvalPredictor",
    "InstanceHandle",
    "InstanceState",
    "NetInput",
    "PipelineConfig",
    "ZoomInConfig",
    "map_output_back",
    "prepare_inputs",
    "ritm_cvpr_zoom_in",
    "simpleclick_cvpr_zoom_in",
    "start_instance",
]

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PipelineConfig:
    """The transforms of one dataset's predictor (official `get_predictor` arguments)."""

    zoom_in: ZoomInConfig | None
    with_flip: bool = True
    net_clicks_limit: int | None = None
    cascade: CascadeConfig = CascadeConfig()


@dataclass(frozen=True)
class CascadeTrace:
    """What the last click ran: predictions (network forwards), and for each prediction after
    the first the pixels it changed at 0.49 (what `acf` tests)."""

    forwards: int = 0
    changed: tuple[int, ...] = ()


@dataclass(frozen=True, eq=False)
class InstanceState:
    """Everything the predictor remembers about one instance between clicks."""

    image: torch.Tensor  # 1 x 3 x H x W float32 in [0, 1]
    prev_prob: torch.Tensor  # 1 x 1 x H x W float32: last output, 0 outside the last ROI
    zoom: ZoomState

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.image.shape[2]), int(self.image.shape[3])


@dataclass(frozen=True, eq=False)
class NetInput:
    """The network input of one click and what mapping its output back needs."""

    x: torch.Tensor  # B x 4 x h x w float32 (B = 2 with flip)
    points: torch.Tensor  # B x 2M x 3, int64 or float64 (PROTOCOL.md 6.5)
    zoom: ZoomState  # zoom state after this click's forward transform
    flipped: bool


@dataclass(eq=False)
class InstanceHandle:
    """One instance in flight (the `BatchPredictor` handle): its dataset's pipeline config and
    its state after the last click. `predict_batch` replaces `state` only once the whole call
    has succeeded, so a failed call leaves every handle as it was."""

    dataset: str
    config: PipelineConfig
    state: InstanceState
    trace: CascadeTrace = CascadeTrace()


def start_instance(
    image: np.ndarray, device: str | torch.device = "cpu", init_mask: np.ndarray | None = None
) -> InstanceState:
    """New image: ToTensor semantics (uint8 HWC -> float32 CHW / 255), zero previous map.

    With a dataset's initial mask (DAVIS-585 `sp`/`stm`) the previous map is that mask as
    0/1 float, as ClickSEG's `evaluation.py` calls `predictor.set_prev_mask(init_mask)`. The
    ZoomIn state stays empty: the official ZoomIn keeps its own previous output, which a first
    click does not have, so the first crop is chosen as without a mask.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 image, got {image.dtype} {image.shape}")
    rgb = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    rgb = rgb.permute(2, 0, 1).to(torch.float32).div(255)[None]
    if init_mask is None:
        prev = torch.zeros_like(rgb[:, :1])
    else:
        if init_mask.shape != image.shape[:2]:
            raise ValueError(f"initial mask is {init_mask.shape}, the image {image.shape[:2]}")
        prev = torch.from_numpy(init_mask.astype(np.float32)).to(device)[None, None]
    return InstanceState(rgb, prev, ZoomState())


def prepare_inputs(
    config: PipelineConfig, state: InstanceState, clicks: Sequence[Click]
) -> NetInput:
    """Forward transforms of one click: [image, prev] -> ZoomIn -> flip -> points tensor."""
    if not clicks:
        raise ValueError("predict() needs at least one click")
    x = torch.cat((state.image, state.prev_prob), dim=1)
    click_lists = [net_clicks(clicks)]
    zoom = state.zoom
    if config.zoom_in is not None:
        view, zoom = zoom_forward(config.zoom_in, zoom, x, state.prev_prob, click_lists[0])
        x, click_lists = view.image, [view.clicks]
    if config.with_flip:
        x, click_lists = flip_forward(x, click_lists)
    points = points_tensor(click_lists, config.net_clicks_limit, device=x.device)
    return NetInput(x, points, zoom, config.with_flip)


def map_output_back(
    config: PipelineConfig, state: InstanceState, net_input: NetInput, logits: torch.Tensor
) -> tuple[InstanceState, np.ndarray]:
    """Inverse transforms: resize to input, un-flip (logit mean), sigmoid, ZoomIn paste-back.

    Returns the next state and the H x W float32 probability map (a copy).
    """
    logits = logits.to(torch.float32)
    logits = F.interpolate(
        logits, size=tuple(net_input.x.shape[2:]), mode="bilinear", align_corners=True
    )
    if net_input.flipped:
        logits = flip_inverse(logits)
    prob = torch.sigmoid(logits)
    zoom = net_input.zoom
    if config.zoom_in is not None:
        prob, zoom = zoom_inverse(zoom, prob, state.hw)
    next_state = InstanceState(state.image, prob, zoom)
    return next_state, prob[0, 0].cpu().numpy().copy()


class EvalPredictor:
    """`start(sample)` / `predict(clicks)` around a network forward, as the official evaluation.

    `zoom_in(dataset)` gives the ZoomIn setting per dataset (None: no zoom); `on_dataset(name)`
    runs when the dataset changes (SimpleClick resizes its position embedding for DAVIS).
    Inputs are cast to `dtype` on `device` for the forward only; the transforms run in float32.

    `predict_batch` makes one forward per input shape on a GPU (or with `forward_workers=1`).
    On the CPU it runs each instance's forward on its own, `forward_workers` at a time side by
    side (default: torch's thread count), one intra-op thread each (`cpu_parallel` says why and
    what it costs in the last bits).
    """

    def __init__(
        self,
        forward: Forward,
        zoom_in: Callable[[str], ZoomInConfig | None] | None,
        with_flip: bool = True,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        on_dataset: Callable[[str], None] | None = None,
        net_clicks_limit: int | None = None,
        forward_workers: int | None = None,
        cascade: CascadeConfig | None = None,
    ):
        self.forward = forward
        self.zoom_in = zoom_in
        self.with_flip = with_flip
        self.device = torch.device(device)
        self.dtype = dtype
        self.on_dataset = on_dataset
        self.net_clicks_limit = net_clicks_limit
        self.forward_workers = forward_workers
        self.cascade = cascade or CascadeConfig()
        self.trace = CascadeTrace()
        self._pool: SingleThreadedPool | None = None
        self.dataset: str | None = None
        self.config: PipelineConfig | None = None
        self.state: InstanceState | None = None

    def config_for(self, dataset: str) -> PipelineConfig:
        zoom = self.zoom_in(dataset) if self.zoom_in is not None else None
        return PipelineConfig(zoom, self.with_flip, self.net_clicks_limit, self.cascade)

    def _use_dataset(self, dataset: str) -> PipelineConfig:
        if dataset != self.dataset or self.config is None:
            if self.on_dataset is not None:
                self.on_dataset(dataset)
            self.dataset = dataset
            self.config = self.config_for(dataset)
        return self.config

    def start(self, sample: Sample) -> None:
        self._use_dataset(sample.dataset)
        self.state = start_instance(sample.image, self.device, getattr(sample, "init_mask", None))

    def open_instance(self, sample: Sample) -> InstanceHandle:
        """`start` for one more instance in flight; its state lives in the returned handle."""
        config = self._use_dataset(sample.dataset)
        state = start_instance(sample.image, self.device, getattr(sample, "init_mask", None))
        return InstanceHandle(sample.dataset, config, state)

    def run_forward(self, net_input: NetInput) -> torch.Tensor:
        with torch.no_grad():
            return self.forward(net_input.x.to(self.dtype), net_input.points)

    def workers(self) -> int:
        """Concurrent forwards of one `predict_batch` call (1 on a GPU unless set)."""
        if self.forward_workers is not None:
            return max(1, int(self.forward_workers))
        return torch.get_num_threads() if self.device.type == "cpu" else 1

    def run_forward_batch(self, inputs: Sequence[NetInput]) -> list[torch.Tensor]:
        """Logits per input: one forward per group of inputs with the same spatial size, or
        one per input on several CPU workers (`plan_forwards`)."""
        workers = self.workers()
        jobs = plan_forwards([tuple(i.x.shape[2:]) for i in inputs], workers)
        if workers > 1 and len(jobs) > 1:
            if self._pool is None or self._pool.workers != workers:
                self._pool = SingleThreadedPool(workers)
            parts = self._pool.map(lambda job: self._forward_group(inputs, job), jobs)
        else:
            parts = [self._forward_group(inputs, job) for job in jobs]
        logits: list[torch.Tensor] = [torch.empty(0)] * len(inputs)
        for job, outs in zip(jobs, parts):
            for i, out in zip(job, outs):
                logits[i] = out
        return logits

    def _forward_group(self, inputs: Sequence[NetInput], members: list[int]) -> list[torch.Tensor]:
        """One forward for same-size inputs: images concatenated along the batch (each input
        already holds its flip pair), points padded to one click count (`batch_points`). An
        input alone runs exactly as `predict` runs it."""
        if len(members) == 1:
            return [self.run_forward(inputs[members[0]])]
        x = torch.cat([inputs[i].x for i in members]).to(self.dtype)
        points = batch_points([inputs[i].points for i in members])
        with torch.no_grad():
            out = self.forward(x, points)
        sizes = [int(inputs[i].x.shape[0]) for i in members]
        if out.shape[0] != sum(sizes):
            raise ValueError(f"network returned {out.shape[0]} maps for a batch of {sum(sizes)}")
        return list(out.split(sizes))

    def predict_batch(
        self, requests: Sequence[tuple[InstanceHandle, Sequence[Click]]]
    ) -> list[np.ndarray]:
        """One click of each listed instance; handles are updated only if every item succeeds."""
        handles = [handle for handle, _ in requests]
        if len({id(h) for h in handles}) != len(handles):
            raise ValueError("predict_batch: an instance appears more than once in one call")
        for handle in handles:
            if not isinstance(handle, InstanceHandle):
                raise TypeError(
                    f"predict_batch: {type(handle).__name__} is not an open_instance handle"
                )
            if handle.dataset != self.dataset:
                raise RuntimeError(
                    f"predict_batch: an instance of {handle.dataset} is in flight while the model "
                    f"is set up for {self.dataset} (finish one dataset before opening the next)"
                )
        states = [h.state for h in handles]
        steps = [h.config.cascade.steps(len(clicks)) for h, clicks in requests]
        probs: list[np.ndarray | None] = [None] * len(requests)
        changed: list[list[int]] = [[] for _ in requests]
        forwards = [0] * len(requests)
        active = list(range(len(requests)))
        while active:  # one round per cascade step; without a cascade, one round
            inputs = [prepare_inputs(handles[i].config, states[i], requests[i][1]) for i in active]
            logits = self.run_forward_batch(inputs)
            going_on = []
            for i, net_input, out in zip(active, inputs, logits):
                previous = probs[i]
                states[i], probs[i] = map_output_back(handles[i].config, states[i], net_input, out)
                forwards[i] += 1
                if _cascade_goes_on(
                    handles[i].config.cascade, steps[i], forwards[i], previous, probs[i], changed[i]
                ):
                    going_on.append(i)
            active = going_on
        for i, handle in enumerate(handles):
            handle.state = states[i]
            handle.trace = CascadeTrace(forwards[i], tuple(changed[i]))
        return [prob for prob in probs if prob is not None]

    def predict(self, clicks: list[Click]) -> np.ndarray:
        if self.state is None or self.config is None:
            raise RuntimeError("predict() before start()")
        config, state = self.config, self.state
        steps = config.cascade.steps(len(clicks))
        changed: list[int] = []
        forwards, prob = 0, None
        while True:  # official get_prediction: cascade steps on the same clicks, else one
            net_input = prepare_inputs(config, state, clicks)
            logits = self.run_forward(net_input)
            previous = prob
            state, prob = map_output_back(config, state, net_input, logits)
            forwards += 1
            if not _cascade_goes_on(config.cascade, steps, forwards, previous, prob, changed):
                break
        self.state = state
        self.trace = CascadeTrace(forwards, tuple(changed))
        return prob


def _cascade_goes_on(
    cascade: CascadeConfig,
    steps: int,
    done: int,
    previous: np.ndarray | None,
    prob: np.ndarray,
    changed: list[int],
) -> bool:
    """After `done` of `steps` predictions of one click: note the pixels the last one changed
    (`changed`) and say whether another follows (official loop, with the `acf` return)."""
    if previous is not None:
        changed.append(changed_pixels(prob, previous))
        if stops_early(cascade, changed[-1]):
            return False
    return done < steps
