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
from bench.adapters.common.points import net_clicks, points_tensor
from bench.adapters.common.zoom_in import zoom_inverse
from bench.sample import Click, Sample

__all__ = ["CDNET_INFER_SIZE", "CDNetPredictor", "CDNetState"]

CDNET_INFER_SIZE = 384
MASK_THRESH = 0.5


@dataclass(frozen=True, eq=False)
class CDNetState:
    """One instance between clicks: the image, ZoomIn's previous probabilities and state."""

    image: torch.Tensor  # 1 x 3 x H x W in [0, 1]
    prob: torch.Tensor  # 1 x 1 x H x W: ZoomIn `_prev_probs` (the map behind the last mask)
    zoom: ZoomState = field(default_factory=ZoomState)


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
        base = start_instance(sample.image, self.device)
        self.state = CDNetState(base.image, base.prev_prob)

    def predict(self, clicks: list[Click]) -> np.ndarray:
        if self.state is None:
            raise RuntimeError("predict() before start()")
        self.state, mask = self.step(self.state, clicks)
        return mask

    def step(self, state: CDNetState, clicks: list[Click]) -> tuple[CDNetState, np.ndarray]:
        """One click: the next state and the official mask as an H x W float32 0/1 map."""
        if not clicks:
            raise ValueError("predict() needs at least one click")
        size = CDNET_INFER_SIZE
        height, width = state.image.shape[2:]
        crop, crop_clicks, zoom = zoom_forward(
            self.zoom_in, state.zoom, state.image, state.prob, net_clicks(clicks)
        )
        crop_hw = (int(crop.shape[2]), int(crop.shape[3]))
        x, click_lists = flip_forward(
            resize_square(crop, size), [resize_clicks(crop_clicks, crop_hw, size)]
        )
        points = points_tensor(click_lists, device=self.device)
        with torch.no_grad():
            out = self.net(x, points)
            logits = flip_inverse(out["instances"].to(torch.float32))
            diffused = self.net.PixelDiffusion(x[:1], logits, out["click_map"][:1])
        prob = torch.sigmoid(diffused.to(torch.float32))
        prob = F.interpolate(prob, size=crop_hw, mode="bilinear", align_corners=True)
        prob, zoom = zoom_inverse(zoom, prob, (height, width))
        mask = (prob[0, 0] > MASK_THRESH).cpu().numpy()
        return CDNetState(state.image, prob, zoom), mask.astype(np.float32)
