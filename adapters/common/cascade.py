"""CFR-ICL's evaluation-time cascade-forward refinement (`--cf-n`, `--acf`, `--cf-click`).

Reproduces `isegm/inference/predictors/base.py:BasePredictor.get_prediction` of CFR-ICL
(TitorX/CFR-ICL-Interactive-Segmentation, commit dadb069; golden/mobilesam/README.md part B1):
while an instance has at most `cascade_clicks` clicks, the prediction is run `cascade_step`
times on the same clicks, each step an ordinary prediction (ZoomIn -> network with flip ->
inverse transforms) whose previous-mask channel and ZoomIn ROI come from the step before.
`scripts/evaluate_model.py:get_predictor_and_zoomin_params` sets `cascade_step = cf_n + 1`,
so `cf_n = 0` (the CLI default) is one ordinary prediction: SimpleClick's.

With `--acf` the loop returns early once a step changes at most 20 pixels of the full-image
mask thresholded at 0.49 (both maps), compared with the step before; the first step is never
compared (the official outer call's `prev_mask` is None).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACF_THRESHOLD = 0.49
"""Probability threshold of the official adaptive check (hard-coded there, not `--thresh`)."""

ACF_MAX_CHANGED = 20
"""The official adaptive check stops when at most this many pixels changed."""


@dataclass(frozen=True)
class CascadeConfig:
    """`cf_n` extra forwards on each of the first `cf_click` clicks; `acf`: adaptive stop."""

    cf_n: int = 0
    acf: bool = False
    cf_click: int = 1

    def __post_init__(self) -> None:
        if int(self.cf_n) != self.cf_n or self.cf_n < 0:
            raise ValueError(f"cf_n={self.cf_n!r}: expected an integer >= 0")
        if int(self.cf_click) != self.cf_click or self.cf_click < 0:
            raise ValueError(f"cf_click={self.cf_click!r}: expected an integer >= 0")

    @property
    def enabled(self) -> bool:
        return self.cf_n > 0

    def steps(self, n_clicks: int) -> int:
        """Predictions run for a click that makes `n_clicks` clicks in all (official
        `len(clicks_list) <= cascade_clicks`; at least one)."""
        return self.cf_n + 1 if n_clicks <= self.cf_click else 1

    def record(self) -> dict[str, object]:
        """For the manifest."""
        return {
            "cf_n": self.cf_n,
            "acf": self.acf,
            "cf_click": self.cf_click,
            "rule": "CFR-ICL isegm/inference/predictors/base.py get_prediction: cascade_step = "
            f"cf_n + 1 predictions on each of the first {self.cf_click} click(s)"
            + (
                f"; acf: stop once <= {ACF_MAX_CHANGED} pixels change at {ACF_THRESHOLD}"
                if self.acf
                else ""
            ),
        }


def changed_pixels(prob: np.ndarray, previous: np.ndarray) -> int:
    """Pixels whose mask at 0.49 differs between two full-image probability maps."""
    return int(np.count_nonzero((prob > ACF_THRESHOLD) != (previous > ACF_THRESHOLD)))


def stops_early(config: CascadeConfig, changed: int) -> bool:
    """The `--acf` test after a step that changed `changed` pixels from the step before."""
    return config.acf and changed <= ACF_MAX_CHANGED
