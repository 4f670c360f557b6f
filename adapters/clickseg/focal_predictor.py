"""FocalClick's evaluation-time predictor: coarse pass on the ZoomIn ROI, focus crop, refiner.

Reproduces `isegm/inference/predictors/focalclick.py:FocalPredictor` as
`scripts/evaluate_model.py` builds it for `--mode FocalClick` (ClickSEG d61a76b;
golden/clickseg/README.md quirks 1, 3-9): transforms [ZoomIn, ResizeTrans(infer_size),
SigmoidForPred], no flip, `focus_crop_r` 1.4, and per click:

1. [RGB, previous final probability] -> ZoomIn crop -> S x S -> network (`instances`,
   `feature`); sigmoid, back to the crop size, pasted into a zero map (`_object_roi`);
2. the full-size probability back to logits (`log(p / (1 - p))`, +-inf outside the ROI);
3. the focus box (`bench.adapters.clickseg.focus`) around the last click, clamped to the global
   ROI (ZoomIn's ROI, exclusive ends, or the whole image);
4. the refiner on the full-resolution RGB crop of the focus box resized to S x S, all clicks
   mapped into it (index 0), the coarse network-frame logits and feature RoIAligned to the
   focus box in the S x S frame;
5. the refined logits resized to the focus box and written into the coarse logit map, which
   from click 11 on is replaced by the logit of the previous final prediction; the sigmoid of
   the result is the prediction, the next click's previous mask and ZoomIn's `_prev_probs`.

Predictors never read the ground truth: only the image and the clicks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.adapters.clickseg.focus import focus_box, focus_in_global, map_point_in_box
from bench.adapters.clickseg.transforms import (
    ClickSEGZoomIn,
    ZoomState,
    resize_clicks,
    resize_square,
    zoom_forward,
)
from bench.adapters.common.eval_predictor import start_instance
from bench.adapters.common.points import PAD_ROW, batch_points, net_clicks, points_tensor
from bench.adapters.common.zoom_in import zoom_inverse
from bench.sample import Click, Sample

__all__ = ["FocalHandle", "FocalPredictor", "FocalState", "FocalTrace"]

COARSE_ONLY_CLICKS = 10
"""Clicks after which the coarse map is the previous prediction (official `> 10`)."""


@dataclass(frozen=True)
class FocalTrace:
    """What one click did, in the fixture's terms (pipeline_fake_net.json per_click)."""

    roi: tuple[int, int, int, int] | None  # ZoomIn ROI (inclusive), None before the first
    roi_image_hw: tuple[int, int] | None
    global_roi: tuple[int, int, int, int]  # (y1, y2, x1, x2), exclusive ends
    focus_roi: tuple[int, int, int, int]
    focus_roi_in_global_roi: tuple[float, float, float, float]


@dataclass(frozen=True, eq=False)
class FocalState:
    """One instance between clicks: the image, the previous final probability, ZoomIn."""

    image: torch.Tensor  # 1 x 3 x H x W in [0, 1]
    prev_prob: torch.Tensor  # 1 x 1 x H x W
    zoom: ZoomState = field(default_factory=ZoomState)
    trace: FocalTrace | None = None


@dataclass(eq=False)
class FocalHandle:
    """One instance in flight (`open_instance` / `predict_batch`)."""

    state: FocalState


@dataclass(frozen=True, eq=False)
class _Prepared:
    net_x: torch.Tensor  # 1 x 4 x S x S
    points: torch.Tensor  # 1 x 2M x 3 float64
    crop_hw: tuple[int, int]
    zoom: ZoomState


def _logit(prob: torch.Tensor) -> torch.Tensor:
    return torch.log(prob / (1 - prob))


class FocalPredictor:
    """`start(sample)` / `predict(clicks)` around a FocalClick network.

    `net(x, points)` must return a dict with `instances` (B x 1 x S x S logits) and `feature`;
    `net.refine(image, points, feature, logits, roi)` a dict with `instances_refined`.
    """

    def __init__(
        self,
        net: Any,
        infer_size: int = 256,
        focus_crop_r: float = 1.4,
        zoom_in: ClickSEGZoomIn | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.net = net
        self.infer_size = infer_size
        self.focus_crop_r = focus_crop_r
        self.zoom_in = zoom_in if zoom_in is not None else ClickSEGZoomIn()
        self.device = torch.device(device)
        self.state: FocalState | None = None

    def start(self, sample: Sample) -> None:
        self.state = self._new_state(sample)

    def _new_state(self, sample: Sample) -> FocalState:
        base = start_instance(sample.image, self.device, getattr(sample, "init_mask", None))
        return FocalState(base.image, base.prev_prob)

    def open_instance(self, sample: Sample) -> FocalHandle:
        """`start` for one more instance in flight (`bench.adapters.BatchPredictor`)."""
        return FocalHandle(self._new_state(sample))

    def predict(self, clicks: list[Click]) -> np.ndarray:
        if self.state is None:
            raise RuntimeError("predict() before start()")
        self.state, prob = self.step(self.state, clicks)
        return prob

    def predict_batch(
        self, requests: Sequence[tuple[FocalHandle, Sequence[Click]]]
    ) -> list[np.ndarray]:
        """One click of each instance: the coarse network runs once on all of them (every
        input is S x S), the focus crop and the refiner per instance, as official. Handles
        change only when every item succeeded."""
        handles = [h for h, _ in requests]
        if len({id(h) for h in handles}) != len(handles):
            raise ValueError("predict_batch: an instance appears more than once in one call")
        for handle in handles:
            if not isinstance(handle, FocalHandle):
                raise TypeError(f"predict_batch: {type(handle).__name__} is not a FocalHandle")
        prepared = [self._prepare(h.state, list(c)) for h, c in requests]
        with torch.no_grad():
            out = self.net(
                torch.cat([p.net_x for p in prepared]), batch_points([p.points for p in prepared])
            )
        results = [
            self._finish(
                h.state, list(c), p, out["instances"][i : i + 1], out["feature"][i : i + 1]
            )
            for i, ((h, c), p) in enumerate(zip(requests, prepared))
        ]
        for handle, (state, _) in zip(handles, results):
            handle.state = state
        return [prob for _, prob in results]

    def _prepare(self, state: FocalState, clicks: list[Click]) -> _Prepared:
        """ZoomIn and ResizeTrans: the network input of one click."""
        if not clicks:
            raise ValueError("predict() needs at least one click")
        size = self.infer_size
        x = torch.cat((state.image, state.prev_prob), dim=1)
        crop, crop_clicks, zoom = zoom_forward(
            self.zoom_in, state.zoom, x, state.prev_prob, net_clicks(clicks)
        )
        crop_hw = (int(crop.shape[2]), int(crop.shape[3]))
        points = points_tensor([resize_clicks(crop_clicks, crop_hw, size)], device=self.device)
        return _Prepared(resize_square(crop, size), points, crop_hw, zoom)

    def step(self, state: FocalState, clicks: list[Click]) -> tuple[FocalState, np.ndarray]:
        """One click of one instance: the next state and the H x W float32 probability."""
        prepared = self._prepare(state, clicks)
        with torch.no_grad():
            out = self.net(prepared.net_x, prepared.points)
        return self._finish(state, clicks, prepared, out["instances"], out["feature"])

    def _finish(
        self,
        state: FocalState,
        clicks: list[Click],
        prepared: _Prepared,
        logits: torch.Tensor,
        feature: torch.Tensor,
    ) -> tuple[FocalState, np.ndarray]:
        """Inverse transforms, focus crop, refiner and merge of one instance's click."""
        size = self.infer_size
        height, width = state.image.shape[2:]
        crop_hw, zoom = prepared.crop_hw, prepared.zoom
        logits = logits.to(torch.float32)
        prob = torch.sigmoid(
            F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=True)
        )
        prob = F.interpolate(prob, size=crop_hw, mode="bilinear", align_corners=True)
        prob, zoom = zoom_inverse(zoom, prob, (height, width))
        coarse = _logit(prob)

        if zoom.roi is not None:
            rmin, rmax, cmin, cmax = zoom.roi
            global_roi = (rmin, rmax + 1, cmin, cmax + 1)
        else:
            global_roi = (0, height, 0, width)
        last = clicks[-1]
        focus = focus_box(
            coarse[0, 0].cpu().numpy(),
            state.prev_prob[0, 0].cpu().numpy(),
            global_roi,
            int(last.y),
            int(last.x),
            self.focus_crop_r,
        )
        in_global = focus_in_global(focus, global_roi, size)
        refined = self._refine(state.image, clicks, logits, feature, focus, in_global)
        y1, y2, x1, x2 = focus
        refined = F.interpolate(refined, (y2 - y1, x2 - x1), mode="bilinear", align_corners=True)
        if len(clicks) > COARSE_ONLY_CLICKS:
            coarse = _logit(state.prev_prob)
        coarse[:, :, y1:y2, x1:x2] = refined
        final = torch.sigmoid(coarse)
        trace = FocalTrace(zoom.roi, zoom.roi_image_hw, global_roi, focus, in_global)
        next_state = FocalState(state.image, final, zoom, trace)
        return next_state, final[0, 0].cpu().numpy().copy()

    def _refine(
        self,
        image: torch.Tensor,
        clicks: list[Click],
        logits: torch.Tensor,
        feature: torch.Tensor,
        focus: tuple[int, int, int, int],
        in_global: tuple[float, float, float, float],
    ) -> torch.Tensor:
        """Official `_get_refine`: the refiner's logits on the S x S focus crop."""
        size = self.infer_size
        y1, y2, x1, x2 = focus
        crop = F.interpolate(
            image[:, :, y1:y2, x1:x2], (size, size), mode="bilinear", align_corners=True
        )
        points = focus_points(clicks, focus, size).to(self.device)
        gy1, gy2, gx1, gx2 = in_global
        roi = torch.tensor([[0, gx1, gy1, gx2, gy2]], dtype=torch.float64).float()
        with torch.no_grad():
            out = self.net.refine(crop, points, feature, logits, roi.to(self.device))
        return out["instances_refined"].to(torch.float32)


def focus_points(clicks: list[Click], focus: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """Official `get_points_nd_inbbox`: every click mapped into the focus crop, index 0,
    positives then negatives each padded with (-1, -1, -1) to max(n_pos, n_neg, 1).

    The official clicks hold numpy integers, so the mapped values are numpy float64 and the
    tensor is float64.
    """
    pos = [(*map_point_in_box(c.y, c.x, focus, size), 0) for c in clicks if c.positive]
    neg = [(*map_point_in_box(c.y, c.x, focus, size), 0) for c in clicks if not c.positive]
    m = max(len(pos), len(neg), 1)
    rows = pos + [PAD_ROW] * (m - len(pos)) + neg + [PAD_ROW] * (m - len(neg))
    return torch.tensor([rows], dtype=torch.float64)
