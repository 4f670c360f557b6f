"""A method (not an oracle) that predicts the initial mask it is given, for every click.

Used through `--model tests/plugins/init_mask_probe.py:make_predictor`: with DAVIS-585 `sp`
or `stm` every IoU of its run is the initial mask's IoU; without an initial mask it predicts
nothing. It also checks that the ground truth stays hidden from it.
"""

from __future__ import annotations

import numpy as np


class InitMaskProbe:
    def start(self, sample) -> None:
        if hasattr(sample, "gt"):
            raise AssertionError("a method must not receive the ground truth")
        shape = sample.image.shape[:2]
        init = sample.init_mask
        self.prob = np.zeros(shape, np.float32) if init is None else init.astype(np.float32)

    def predict(self, clicks) -> np.ndarray:
        return self.prob


def make_predictor() -> InitMaskProbe:
    return InitMaskProbe()
