"""The deterministic fake predictor of `golden/protocol/README.md`, as a third-party plugin.

It reads the ground truth (allowed for oracle/debug predictors) and is loaded by tests
through `--model tests/plugins/shifted_reveal.py:make_predictor`, which exercises the
public predictor interface end to end.
"""

from __future__ import annotations

import numpy as np


class ShiftedRevealPredictor:
    def __init__(self, shift_div: int = 20, radius_div: int = 12):
        self.shift_div = shift_div
        self.radius_div = radius_div

    def start(self, sample) -> None:
        self.obj = sample.gt == 1
        h, w = self.obj.shape
        m = min(h, w)
        delta, self.radius = m // self.shift_div, m // self.radius_div
        self.state = np.zeros_like(self.obj)
        self.state[delta:, delta:] = self.obj[: h - delta, : w - delta]
        self.yy, self.xx = np.ogrid[:h, :w]

    def predict(self, clicks) -> np.ndarray:
        y, x, positive = clicks[-1]
        disk = (self.yy - y) ** 2 + (self.xx - x) ** 2 <= self.radius**2
        old = self.state.copy()
        if positive:
            self.state[disk & self.obj] = True
        else:
            self.state[disk & ~self.obj] = False
        return 0.5 * self.state + 0.5 * (self.state & old)


def make_predictor(**options) -> ShiftedRevealPredictor:
    return ShiftedRevealPredictor(**options)
