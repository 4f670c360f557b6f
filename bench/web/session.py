"""The predictor behind the page, driven so that a shown mask is what `bench run` computes.

Predictors are stateful: `start` per image, then `predict` per click, and the networks feed
their previous output back in (`adapters/common/eval_predictor.py`). So one predictor serves
one instance at a time, on one dedicated thread: requests are serialised, and thread-local
state (OpenCV's RNG that GrabCut's k-means draws from, torch's per-thread settings) is the
same for every call. When a request's clicks do not extend the sequence the predictor last
saw (another image, an undo, a reloaded page), the predictor is started again and fed every
earlier prefix first, exactly as `bench run` calls it, so the mask for a click sequence does
not depend on the path the person took to it.

Outputs are checked as a run checks them (`bench.engine.instance.check_probability`), and
IoU follows the protocol (`bench.protocol`: threshold 0.49 with a strict `>`, ignore pixels
excluded, float64 then stored as float32), so the page shows the number a run stores.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench import protocol
from bench.engine.instance import PredictionError, check_probability
from bench.sample import Click, Sample, predictor_input

log = logging.getLogger("bench")


class ModelError(RuntimeError):
    """The predictor raised or returned something that is not a probability map."""


@dataclass(frozen=True, eq=False)
class Prediction:
    mask: np.ndarray  # H x W bool, the binarised prediction
    iou: float | None  # float32 IoU as stored by a run; None without ground truth
    model_s: float  # predict() of the last click
    catchup_s: float  # start() and earlier prefixes replayed before it (0 when none)


def instance_iou(gt: np.ndarray, mask: np.ndarray) -> float | None:
    """The stored float32 IoU as a Python float, or None where it is undefined (no object)."""
    value = float(protocol.iou(gt, mask))
    return None if math.isnan(value) else value


class ModelSession:
    """One predictor, one thread, one instance at a time (see the module docstring)."""

    def __init__(self, predictor: Any, name: str):
        self.predictor = predictor
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-demo-model")
        self._key: Hashable | None = None
        self._seen: list[Click] = []

    async def predict(
        self, key: Hashable, sample: Sample, clicks: Sequence[Click], has_gt: bool
    ) -> Prediction:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._predict, key, sample, list(clicks), has_gt
        )

    def _call(self, clicks: list[Click], shape: tuple[int, int]) -> np.ndarray:
        # The engine's own check: the page refuses exactly the outputs a run refuses.
        try:
            return check_probability(self.predictor.predict(list(clicks)), shape)
        except PredictionError as exc:
            raise ModelError(str(exc)) from None

    def _predict(
        self, key: Hashable, sample: Sample, clicks: list[Click], has_gt: bool
    ) -> Prediction:
        shape = sample.image.shape[:2]
        try:
            tic = time.perf_counter()
            if key != self._key or clicks[:-1] != self._seen:
                self._key = None  # stays unset if start or a catch-up call fails
                self.predictor.start(predictor_input(sample, self.predictor))
                for n in range(1, len(clicks)):
                    self._call(clicks[:n], shape)
                self._key = key
            catchup_s = time.perf_counter() - tic
            tic = time.perf_counter()
            prob = self._call(clicks, shape)
            model_s = time.perf_counter() - tic
        except Exception as exc:
            self._key = None
            log.exception("model %s failed on %s at click %d", self.name, sample.id, len(clicks))
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"{type(exc).__name__}: {exc}") from exc
        self._seen = list(clicks)
        mask = protocol.binarize(prob)
        iou = instance_iou(sample.gt, mask) if has_gt else None
        return Prediction(mask, iou, model_s, catchup_s)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
