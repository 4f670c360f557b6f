"""FocalClick's focus crop: where the refiner looks after a click.

Reproduces `isegm/utils/crop_local.py` (`get_focus_cropv1`, `get_bbox_from_mask`,
`expand_bbox`, `map_point_in_bbox`) and `FocalPredictor.mapp_roi`
(`isegm/inference/predictors/focalclick.py`) of ClickSEG d61a76b; golden/clickseg/README.md
quirk 7. The arithmetic keeps the official operand order in Python floats (float64), and
`int()` truncates toward zero where the official code does.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["focus_box", "focus_in_global", "map_point_in_box"]

FOCUS_THRESH = 0.49


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """`crop_local.get_bbox_from_mask`: (0, h, 0, w) for < 10 pixels (exclusive ends!), else
    the first/last row and column (inclusive)."""
    h, w = mask.shape
    if mask.sum() < 10:
        return 0, h, 0, w
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _expand(
    shape: tuple[int, int], y1: float, y2: float, x1: float, x2: float, ratio: float
) -> tuple[int, int, int, int]:
    """`crop_local.expand_bbox` (min_crop 0): scale about the centre, `int()`, clamp to [0, H/W]."""
    height, width = shape
    xc, yc = 0.5 * (x1 + x2), 0.5 * (y1 + y2)
    h = ratio * (y2 - y1 + 1)
    w = ratio * (x2 - x1 + 1)
    nx1 = int(xc - w * 0.5)
    nx2 = int(xc + w * 0.5)
    ny1 = int(yc - h * 0.5)
    ny2 = int(yc + h * 0.5)
    return max(0, ny1), min(height, ny2), max(0, nx1), min(width, nx2)


def focus_box(
    coarse_logits: np.ndarray,
    prev_prob: np.ndarray,
    global_roi: tuple[int, int, int, int],
    y: int,
    x: int,
    ratio: float = 1.4,
) -> tuple[int, int, int, int]:
    """`get_focus_cropv1`: the focus box (y1, y2, x1, x2), exclusive ends, full-image frame.

    `coarse_logits` is the full-size coarse *logit* map, thresholded at 0.49 as a logit
    (official); `prev_prob` the previous final probability. `global_roi` is
    (ymin, ymax, xmin, xmax) with exclusive ends; (y, x) the last click.
    """
    pred = coarse_logits > FOCUS_THRESH
    prev = prev_prob > FOCUS_THRESH
    ymin, ymax, xmin, xmax = global_roi
    if prev.sum() == 0:
        y1, y2, x1, x2 = _bbox(pred)
    else:
        diff = np.logical_xor(prev, pred).astype(np.uint8)
        _, labels = cv2.connectedComponents(diff)  # 8-connectivity, label 0 = outside the XOR
        component = labels == labels[y, x]
        y1d, y2d, x1d, x2d = _bbox(component)
        hd, wd = y2d - y1d, x2d - x1d
        y1p, y2p, x1p, x2p = _bbox(pred)
        hp, wp = y2p - y1p, x2p - x1p
        if hd < hp / 3 or wd < wp / 3:
            r = 0.2
            side = max(hp, wp)
            y1, y2, x1, x2 = y - r * side, y + r * side, x - r * side, x + r * side
        else:
            y1, y2, x1, x2 = y1d, y2d, x1d, x2d
    y1, y2, x1, x2 = _expand(pred.shape, y1, y2, x1, x2, ratio)
    return max(y1, ymin), min(y2, ymax), max(x1, xmin), min(x2, xmax)


def focus_in_global(
    focus: tuple[int, int, int, int], global_roi: tuple[int, int, int, int], size: int
) -> tuple[float, float, float, float]:
    """`FocalPredictor.mapp_roi`: the focus box in the S x S network frame of the global ROI,
    clipped to [0, S]."""
    yg1, yg2, xg1, xg2 = global_roi
    hg, wg = yg2 - yg1, xg2 - xg1
    yf1, yf2, xf1, xf2 = focus
    y1 = (yf1 - yg1) * (size / hg)
    y2 = (yf2 - yg1) * (size / hg)
    x1 = (xf1 - xg1) * (size / wg)
    x2 = (xf2 - xg1) * (size / wg)
    return max(y1, 0), min(y2, size), max(x1, 0), min(x2, size)


def map_point_in_box(
    y: float, x: float, box: tuple[int, int, int, int], size: int
) -> tuple[float, float]:
    """`crop_local.map_point_in_bbox`: a full-image click in the S x S focus-crop frame."""
    y1, y2, x1, x2 = box
    ry, rx = size / (y2 - y1), size / (x2 - x1)
    return float((y - y1) * ry), float((x - x1) * rx)
