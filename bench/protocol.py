"""The official click simulator and IoU (RITM/SimpleClick `isegm/inference/clicker.py`,
`isegm/inference/utils.py:get_iou`; PROTOCOL.md sections 2 and 4.1).

Pure numpy; no I/O, no torch. Bit-exactness rests on four rules: the error masks exclude
ignore pixels, the distance transform is the exact Euclidean one of the error mask padded
by one non-error pixel, ties go to a negative click and to the first pixel in raster order,
and IoU is computed in float64 then stored as float32.

Speed: the distance transform is only needed on the bounding box of each error mask.
Every pixel outside that box is non-error, so the nearest non-error pixel of an interior
pixel is never farther than the box's one-pixel frame, and cropping changes no value.
Distances are compared as exact integer squares, which also removes the last-bit noise of
OpenCV's float32 output that the spec warns about (PROTOCOL.md section 2.2, exactness notes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from bench.sample import IGNORE, Click

_REL_NOISE = 1e-5
"""Relative slack that covers OpenCV's float32 last-bit noise but not the gap between
sqrt(n) and sqrt(n + 1) for distances below ~2048 px (1 / (2 * 2048) / 2048 = 1.2e-7 is the
smallest relative gap, so candidates may include a smaller square, which rounding rejects)."""

PRED_THR = 0.49
"""The evaluator's binarisation threshold, compared with a strict `>` (not 0.5)."""


@dataclass(frozen=True, eq=False)
class Target:
    """Ground truth prepared once per instance: object and background restricted to valid pixels."""

    object_valid: np.ndarray  # gt == 1 (object pixels are never ignore)
    background_valid: np.ndarray  # gt == 0 or any other non-ignore, non-object value
    n_object: int

    @classmethod
    def from_gt(cls, gt: np.ndarray) -> Target:
        obj = gt == 1
        return cls(obj, (gt != IGNORE) & ~obj, int(np.count_nonzero(obj)))

    @property
    def shape(self) -> tuple[int, int]:
        return self.object_valid.shape  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class Errors:
    """False negatives and false positives of one binary prediction, on valid pixels only."""

    fn: np.ndarray
    fp: np.ndarray
    n_fn: int
    n_fp: int


def errors(target: Target, pred: np.ndarray) -> Errors:
    fn = target.object_valid & ~pred
    fp = target.background_valid & pred
    return Errors(fn, fp, int(np.count_nonzero(fn)), int(np.count_nonzero(fp)))


def iou_from_errors(target: Target, err: Errors) -> float:
    """IoU over valid pixels in float64: I = |O| - |FN|, U = |O| + |FP|.

    The official loop early-stops on this float64 value but stores (and thresholds for NoC)
    its float32 rounding. U = 0 (no valid object pixels, empty prediction) gives NaN, as
    numpy's 0/0 does in the official code; NaN never reaches a threshold.
    """
    union = target.n_object + err.n_fp
    if union == 0:
        return float("nan")
    return (target.n_object - err.n_fn) / union


def iou(gt: np.ndarray, pred: np.ndarray) -> np.float32:
    """`get_iou(gt, pred)` of the official code, as stored: float32."""
    target = Target.from_gt(gt)
    return np.float32(iou_from_errors(target, errors(target, pred)))


def binarize(prob: np.ndarray, thr: float = PRED_THR) -> np.ndarray:
    return prob > thr


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def error_distance(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The official distance map of an error mask on its bounding box, and the box (r0, r1, c0, c1).

    float32 exact EDT to the nearest non-error pixel, the image border counting as non-error
    (the official one-pixel padding); None when the mask is empty. Shared with the simulated
    click models (`bench.clicks.simulated`), which sample from the same map.
    """
    box = _bbox(mask)
    if box is None:
        return None
    r0, r1, c0, c1 = box
    crop = np.pad(mask[r0:r1, c0:c1], 1).view(np.uint8)
    return cv2.distanceTransform(crop, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1], box


def _max_squared_distance(
    mask: np.ndarray, clicked: Iterable[tuple[int, int]]
) -> tuple[int, int, int]:
    """(max squared EDT, row, col of its first raster-order occurrence) of an error mask.

    Clicked pixels count as distance 0. With no error pixel left the maximum is 0 at (0, 0),
    which is where the official `np.where` on an all-zero map points.
    """
    found = error_distance(mask)
    if found is None:
        return 0, 0, 0
    dist, (r0, r1, c0, c1) = found
    for y, x in clicked:
        if r0 <= y < r1 and c0 <= x < c1:
            dist[y - r0, x - c0] = 0.0
    top = float(dist.max())
    if top == 0.0:
        return 0, 0, 0
    # Only pixels within float32 noise of the maximum can hold the largest exact square;
    # squaring them back gives the exact integers (PROTOCOL.md section 2.2 exactness notes).
    flat = dist.reshape(-1)
    candidates = np.flatnonzero(flat >= np.float32(top * (1.0 - _REL_NOISE)))
    squares = np.rint(flat[candidates].astype(np.float64) ** 2).astype(np.int64)
    best = int(squares.max())
    first = int(candidates[np.argmax(squares == best)])
    w = dist.shape[1]
    return best, r0 + first // w, c0 + first % w


def next_click_from_errors(err: Errors, clicked: Iterable[tuple[int, int]]) -> Click:
    """The official next click: interior-most pixel of the larger error, negative on ties."""
    clicked = list(clicked)
    fn_best, fn_y, fn_x = _max_squared_distance(err.fn, clicked)
    fp_best, fp_y, fp_x = _max_squared_distance(err.fp, clicked)
    if fn_best > fp_best:
        return Click(fn_y, fn_x, True)
    return Click(fp_y, fp_x, False)


def next_click(gt: np.ndarray, pred: np.ndarray, clicked: Iterable[tuple[int, int]] = ()) -> Click:
    """Next click for ground truth `gt` (tri-state) given binary prediction `pred`.

    `clicked` holds the (row, col) of earlier clicks: each is excluded as a single pixel.
    """
    target = Target.from_gt(gt)
    return next_click_from_errors(errors(target, pred), clicked)


# --- boundary IoU ----------------------------------------------------------------------------

BOUNDARY_DILATION_RATIO = 0.02
"""Band width as a fraction of the image diagonal (Cheng et al., "Boundary IoU", CVPR 2021;
sam-hq `train/utils/misc.py:mask_to_boundary`, RClicks `isegm/inference/utils.py`)."""

_KERNEL = np.ones((3, 3), dtype=np.uint8)


def boundary_width(shape: tuple[int, int], ratio: float = BOUNDARY_DILATION_RATIO) -> int:
    """d = max(1, round(ratio * image diagonal)), Python's round as the official code."""
    h, w = shape
    return max(1, int(round(ratio * np.sqrt(h * h + w * w))))


def _boundary_crop(mask: np.ndarray, d: int) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The inner band of `mask` on its bounding box (uint8 0/1), and the box (r0, r1, c0, c1).

    The official `mask_to_boundary` pads the whole mask by one zero pixel, erodes it `d`
    times with a 3 x 3 square and keeps mask minus eroded: the pixels within Chebyshev
    distance d of the background or of the image border. Outside the mask's bounding box
    every pixel is background, so eroding the box alone with a zero border (OpenCV's
    `BORDER_CONSTANT` 0, the official zero padding without the copy) gives the same band,
    and the band is never outside the box."""
    box = _bbox(mask)
    if box is None:
        return None
    r0, r1, c0, c1 = box
    crop = np.ascontiguousarray(mask[r0:r1, c0:c1]).view(np.uint8)
    eroded = cv2.erode(crop, _KERNEL, iterations=d, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.subtract(crop, eroded), box


def mask_boundary(mask: np.ndarray, d: int) -> np.ndarray:
    """The official boundary band of a binary mask (bool, full size)."""
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(mask.shape, dtype=bool)
    found = _boundary_crop(mask, d)
    if found is not None:
        band, (r0, r1, c0, c1) = found
        out[r0:r1, c0:c1] = band.view(bool)
    return out


@dataclass(frozen=True, eq=False)
class BoundaryTarget:
    """The GT side of boundary IoU, prepared once per instance: the band of the object
    (ignore pixels count as background when it is extracted), the valid-pixel mask, and the
    number of band pixels that are valid."""

    gt_band: np.ndarray  # uint8 0/1
    valid: np.ndarray | None  # uint8 0/1; None: no ignore pixel
    n_gt_band: int
    d: int

    @classmethod
    def from_gt(cls, gt: np.ndarray) -> BoundaryTarget:
        d = boundary_width(gt.shape)
        band = mask_boundary(gt == 1, d)
        ignore = gt == IGNORE
        valid = (~ignore).view(np.uint8) if ignore.any() else None
        n = int(np.count_nonzero(band if valid is None else band & valid.view(bool)))
        return cls(band.view(np.uint8), valid, n, d)


def boundary_iou_from_target(target: BoundaryTarget, pred: np.ndarray) -> float:
    """RClicks' `get_boundary_iou` in float64: bands of the GT object and of the prediction,
    then I = |pred band ∧ GT band ∧ valid|, U = |(pred band ∨ GT band) ∧ valid|. Ignore
    pixels are dropped from both counts after the bands are extracted (sam-hq has no ignore
    label: on a dataset without one the two agree). 0 / 0 (no band at all) is NaN.

    Speed: the prediction's band lives on its bounding box, so the counts run there only;
    |GT band ∧ valid| is prepared once, and U = |P| + |G| - I."""
    found = _boundary_crop(np.asarray(pred, dtype=bool), target.d)
    if found is None:
        inter, n_pred = 0, 0
    else:
        band, (r0, r1, c0, c1) = found
        if target.valid is not None:
            band = cv2.bitwise_and(band, target.valid[r0:r1, c0:c1])
        n_pred = cv2.countNonZero(band)
        inter = cv2.countNonZero(cv2.bitwise_and(band, target.gt_band[r0:r1, c0:c1]))
    union = n_pred + target.n_gt_band - inter
    if union == 0:
        return float("nan")
    return inter / union


def boundary_iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """Boundary IoU of a binary prediction against a tri-state GT (1 object, IGNORE, else
    background), as RClicks' `get_boundary_iou(gt_mask, pred_mask, ignore_label=-1)`."""
    return boundary_iou_from_target(BoundaryTarget.from_gt(np.asarray(gt)), pred)
