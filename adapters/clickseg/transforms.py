"""ClickSEG's evaluation-time transforms: its ZoomIn (crop only) and ResizeTrans (square resize).

Reproduces `isegm/inference/transforms/zoom_in.py:ZoomIn` and `resize.py:ResizeTrans` of
ClickSEG d61a76b (golden/clickseg/README.md quirks 3-5). Differences from RITM's ZoomIn, which
`bench.adapters.common.zoom_in` implements and whose helpers are reused here:

* the ROI is only cropped, never resized (`get_roi_image_nd`: the interpolate call is
  commented out), so `target_size` has no effect; `ResizeTrans` then resizes the crop to a
  square S x S (bilinear, align_corners=True, aspect ratio not kept);
* `min_crop_size` 10 and `prob_thresh` 0.49 (ZoomIn defaults; `get_predictor` passes only
  `target_size` and `expansion_ratio`), `skip_clicks` 1;
* the ROI is recomputed at every click (`update_object_roi = True` from the start, so RITM's
  keep-the-ROI conditions never apply); with no pixel above 0.49 the click runs on the whole
  image and the stale ROI stays for the inverse (as RITM).

`zoom_inverse` (paste into zeros outside the ROI once a previous map exists) is RITM's,
unchanged in ClickSEG.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from bench.adapters.common.points import NetClick
from bench.adapters.common.zoom_in import ZoomState, clicks_to_crop, object_roi

__all__ = [
    "ClickSEGZoomIn",
    "ZoomState",
    "resize_clicks",
    "resize_square",
    "zoom_forward",
]


@dataclass(frozen=True)
class ClickSEGZoomIn:
    """ZoomIn parameters as `scripts/evaluate_model.py` builds them (`--eval-mode cvpr`)."""

    expansion_ratio: float = 1.4
    min_crop_size: int = 10
    prob_thresh: float = 0.49
    skip_clicks: int = 1


def zoom_forward(
    config: ClickSEGZoomIn,
    state: ZoomState,
    image: torch.Tensor,
    prev_prob: torch.Tensor,
    clicks: list[NetClick],
) -> tuple[torch.Tensor, list[NetClick], ZoomState]:
    """Official `ZoomIn.transform`: (network-input crop, clicks in it, next state).

    `prev_prob` is ZoomIn's `_prev_probs` (1 x 1 x H x W); `state.has_prev` says whether it
    exists yet.
    """
    if len(clicks) <= config.skip_clicks:
        return image, clicks, state
    roi = None
    if state.has_prev:
        mask = (prev_prob[0, 0] > config.prob_thresh).cpu().numpy()
        if mask.any():
            roi = object_roi(mask, clicks, config.expansion_ratio, config.min_crop_size)
    if roi is None:
        if config.skip_clicks >= 0:
            return image, clicks, state
        roi = (0, image.shape[2] - 1, 0, image.shape[3] - 1)
    rmin, rmax, cmin, cmax = roi
    crop = image[:, :, rmin : rmax + 1, cmin : cmax + 1]
    size = (rmax - rmin + 1, cmax - cmin + 1)
    return crop, clicks_to_crop(clicks, roi, size), replace(state, roi=roi, roi_image_hw=size)


def resize_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """`ResizeTrans.transform` on the image: bilinear, align_corners=True, to size x size."""
    return F.interpolate(image, (size, size), mode="bilinear", align_corners=True)


def resize_clicks(clicks: list[NetClick], hw: tuple[int, int], size: int) -> list[NetClick]:
    """`ResizeTrans.transform` on the clicks: scaled by size / h and size / w (not by
    (size - 1) / (h - 1), although the image is resized corner-aligned)."""
    y_ratio = size / hw[0]
    x_ratio = size / hw[1]
    return [c._replace(row=float(c.row * y_ratio), col=float(c.col * x_ratio)) for c in clicks]
