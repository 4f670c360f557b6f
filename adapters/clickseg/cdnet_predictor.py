"""CDNet's evaluation-time predictor: ZoomIn, 384 x 384, flip averaging, PixelDiffusion.

Reproduces `isegm/inference/predictors/cdnet.py:DiffisionPredictor` as
`scripts/evaluate_model.py` builds it for `--mode CDNet` (ClickSEG d61a76b;
golden/clickseg/README.md quirks 1, 3-5, 11): transforms [ZoomIn, ResizeTrans(384),
SigmoidForPred, AddHorizontalFlip] (`ResizeTrans(384)` and `with_flip = True` are hard-coded,
whatever `infer_size` / `with_flip` say), and per click:

1. RGB (no previous mask) -> ZoomIn crop -> 384 x 384 -> [x, flip(x)] with mirrored clicks;
2. the network's logits of the pair averaged (`0.5 * (a + flip(b))`), then PixelDiffusion on the
   first element's un-normalised RGB and click disks;
3. sigmoid, back to the crop size, pasted into a zero map (ZoomIn keeps it to place the next
   ROI), and thresholded: the official predictor returns the **bool** mask `prob > 0.5`.

The harness gets that mask as a float32 0/1 map, so any `--pred-thr` in (0, 1) reproduces the
official mask; `state.prob` keeps the probability map behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.adapters.clickseg.transforms import (
    ClickSEGZoomIn,
    ZoomState,
    resize_clicks,
    resize_square,
    zoom_forward,
)
from bench.adapters.common.eval_predictor import start_instance
from bench.adapters.common.flip import flip_forward, flip_inverse
from bench.adapters.common.points import batch_points, net_clicks, points_tensor
from bench.adapters.common.zoom_in import zoom_inverse
from bench.sample import Click, Sample

__all__ = ["CDNET_INFER_SIZE", "CDNetHandle", "CDNetPredictor", "CDNetState"]

CDNET_INFER_SIZE = 384
MASK_THRESH = 0.5


@dataclass(frozen=True, eq=False)
class CDNetState:
    """One instance between clicks: the image, ZoomIn's previous probabilities and state."""

    image: torch.Tensor  # 1 x 3 x H x W in [0, 1]
    prob: torch.Tensor  # 1 x 1 x H x W: ZoomIn `_prev_probs` (the map behind the last mask)
    zoom: ZoomState = field(default_factory=ZoomState)


@dataclass(eq=False)
class CDNetHandle:
    """One instance in flight (`open_instance` / `predict_batch`)."""

    state: CDNetState


class CDNetPredictor:
    """`start(sample)` / `predict(clicks)` around a CDNet network.

    `net(x, points)` must return `instances` (B x 1 x S x S logits) and `click_map`
    (B x 2 x S x S); `net.PixelDiffusion(image, logits, click_map)` the diffused logits.
    """

    def __init__(
        self,
        net: Any,
        zoom_in: ClickSEGZoomIn | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.net = net
        self.zoom_in = zoom_in if zoom_in is not None else ClickSEGZoomIn()
        self.device = torch.device(device)
        self.state: CDNetState | None = None

    def start(self, sample: Sample) -> None:
        self.state = self._new_state(sample)

    def _new_state(self, sample: Sample) -> CDNetState:
        base = start_instance(sample.image, self.device, getattr(sample, "init_mask", None))
        return CDNetState(base.image, base.prev_prob)

    def open_instance(self, sample: Sample) -> CDNetHandle:
        """`start` for one more instance in flight (`bench.adapters.BatchPredictor`)."""
        return CDNetHandle(self._new_state(sample))

    def predict_batch(
        self, requests: Sequence[tuple[CDNetHandle, Sequence[Click]]]
    ) -> list[np.ndarray]:
        """One click of each instance: one network forward for every instance's flip pair
        (all inputs are 384 x 384), PixelDiffusion per instance (the official module
        broadcasts the click maps over the batch, so it is only defined for one image).
        Handles change only when every item succeeded."""
        handles = [h for h, _ in requests]
        if len({id(h) for h in handles}) != len(handles):
            raise ValueError("predict_batch: an instance appears more than once in one call")
        for handle in handles:
            if not isinstance(handle, CDNetHandle):
                raise TypeError(f"predict_batch: {type(handle).__name__} is not a CDNetHandle")
        prepared = [self._prepare(h.state, list(c)) for h, c in requests]
        with torch.no_grad():
            out = self.net(
                torch.cat([p[0] for p in prepared]), batch_points([p[1] for p in prepared])
            )
        results = []
        for i, (handle, (x, _, crop_hw, zoom)) in enumerate(zip(handles, prepared)):
            pair = slice(2 * i, 2 * i + 2)
            results.append(
                self._finish(
                    handle.state, x, crop_hw, zoom, out["instances"][pair], out["click_map"][pair]
                )
            )
        for handle, (state, _) in zip(handles, results):
            handle.state = state
        return [mask for _, mask in results]

    def predict(self, clicks: list[Click]) -> np.ndarray:
        if self.state is None:
            raise RuntimeError("predict() before start()")
        self.state, mask = self.step(self.state, clicks)
        return mask

    def step(self, state: CDNetState, clicks: list[Click]) -> tuple[CDNetState, np.ndarray]:
        """One click: the next state and the official mask as an H x W float32 0/1 map."""
        x, points, crop_hw, zoom = self._prepare(state, clicks)
        with torch.no_grad():
            out = self.net(x, points)
        return self._finish(state, x, crop_hw, zoom, out["instances"], out["click_map"])

    def _prepare(
        self, state: CDNetState, clicks: list[Click]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int], ZoomState]:
        """ZoomIn, ResizeTrans(384), AddHorizontalFlip: the flip pair and its points."""
        if not clicks:
            raise ValueError("predict() needs at least one click")
        size = CDNET_INFER_SIZE
        crop, crop_clicks, zoom = zoom_forward(
            self.zoom_in, state.zoom, state.image, state.prob, net_clicks(clicks)
        )
        crop_hw = (int(crop.shape[2]), int(crop.shape[3]))
        x, click_lists = flip_forward(
            resize_square(crop, size), [resize_clicks(crop_clicks, crop_hw, size)]
        )
        return x, points_tensor(click_lists, device=self.device), crop_hw, zoom

    def _finish(
        self,
        state: CDNetState,
        x: torch.Tensor,
        crop_hw: tuple[int, int],
        zoom: ZoomState,
        instances: torch.Tensor,
        click_map: torch.Tensor,
    ) -> tuple[CDNetState, np.ndarray]:
        """Flip average of the logits, PixelDiffusion, sigmoid, inverse transforms, mask."""
        height, width = state.image.shape[2:]
        with torch.no_grad():
            logits = flip_inverse(instances.to(torch.float32))
            diffused = self.net.PixelDiffusion(x[:1], logits, click_map[:1])
        prob = torch.sigmoid(diffused.to(torch.float32))
        prob = F.interpolate(prob, size=crop_hw, mode="bilinear", align_corners=True)
        prob, zoom = zoom_inverse(zoom, prob, (height, width))
        mask = (prob[0, 0] > MASK_THRESH).cpu().numpy()
        return CDNetState(state.image, prob, zoom), mask.astype(np.float32)
