"""A batched predictor for engine tests: the golden shifted-reveal fake, one per handle.

`open_instance` gives every instance in flight its own `ShiftedRevealPredictor`, so the
clicks must equal the golden ones whatever the batch. Options: `log=PATH` appends the size of
every `predict_batch` call (to see continuous batching), `fail_on=SAMPLE_ID` makes every call
that includes that instance raise (before any state changes, as the protocol requires), and
`nan_on=SAMPLE_ID` returns an all-NaN map for that instance, `delay=SECONDS` sleeps in every
call (a slow model, so that a test can kill a run mid-batch), `fail_open=SAMPLE_ID` makes
`open_instance` of that instance raise, and `thread_log=PATH` appends the name of the thread
that makes every `open_instance` and `predict_batch` call.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from shifted_reveal import ShiftedRevealPredictor  # noqa: E402


class BatchProbe:
    oracle = True  # the shifted-reveal fakes inside read sample.gt

    def __init__(
        self,
        log: str = "",
        fail_on: str = "",
        nan_on: str = "",
        delay: float = 0.0,
        fail_open: str = "",
        thread_log: str = "",
    ):
        self.log = log
        self.fail_open = str(fail_open)
        self.thread_log = thread_log
        self.delay = float(delay)
        self.fail_on = str(fail_on)
        self.nan_on = str(nan_on)
        self.single = ShiftedRevealPredictor()

    def start(self, sample) -> None:
        self.single.start(sample)

    def predict(self, clicks) -> np.ndarray:
        return self.single.predict(clicks)

    def _record_thread(self) -> None:
        if self.thread_log:
            with open(self.thread_log, "a") as fh:
                fh.write(f"{threading.current_thread().name}\n")

    def open_instance(self, sample):
        self._record_thread()
        if str(sample.id) == self.fail_open:
            raise RuntimeError(f"probe open failure on {self.fail_open}")
        inner = ShiftedRevealPredictor()
        inner.start(sample)
        return str(sample.id), inner

    def predict_batch(self, requests):
        self._record_thread()
        if self.log:
            with open(self.log, "a") as fh:
                fh.write(f"{len(requests)}\n")
        time.sleep(self.delay)
        ids = [sid for (sid, _), _ in requests]
        if self.fail_on in ids:
            raise RuntimeError(f"probe failure on {self.fail_on}")
        out = []
        for (sid, inner), clicks in requests:
            prob = inner.predict(clicks)
            out.append(np.full(prob.shape, np.nan) if sid == self.nan_on else prob)
        return out


def make_predictor(**options) -> BatchProbe:
    return BatchProbe(**options)
