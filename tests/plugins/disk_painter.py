"""A method plugin that never sees the ground truth: each positive click paints a disk of
object, each negative click erases one. Deterministic and instant, it stands for "a user's
method" in tests that need a method rather than an oracle (the README commands, reports that
rank runs). Option: `radius` in pixels (default 20)."""

from __future__ import annotations

import numpy as np


class DiskPainter:
    def __init__(self, radius: int = 20) -> None:
        self.radius = int(radius)

    def open_instance(self, sample) -> dict:
        h, w = sample.image.shape[:2]
        yy, xx = np.ogrid[:h, :w]
        return {"yy": yy, "xx": xx, "mask": np.zeros((h, w), dtype=bool)}

    def _paint(self, handle: dict, clicks) -> np.ndarray:
        y, x, positive = clicks[-1]
        disk = (handle["yy"] - y) ** 2 + (handle["xx"] - x) ** 2 <= self.radius**2
        mask = handle["mask"].copy()
        mask[disk] = bool(positive)
        return mask

    def predict_batch(self, requests) -> list[np.ndarray]:
        masks = [self._paint(handle, clicks) for handle, clicks in requests]
        for (handle, _), mask in zip(requests, masks):
            handle["mask"] = mask
        return [m.astype(np.float32) for m in masks]

    def start(self, sample) -> None:
        self.handle = self.open_instance(sample)

    def predict(self, clicks) -> np.ndarray:
        return self.predict_batch([(self.handle, clicks)])[0]


def make_predictor(**options) -> DiskPainter:
    return DiskPainter(**options)
