"""The deterministic fake predictor of `golden/protocol/README.md`, as a third-party plugin.

It reads the ground truth, so it declares `oracle = True` (the harness hands only oracles
the ground truth; their runs are marked and never ranked) and is loaded by tests
through `--model tests/plugins/shifted_reveal.py:make_predictor`, which exercises the
public predictor interface end to end: `start`/`predict`, and the optional batched
`open_instance`/`predict_batch` (`bench.adapters.BatchPredictor`) whose per-instance state lives
in a `RevealHandle`, so the engine's batched path is tested with the same golden behaviour.
"""

from __future__ import annotations

import numpy as np


class RevealHandle:
    """One instance in flight: its object mask, reveal radius, pixel grid and revealed state.

    A plain class, not a dataclass: test files load this plugin with `exec_module` without
    registering it in `sys.modules`, which `dataclasses` needs to resolve string annotations.
    """

    def __init__(self, obj, radius, yy, xx, state) -> None:
        self.obj, self.radius, self.yy, self.xx, self.state = obj, radius, yy, xx, state


class ShiftedRevealPredictor:
    oracle = True  # reads sample.gt

    def __init__(self, shift_div: int = 20, radius_div: int = 12):
        self.shift_div = shift_div
        self.radius_div = radius_div

    def open_instance(self, sample) -> RevealHandle:
        obj = sample.gt == 1
        h, w = obj.shape
        m = min(h, w)
        delta = m // self.shift_div
        state = np.zeros_like(obj)
        state[delta:, delta:] = obj[: h - delta, : w - delta]
        yy, xx = np.ogrid[:h, :w]
        return RevealHandle(obj, m // self.radius_div, yy, xx, state)

    def _reveal(self, handle: RevealHandle, clicks) -> tuple[np.ndarray, np.ndarray]:
        """(next state, output map) of one click; `handle` is left unchanged."""
        y, x, positive = clicks[-1]
        disk = (handle.yy - y) ** 2 + (handle.xx - x) ** 2 <= handle.radius**2
        old = handle.state
        new = old.copy()
        if positive:
            new[disk & handle.obj] = True
        else:
            new[disk & ~handle.obj] = False
        return new, 0.5 * new + 0.5 * (new & old)

    def predict_batch(self, requests) -> list[np.ndarray]:
        results = [self._reveal(handle, clicks) for handle, clicks in requests]
        for (handle, _), (state, _) in zip(requests, results):
            handle.state = state
        return [prob for _, prob in results]

    def start(self, sample) -> None:
        self.handle = self.open_instance(sample)

    def predict(self, clicks) -> np.ndarray:
        return self.predict_batch([(self.handle, clicks)])[0]


def make_predictor(**options) -> ShiftedRevealPredictor:
    return ShiftedRevealPredictor(**options)
