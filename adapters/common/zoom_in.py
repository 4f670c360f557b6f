"""Evaluation-time ZoomIn: crop the image around the object, run the network there, paste back.

Reproduces `isegm/inference/transforms/zoom_in.py:ZoomIn` with its helpers in
`isegm/utils/misc.py` (`get_bbox_from_mask`, `expand_bbox`, `clamp_bbox`, `get_bbox_iou`,
`get_segments_iou`), identical in RITM b9b4460 and SimpleClick f33112e; PROTOCOL.md section 6.3.

The per-instance state is an explicit frozen value (`ZoomState`) so that many instances can be
advanced side by side; `zoom_forward` returns the view the network sees plus the next state,
`zoom_inverse` maps a probability map of that view back to the full image.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from bench.adapters.common.points import NetClick

Box = tuple[int, int, int, int]
"""(rmin, rmax, cmin, cmax), all inclusive, in original image pixels."""


@dataclass(frozen=True)
class ZoomInConfig:
    """Official `ZoomIn` parameters. An int `target_size` scales the longest ROI side to it
    (aspect kept, RITM); a tuple resizes to exactly (h, w) (SimpleClick)."""

    target_size: int | tuple[int, int]
    skip_clicks: int
    expansion_ratio: float = 1.4
    min_crop_size: int = 200
    recompute_thresh_iou: float = 0.5
    prob_thresh: float = 0.5

    def __post_init__(self) -> None:
        if self.skip_clicks == 0:
            # skip_clicks == 0 enables the official `check_possible_recalculation` re-run, which
            # no official evaluation setting uses and this module does not implement.
            raise ValueError("ZoomIn with skip_clicks == 0 (prediction re-run) is not supported")
        if isinstance(self.target_size, list):
            object.__setattr__(self, "target_size", tuple(self.target_size))


def simpleclick_cvpr_zoom_in(dataset: str) -> ZoomInConfig:
    """SimpleClick `scripts/evaluate_model.py:get_predictor_and_zoomin_params`, eval-mode cvpr."""
    size = (672, 672) if dataset == "DAVIS" else (448, 448)
    return ZoomInConfig(target_size=size, skip_clicks=-1)


def ritm_cvpr_zoom_in(dataset: str) -> ZoomInConfig:
    """RITM `scripts/evaluate_model.py:get_predictor_and_zoomin_params`, eval-mode cvpr."""
    return ZoomInConfig(target_size=600 if dataset == "DAVIS" else 400, skip_clicks=1)


@dataclass(frozen=True)
class ZoomState:
    """What ZoomIn remembers between clicks of one instance (reset by a new image).

    `roi` is the stored object ROI, which may be stale (RITM quirk, PROTOCOL.md 6.3);
    `roi_image_hw` the size of the last crop made; `has_prev` whether a prediction exists.
    """

    roi: Box | None = None
    roi_image_hw: tuple[int, int] | None = None
    has_prev: bool = False


@dataclass(frozen=True, eq=False)
class ZoomView:
    """The network-frame tensor and clicks of one click, before flip."""

    image: torch.Tensor  # 1 x C x h x w
    clicks: list[NetClick]
    zoomed: bool  # whether a crop was made this click (False: the full image, unchanged)


def bbox_of_mask(mask: np.ndarray) -> Box:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def expand_box(box: Box, ratio: float, min_size: float) -> Box:
    """Scale about the centre, at least `min_size` per side; Python `round` (half to even)."""
    rmin, rmax, cmin, cmax = box
    rcenter = 0.5 * (rmin + rmax)
    ccenter = 0.5 * (cmin + cmax)
    height = max(ratio * (rmax - rmin + 1), min_size)
    width = max(ratio * (cmax - cmin + 1), min_size)
    return (
        round(rcenter - 0.5 * height),
        round(rcenter + 0.5 * height),
        round(ccenter - 0.5 * width),
        round(ccenter + 0.5 * width),
    )


def clamp_box(box: Box, height: int, width: int) -> Box:
    rmin, rmax, cmin, cmax = box
    return (
        max(0, min(height - 1, rmin)),
        max(0, min(height - 1, rmax)),
        max(0, min(width - 1, cmin)),
        max(0, min(width - 1, cmax)),
    )


def _segment_iou(a: int, b: int, c: int, d: int) -> float:
    # "Union" is the length of the hull, as the official `get_segments_iou`.
    return max(0, min(b, d) - max(a, c) + 1) / max(1e-6, max(b, d) - min(a, c) + 1)


def box_iou(box1: Box, box2: Box) -> float:
    """Product of the per-axis segment IoUs (official `get_bbox_iou`)."""
    return _segment_iou(box1[0], box1[1], box2[0], box2[1]) * _segment_iou(
        box1[2], box1[3], box2[2], box2[3]
    )


def object_roi(mask: np.ndarray, clicks: list[NetClick], ratio: float, min_size: float) -> Box:
    """Expanded, clamped box of `mask` plus every positive click (official `get_object_roi`)."""
    mask = mask.copy()
    for click in clicks:
        if click.positive:
            mask[int(click.row), int(click.col)] = True
    height, width = mask.shape
    return clamp_box(expand_box(bbox_of_mask(mask), ratio, min_size), height, width)


def positives_inside(roi: Box, clicks: list[NetClick]) -> bool:
    """Official `check_object_roi`: a click on the last row/col counts as outside (>= rmax)."""
    rmin, rmax, cmin, cmax = roi
    return all(rmin <= c.row < rmax and cmin <= c.col < cmax for c in clicks if c.positive)


def roi_image_size(roi: Box, target_size: int | tuple[int, int]) -> tuple[int, int]:
    """Crop size: exactly a tuple target, or the longest side scaled to an int target."""
    height = roi[1] - roi[0] + 1
    width = roi[3] - roi[2] + 1
    if isinstance(target_size, tuple):
        return int(target_size[0]), int(target_size[1])
    scale = target_size / max(height, width)
    return round(height * scale), round(width * scale)


def crop_and_resize(image: torch.Tensor, roi: Box, size: tuple[int, int]) -> torch.Tensor:
    rmin, rmax, cmin, cmax = roi
    crop = image[:, :, rmin : rmax + 1, cmin : cmax + 1]
    return F.interpolate(crop, size=size, mode="bilinear", align_corners=True)


def clicks_to_crop(clicks: list[NetClick], roi: Box, size: tuple[int, int]) -> list[NetClick]:
    """Pixel-area scaling crop * (x - min) / roi_size, not the corner-aligned image mapping;
    results are float64 (negatives outside the ROI leave [0, crop) and are kept)."""
    rmin, rmax, cmin, cmax = roi
    crop_h, crop_w = size
    return [
        c._replace(
            row=float(crop_h * (c.row - rmin) / (rmax - rmin + 1)),
            col=float(crop_w * (c.col - cmin) / (cmax - cmin + 1)),
        )
        for c in clicks
    ]


def zoom_forward(
    config: ZoomInConfig,
    state: ZoomState,
    image: torch.Tensor,
    prev_prob: torch.Tensor,
    clicks: list[NetClick],
) -> tuple[ZoomView, ZoomState]:
    """Official `ZoomIn.transform` for one instance.

    `image` is 1 x C x H x W (RGB + previous probability), `prev_prob` the stored full-size
    previous probability (1 x 1 x H x W), `clicks` every click in original pixels.
    """
    unchanged = ZoomView(image, clicks, zoomed=False)
    if len(clicks) <= config.skip_clicks:
        return unchanged, state
    height, width = image.shape[2:]

    candidate = None
    if state.has_prev:
        mask = (prev_prob[0, 0] > config.prob_thresh).cpu().numpy()
        if mask.any():
            candidate = object_roi(mask, clicks, config.expansion_ratio, config.min_crop_size)
    if candidate is None:
        if config.skip_clicks >= 0:
            # The stored ROI stays: the inverse still pastes into it (RITM stale-ROI quirk).
            return unchanged, state
        candidate = (0, height - 1, 0, width - 1)

    roi = state.roi
    if (
        roi is None
        or not positives_inside(roi, clicks)
        or box_iou(candidate, roi) < config.recompute_thresh_iou
    ):
        roi = candidate
    size = roi_image_size(roi, config.target_size)
    view = ZoomView(crop_and_resize(image, roi, size), clicks_to_crop(clicks, roi, size), True)
    return view, replace(state, roi=roi, roi_image_hw=size)


def zoom_inverse(
    state: ZoomState, prob: torch.Tensor, full_hw: tuple[int, int]
) -> tuple[torch.Tensor, ZoomState]:
    """Official `ZoomIn.inv_transform`: the ROI-frame probability back to the full image.

    Zero outside the stored ROI once a previous prediction exists; before that (first click,
    ROI = whole image) the resized map is the result.
    """
    if state.roi is not None:
        rmin, rmax, cmin, cmax = state.roi
        resized = F.interpolate(
            prob, size=(rmax - rmin + 1, cmax - cmin + 1), mode="bilinear", align_corners=True
        )
        if state.has_prev:
            prob = torch.zeros(
                (*prob.shape[:2], *full_hw), dtype=resized.dtype, device=resized.device
            )
            prob[:, :, rmin : rmax + 1, cmin : cmax + 1] = resized
        else:
            prob = resized
    return prob, replace(state, has_prev=True)
