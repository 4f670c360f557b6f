"""The continuously batched evaluation loop of one dataset.

Up to `batch_size` instances are in flight. Each step proposes the next click of every live
instance (harness), makes one `predict_batch` call for all of them (model), then scores each
prediction (harness). An instance that ends (its last click, the early stop, or a click
model with no more clicks) hands its slot to the next instance at once, so the batch does not
drain at the tail of a dataset while instances remain. Entries are decoded ahead on a
background thread (`prefetch`).

Every instance keeps its own protocol state and click-model generator, and the batched
predictor keeps its own per-instance state in a handle, so the clicks and IoUs do not depend
on the batch size or on which instances share a call. An entry (one image with all its
instances) is handed to `on_entry` when its last instance ends, in whatever order entries end;
the store sorts them back into official order.

Predictors without the batched interface (`bench.adapters.supports_batch`) run one instance at
a time through `start`/`predict`, exactly as before.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.adapters import supports_batch
from bench.clicks import ClickModel
from bench.engine.instance import (
    InstanceState,
    ProtocolSettings,
    observe_prediction,
    propose_click,
    start_instance,
)
from bench.engine.prefetch import Loaded, prefetch
from bench.sample import Sample, SampleError, SampleRef
from bench.store import EntryRecord, InstanceRecord

OnEntry = Callable[[EntryRecord], None]
OnInstance = Callable[[InstanceRecord, list[np.ndarray]], None]


@dataclass
class _Entry:
    """An entry whose instances are still in flight."""

    record: EntryRecord
    results: list[InstanceRecord | None]
    errors: list[list[dict[str, str]]]
    remaining: int
    load_s: float  # decoding time per instance, charged to the harness at its first click


@dataclass
class _Live:
    entry: _Entry
    slot: int
    sample: Sample
    state: InstanceState
    record: InstanceRecord
    handle: Any = None
    harness_s: float = 0.0
    masks: list[np.ndarray] = field(default_factory=list)


def _load_entry(
    ref: SampleRef, dataset: str, seed: int
) -> tuple[list[Sample], list[InstanceState]]:
    samples = list(ref.load())
    states = [start_instance(s.gt, dataset, s.id, seed) for s in samples]
    return samples, states


def _entry_error(ref: SampleRef, exc: BaseException) -> dict[str, str]:
    if isinstance(exc, SampleError):
        return {"path": exc.path, "problem": exc.problem}
    path = str(ref.files[0]) if ref.files else ref.id
    return {"path": path, "problem": f"{type(exc).__name__}: {exc}"}


def _warning_item(sample: Sample, text: str, ref: SampleRef) -> dict[str, str]:
    """A `Sample.warnings` text ("path: what", as `bench datasets verify` prints it) as the
    journal's {path, problem}, so the log and manifest repeat verify's words exactly."""
    for path in (sample.mask_path, sample.image_path):
        if path is not None and text.startswith(f"{path}: "):
            return {"path": str(path), "problem": text[len(f"{path}: ") :]}
    return {"path": str(sample.mask_path or sample.image_path or ref.id), "problem": text}


def _instance_error(live: _Live, stage: str, exc: BaseException) -> dict[str, str]:
    path = str(live.sample.image_path or live.entry.record.ref_id)
    return {"path": path, "problem": f"{live.sample.id}: {stage}: {type(exc).__name__}: {exc}"}


class _Engine:
    def __init__(
        self,
        predictor: Any,
        dataset: str,
        settings: ProtocolSettings,
        click_model: ClickModel,
        batch_size: int,
        on_entry: OnEntry,
        on_instance: OnInstance | None,
        keep_masks: bool,
    ) -> None:
        self.predictor = predictor
        self.dataset = dataset
        self.settings = settings
        self.click_model = click_model
        self.batched = supports_batch(predictor)
        self.capacity = max(1, batch_size) if self.batched else 1
        self.on_entry = on_entry
        self.on_instance = on_instance
        self.keep_masks = keep_masks
        self.queue: deque[tuple[_Entry, int, Sample, InstanceState]] = deque()

    # --- entries and instances ------------------------------------------------------------
    def _enqueue(self, loaded: Loaded) -> None:
        record = EntryRecord(self.dataset, loaded.ref.id, loaded.index)
        if loaded.error is not None:
            record.errors.append(_entry_error(loaded.ref, loaded.error))
            self.on_entry(record)
            return
        samples, states = loaded.value
        for sample in samples:
            for text in getattr(sample, "warnings", ()) or ():
                item = _warning_item(sample, text, loaded.ref)
                if item not in record.warnings:  # one per file, not per instance of an image
                    record.warnings.append(item)
        if not samples:
            self.on_entry(record)
            return
        n = len(samples)
        entry = _Entry(record, [None] * n, [[] for _ in range(n)], n, loaded.seconds / n)
        for slot, (sample, state) in enumerate(zip(samples, states)):
            self.queue.append((entry, slot, sample, state))

    def _open(self, entry: _Entry, slot: int, sample: Sample, state: InstanceState) -> _Live:
        live = _Live(entry, slot, sample, state, InstanceRecord(sample.id))
        live.harness_s = entry.load_s
        tic = time.perf_counter()
        if self.batched:
            live.handle = self.predictor.open_instance(sample)
        else:
            self.predictor.start(sample)
        live.record.start_s = time.perf_counter() - tic
        return live

    def _finish(self, live: _Live, error: dict[str, str] | None = None) -> None:
        entry = live.entry
        if error is not None:
            entry.errors[live.slot].append(error)
        else:
            live.record.clicks = [(c.y, c.x, c.positive) for c in live.state.clicks]
            live.record.ious = live.state.ious
            entry.results[live.slot] = live.record
            if self.on_instance is not None:
                self.on_instance(live.record, live.masks)
        live.state.done = True
        entry.remaining -= 1
        if entry.remaining == 0:
            entry.record.instances = [r for r in entry.results if r is not None]
            entry.record.errors += [e for errs in entry.errors for e in errs]
            self.on_entry(entry.record)

    # --- the model call ---------------------------------------------------------------------
    def _call(self, items: Sequence[_Live]) -> tuple[list[Any], float]:
        tic = time.perf_counter()
        if self.batched:
            probs = self.predictor.predict_batch([(i.handle, list(i.state.clicks)) for i in items])
            if not isinstance(probs, (list, tuple)) or len(probs) != len(items):
                raise TypeError(
                    f"predict_batch returned {type(probs).__name__} of "
                    f"{len(probs) if hasattr(probs, '__len__') else '?'} maps for "
                    f"{len(items)} instances"
                )
        else:
            probs = [self.predictor.predict(list(items[0].state.clicks))]
        return list(probs), (time.perf_counter() - tic) / len(items)

    def _predict(self, items: list[_Live]) -> list[tuple[_Live, Any, float]]:
        """Model outputs per instance; a failing call is retried item by item, so only the
        instance that fails is lost (a failed `predict_batch` changes no handle)."""
        try:
            probs, share = self._call(items)
            return [(live, prob, share) for live, prob in zip(items, probs)]
        except Exception as exc:  # noqa: BLE001 - isolated below
            if len(items) == 1:
                self._finish(items[0], _instance_error(items[0], "model failed", exc))
                return []
        out = []
        for live in items:
            try:
                probs, share = self._call([live])
            except Exception as exc:  # noqa: BLE001 - one failing instance keeps the others
                self._finish(live, _instance_error(live, "model failed", exc))
                continue
            out.append((live, probs[0], share))
        return out

    # --- the loop ---------------------------------------------------------------------------
    def run(self, items: Sequence[tuple[int, SampleRef]]) -> None:
        seed = self.settings.seed
        loaded = prefetch(
            items, lambda ref: _load_entry(ref, self.dataset, seed), lookahead=self.capacity + 1
        )
        live: list[_Live] = []
        exhausted = False
        while True:
            while len(live) < self.capacity:
                while not self.queue and not exhausted:
                    nxt = next(loaded, None)
                    if nxt is None:
                        exhausted = True
                    else:
                        self._enqueue(nxt)
                if not self.queue:
                    break
                entry, slot, sample, state = self.queue.popleft()
                try:
                    live.append(self._open(entry, slot, sample, state))
                except Exception as exc:  # noqa: BLE001 - one failing instance keeps the others
                    failed = _Live(entry, slot, sample, state, InstanceRecord(sample.id))
                    self._finish(failed, _instance_error(failed, "model start failed", exc))
            if not live:
                return
            self._step(live)
            live = [i for i in live if not i.state.done]

    def _step(self, live: list[_Live]) -> None:
        asking = []
        for inst in live:
            tic = time.perf_counter()
            try:
                click = propose_click(inst.state, self.click_model)
            except Exception as exc:  # noqa: BLE001 - e.g. a recorded click off the image
                self._finish(inst, _instance_error(inst, "click model failed", exc))
                continue
            inst.harness_s += time.perf_counter() - tic
            if click is None:
                self._finish(inst)
            else:
                asking.append(inst)
        if not asking:
            return
        for inst, prob, model_s in self._predict(asking):
            tic = time.perf_counter()
            try:
                pred = observe_prediction(inst.state, prob, self.settings)
            except Exception as exc:  # noqa: BLE001 - a NaN map fails its instance only
                self._finish(inst, _instance_error(inst, "model output refused", exc))
                continue
            if self.keep_masks:
                inst.masks.append(pred)
            inst.harness_s += time.perf_counter() - tic
            inst.record.model_s.append(model_s)
            inst.record.harness_s.append(inst.harness_s)
            inst.harness_s = 0.0
            if inst.state.done:
                self._finish(inst)


def evaluate_dataset(
    predictor: Any,
    dataset: str,
    items: Sequence[tuple[int, SampleRef]],
    settings: ProtocolSettings,
    click_model: ClickModel,
    on_entry: OnEntry,
    *,
    batch_size: int = 1,
    on_instance: OnInstance | None = None,
    keep_masks: bool = False,
) -> None:
    """Evaluate `items` ((listing index, entry) pairs) of one dataset; results go to callbacks.

    A bad file, a failing model call or a refused output becomes an error of its entry or
    instance; every other result is kept.
    """
    engine = _Engine(
        predictor, dataset, settings, click_model, batch_size, on_entry, on_instance, keep_masks
    )
    engine.run(items)
