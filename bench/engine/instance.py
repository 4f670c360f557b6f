"""The evaluation loop (`isegm/inference/evaluation.py:evaluate_sample`, PROTOCOL.md section 3).

One instance's evaluation is explicit state plus a step, so that a later engine can advance
many instances in lockstep and batch their network calls. By default every instance gets all
`max_clicks` clicks (the official `--iou-analysis` mode, target 1.01); NoC at any threshold is
the same as with early stopping, and one run yields every metric.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench import protocol
from bench.adapters import Predictor
from bench.sample import Click, Sample, SampleError, SampleRef
from bench.store import EntryRecord, InstanceRecord

ClickRule = Callable[[protocol.Errors, list[tuple[int, int]]], Click]

CLICK_RULES: dict[str, ClickRule] = {"official": protocol.next_click_from_errors}
"""Next-click rules by name; the name is recorded in the manifest."""


@dataclass(frozen=True)
class ProtocolSettings:
    max_clicks: int = 20
    pred_thr: float = protocol.PRED_THR
    stop_at_iou: float | None = None  # official early stop (float64 IoU >= value); None = never
    click_rule: str = "official"

    def to_json(self) -> dict[str, Any]:
        from bench.metrics import noc_thresholds

        out = asdict(self)
        target = 1.01 if self.stop_at_iou is None else self.stop_at_iou
        out["noc_thresholds"] = [float(t) for t in noc_thresholds(target)]
        return out


@dataclass
class InstanceState:
    """Clicker state of one instance: what the official `Clicker` plus loop keep."""

    target: protocol.Target
    errors: protocol.Errors
    clicks: list[Click] = field(default_factory=list)
    ious: list[np.float32] = field(default_factory=list)
    done: bool = False


def start_instance(gt: np.ndarray) -> InstanceState:
    target = protocol.Target.from_gt(gt)
    empty = np.zeros(gt.shape, dtype=bool)
    return InstanceState(target, protocol.errors(target, empty))


def propose_click(state: InstanceState, rule: ClickRule) -> Click:
    click = rule(state.errors, [(c.y, c.x) for c in state.clicks])
    state.clicks.append(click)
    return click


def observe_prediction(
    state: InstanceState, prob: np.ndarray, settings: ProtocolSettings
) -> np.ndarray:
    """Binarise, score and stop if asked; returns the binary prediction."""
    pred = protocol.binarize(np.asarray(prob), settings.pred_thr)
    if pred.shape != state.target.shape:
        raise ValueError(f"predictor returned a {pred.shape} map for a {state.target.shape} image")
    state.errors = protocol.errors(state.target, pred)
    value = protocol.iou_from_errors(state.target, state.errors)
    state.ious.append(np.float32(value))
    stop = settings.stop_at_iou is not None and value >= settings.stop_at_iou
    state.done = stop or len(state.clicks) >= settings.max_clicks
    return pred


def evaluate_instance(
    predictor: Predictor,
    sample: Sample,
    settings: ProtocolSettings,
    keep_masks: bool = False,
    load_s: float = 0.0,
) -> tuple[InstanceRecord, list[np.ndarray]]:
    """Run the click loop on one instance; model and harness time are kept apart per click."""
    rule = CLICK_RULES[settings.click_rule]
    record = InstanceRecord(sample.id)
    masks: list[np.ndarray] = []
    tic = time.perf_counter()
    state = start_instance(sample.gt)
    harness = time.perf_counter() - tic + load_s
    tic = time.perf_counter()
    predictor.start(sample)
    model = time.perf_counter() - tic
    while not state.done:
        tic = time.perf_counter()
        propose_click(state, rule)
        clicks = list(state.clicks)
        harness += time.perf_counter() - tic
        tic = time.perf_counter()
        prob = predictor.predict(clicks)
        model += time.perf_counter() - tic
        tic = time.perf_counter()
        pred = observe_prediction(state, prob, settings)
        if keep_masks:
            masks.append(pred)
        harness += time.perf_counter() - tic
        record.model_s.append(model)
        record.harness_s.append(harness)
        model = harness = 0.0
    record.clicks = [(c.y, c.x, c.positive) for c in state.clicks]
    record.ious = state.ious
    return record, masks


def evaluate_entry(
    predictor: Predictor,
    ref: SampleRef,
    settings: ProtocolSettings,
    on_instance: Callable[[InstanceRecord, list[np.ndarray]], None] | None = None,
    keep_masks: bool = False,
) -> EntryRecord:
    """Evaluate every instance of one entry; a bad file or a failing model becomes an error."""
    entry = EntryRecord(ref.dataset, ref.id)
    tic = time.perf_counter()
    try:
        samples = list(ref.load())
    except SampleError as exc:
        entry.errors.append({"path": exc.path, "problem": exc.problem})
        return entry
    except Exception as exc:  # noqa: BLE001 - a loader bug must not end the run
        path = str(ref.files[0]) if ref.files else ref.id
        entry.errors.append({"path": path, "problem": f"{type(exc).__name__}: {exc}"})
        return entry
    load_s = (time.perf_counter() - tic) / max(len(samples), 1)
    for sample in samples:
        try:
            record, masks = evaluate_instance(predictor, sample, settings, keep_masks, load_s)
        except Exception as exc:  # noqa: BLE001 - one failing instance keeps the others
            problem = f"{sample.id}: model failed: {type(exc).__name__}: {exc}"
            entry.errors.append({"path": str(sample.image_path or ref.id), "problem": problem})
            continue
        entry.instances.append(record)
        if on_instance is not None:
            on_instance(record, masks)
    return entry
