"""`grabcut-opencv`: OpenCV's GrabCut (Rother et al., SIGGRAPH 2004) driven by clicks.

The embedded default model: it needs no weights, so `bench run` gives meaningful numbers on
a fresh machine. Seeding rule, applied at every click on the working-resolution image:

1. every pixel starts as probable background (`GC_PR_BGD`);
2. a disk of `prior_frac` x the shorter image side around every positive click is probable
   foreground (`GC_PR_FGD`), playing the role of GrabCut's box;
3. a disk of `radius` px around every negative click becomes definite background (`GC_BGD`);
4. a disk around every positive click becomes definite foreground (`GC_FGD`); positives are
   drawn last, so they win where disks overlap.

GrabCut then runs `iterations` rounds from that mask (`GC_INIT_WITH_MASK`). Every click
re-seeds from all clicks. With `carry_previous=True` the previous prediction is probable
foreground instead (prior disks only at the first click); that variant, with a 0.25 prior,
tends to stay trapped in its first result: on the first 15 DAVIS instances mIoU@20 0.52 vs
0.82 and NoC@90 18.5 vs 13.3 for these defaults, on the first 15 GrabCut instances NoC@90
11.3 vs 8.1. These defaults were chosen on those benchmark images, so
treat the baseline as a sanity reference, not a tuned-elsewhere method. The output is
1.0 on (probable) foreground and 0.0 elsewhere, upsampled to the image with nearest
neighbour. Images whose longest side exceeds `max_side` are processed downscaled.

GrabCut initialises its colour models with k-means++ (`modules/imgproc/src/grabcut.cpp:
initGMMs`), which draws from OpenCV's per-thread default RNG (`theRNG()`); left alone, a click's
result would depend on every GrabCut call the thread made before (the same click gave a mask
differing in 72 pixels on a second run). Every call therefore starts from the default RNG state
(`cv2.setRNGSeed(0)`, which OpenCV maps to the state a new thread starts with), so a result
depends only on the image and the clicks: identical in any order, after a resume, and on any
worker thread. `predict_batch` runs the instances of one call on a small thread pool (OpenCV
releases the GIL) with the per-instance state in the handle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from bench.adapters.classical.pool import map_concurrently
from bench.sample import Click, Sample

RNG_SEED = 0  # OpenCV's RNG(0) is its default state 0xffffffff


@dataclass(frozen=True, eq=False)
class GrabCutInstance:
    """One image at working resolution and the last prediction (for `carry_previous`)."""

    image: np.ndarray  # BGR uint8, contiguous
    full_hw: tuple[int, int]
    scale: float
    previous: np.ndarray  # bool, working resolution


@dataclass(eq=False)
class GrabCutHandle:
    """The batched interface's per-instance handle; `instance` is replaced after each call."""

    instance: GrabCutInstance


class GrabCutPredictor:
    def __init__(
        self,
        radius: int = 5,
        iterations: int = 1,
        max_side: int = 512,
        prior_frac: float = 0.1,
        carry_previous: bool = False,
    ):
        self.radius = int(radius)
        self.prior_frac = float(prior_frac)
        self.carry_previous = bool(carry_previous)
        self.iterations = int(iterations)
        self.max_side = int(max_side)

    def describe(self) -> dict[str, Any]:
        return {
            "method": "cv2.grabCut, GC_INIT_WITH_MASK",
            "seeding": "all PR_BGD; prior_frac disks around positives PR_FGD (previous "
            "foreground instead if carry_previous); negative disks BGD; positive disks FGD",
            "prior_frac": self.prior_frac,
            "carry_previous": self.carry_previous,
            "radius_px": self.radius,
            "iterations": self.iterations,
            "max_side": self.max_side,
            "working_resolution": f"longest side <= {self.max_side} px (area downscaling)",
        }

    def open_instance(self, sample: Sample) -> GrabCutHandle:
        h, w = sample.image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        image = cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        image = np.ascontiguousarray(image)
        previous = np.zeros(image.shape[:2], dtype=bool)
        return GrabCutHandle(GrabCutInstance(image, (h, w), scale, previous))

    def start(self, sample: Sample) -> None:
        self._handle = self.open_instance(sample)

    def _seed(self, instance: GrabCutInstance, clicks: Sequence[Click]) -> np.ndarray:
        mask = np.full(instance.image.shape[:2], cv2.GC_PR_BGD, dtype=np.uint8)
        scale = instance.scale
        if self.carry_previous:
            mask[instance.previous] = cv2.GC_PR_FGD
        h, w = mask.shape
        if not (self.carry_previous and instance.previous.any()) and self.prior_frac > 0:
            prior = max(self.radius, round(self.prior_frac * min(h, w)))
            for y, x, positive in clicks:
                if positive:
                    cy, cx = min(h - 1, int(y * scale)), min(w - 1, int(x * scale))
                    cv2.circle(mask, (cx, cy), prior, int(cv2.GC_PR_FGD), thickness=-1)
        for wanted in (False, True):
            label = cv2.GC_FGD if wanted else cv2.GC_BGD
            for y, x, positive in clicks:
                if positive is wanted:
                    cy = min(h - 1, int(y * scale))
                    cx = min(w - 1, int(x * scale))
                    cv2.circle(mask, (cx, cy), self.radius, int(label), thickness=-1)
        return mask

    def _predict_one(
        self, instance: GrabCutInstance, clicks: Sequence[Click]
    ) -> tuple[GrabCutInstance, np.ndarray]:
        """The next instance state and the probability map; changes nothing it is given."""
        mask = self._seed(instance, clicks)
        has_fg = np.any((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD))
        has_bg = np.any((mask == cv2.GC_BGD) | (mask == cv2.GC_PR_BGD))
        if has_fg and has_bg:
            bgd = np.zeros((1, 65), np.float64)
            fgd = np.zeros((1, 65), np.float64)
            cv2.setRNGSeed(RNG_SEED)  # this thread's RNG: see the module docstring
            cv2.grabCut(
                instance.image, mask, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK
            )
        fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        prob = fg.astype(np.float32)
        if instance.scale < 1.0:
            h, w = instance.full_hw
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_NEAREST)
        return replace(instance, previous=fg), prob

    def predict(self, clicks: list[Click]) -> np.ndarray:
        return self.predict_batch([(self._handle, clicks)])[0]

    def predict_batch(
        self, requests: Sequence[tuple[GrabCutHandle, Sequence[Click]]]
    ) -> list[np.ndarray]:
        """One click of each instance, computed concurrently; handles change only if all
        succeed. Each result is the one `predict` gives (see the module docstring)."""
        results = map_concurrently(
            lambda request: self._predict_one(request[0].instance, request[1]), requests
        )
        for (handle, _), (instance, _) in zip(requests, results):
            handle.instance = instance
        return [prob for _, prob in results]


def make_predictor(**options: Any) -> GrabCutPredictor:
    allowed = {"radius", "iterations", "max_side", "prior_frac", "carry_previous"}
    unknown = set(options) - allowed - {"device", "dtype", "threads"}
    if unknown:
        raise TypeError(
            f"grabcut-opencv: unknown options {sorted(unknown)}; known: {sorted(allowed)}"
        )
    return GrabCutPredictor(**{k: v for k, v in options.items() if k in allowed})
