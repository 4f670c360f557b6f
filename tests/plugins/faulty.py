"""A predictor that misbehaves on purpose, for the fault-injection suite (tests/test_faults.py).

It is the golden shifted-reveal fake (`shifted_reveal.py`), so every instance it does not
break gives exactly the trajectory of a clean run. Options (`--model-option KEY=VALUE`):

* `fault`: what `predict` returns for the target instance from click `at_click` on:
  `nan` (all NaN), `nan_some` (NaN in one pixel), `inf`, `-inf`, `shape` (one row short),
  `bool` (the binarised map as a bool mask: accepted), `uint8` (0/255), `range` (2 x the
  map: values up to 2), `none` (None), `list` (a nested list), `raise` (RuntimeError), or
  `start_raise` (`start` raises).
* `target`: sample id of the broken instance; `*` breaks every instance.
* `at_click`: first click number (1-based) that returns the fault; default 1.
* `batched`: `true` exposes `open_instance` / `predict_batch` too (the engine's batched path).

Pausing is set by environment variables, not options, so that the resumed run is the same
command (options are part of a run's identity): `ISEG_FAULTS_PAUSE_AT_START=N` pauses in the
N-th `start()` of the process, writes the file `ISEG_FAULTS_PAUSE_MARKER` and sleeps, so that
a test can signal the process at a known point (nothing of that instance is journaled yet).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from shifted_reveal import ShiftedRevealPredictor  # noqa: E402

FAULTS = ("none", "nan", "nan_some", "inf", "-inf", "shape", "bool", "uint8", "range")
FAULTS += ("none_return", "list", "raise", "start_raise")


class FaultyPredictor:
    oracle = True  # the shifted-reveal fake inside reads sample.gt

    def __init__(
        self,
        fault: str = "none",
        target: str = "",
        at_click: int = 1,
    ) -> None:
        if str(fault) not in FAULTS:
            raise ValueError(f"fault={fault!r}: expected one of {', '.join(FAULTS)}")
        self.fault, self.target, self.at_click = str(fault), str(target), int(at_click)
        self.pause_at_start = int(os.environ.get("ISEG_FAULTS_PAUSE_AT_START", "0"))
        self.pause_marker = os.environ.get("ISEG_FAULTS_PAUSE_MARKER", "")
        self.clean = ShiftedRevealPredictor()
        self.starts = 0

    def _targeted(self, sample_id: str) -> bool:
        return self.target == "*" or sample_id == self.target

    def _maybe_pause(self) -> None:
        self.starts += 1
        if self.starts == self.pause_at_start:
            Path(self.pause_marker).write_text("paused\n")
            time.sleep(300)

    def _begin(self, sample) -> None:
        self._maybe_pause()
        if self.fault == "start_raise" and self._targeted(sample.id):
            raise RuntimeError(f"start failed on purpose for {sample.id}")

    def _break(self, prob: np.ndarray, sample_id: str, clicks) -> object:
        if not self._targeted(sample_id) or len(clicks) < self.at_click:
            return prob
        fault = self.fault
        if fault == "nan":
            return np.full_like(prob, np.nan)
        if fault == "nan_some":
            bad = prob.copy()
            bad[0, 0] = np.nan
            return bad
        if fault in ("inf", "-inf"):
            return np.full_like(prob, float(fault))
        if fault == "shape":
            return prob[:-1]
        if fault == "bool":
            return prob > 0.49
        if fault == "uint8":
            return (prob > 0.49).astype(np.uint8) * 255
        if fault == "range":
            return prob * 2.0
        if fault == "none_return":
            return None
        if fault == "list":
            return prob.tolist()
        if fault == "raise":
            raise RuntimeError(f"predict failed on purpose for {sample_id}")
        return prob

    # --- start / predict ------------------------------------------------------------------
    def start(self, sample) -> None:
        self._begin(sample)
        self.sample_id = sample.id
        self.clean.start(sample)

    def predict(self, clicks):
        return self._break(self.clean.predict(clicks), self.sample_id, clicks)


class FaultyBatchPredictor(FaultyPredictor):
    """The same faults through `open_instance` / `predict_batch`; each handle holds its own
    clean predictor, so instances sharing a call keep separate states."""

    def open_instance(self, sample):
        self._begin(sample)
        clean = ShiftedRevealPredictor()
        clean.start(sample)
        return (sample.id, clean)

    def predict_batch(self, requests):
        if self.fault == "raise":  # before any handle changes, as the interface requires
            for (sample_id, _), clicks in requests:
                self._break(np.zeros((1, 1)), sample_id, clicks)
        return [
            self._break(clean.predict(clicks), sample_id, clicks)
            for (sample_id, clean), clicks in requests
        ]


def make_predictor(batched: object = False, **options) -> FaultyPredictor:
    if str(batched).lower() in ("1", "true", "yes"):
        return FaultyBatchPredictor(**options)
    return FaultyPredictor(**options)
