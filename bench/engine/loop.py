"""The continuously batched evaluation loop of one dataset.

Up to `batch_size` instances are in flight. Each step proposes the next click of every live
instance (harness), makes one `predict_batch` call for all of them (model), then scores each
prediction (harness). An instance that ends (its last click, the early stop, or a click
model with no more clicks) hands its slot to the next instance at once, so the batch does not
drain at the tail of a dataset while instances remain. Entries are decoded ahead on a
background thread (`prefetch`). An instance is opened (`open_instance`/`start`) by the model
call that carries its first click, so every predictor call is made from one thread. The
predictor receives the sample's `SampleView` (no ground truth) unless it declares
`oracle = True` (`bench.sample.predictor_input`).

On a GPU the network is so fast that the CPU work around it decides the speed, so two things
keep it off the critical path: the per-instance click rule and scoring of a step run on
`harness_threads` threads, and with `pipeline` two cohorts of up to `batch_size` instances take
turns, one in the network (on a model thread) while the other is scored and given its next
clicks (so up to 2 x `batch_size` instances are in flight, `batch_size` per network call).

Every instance keeps its own protocol state and click-model generator, and the batched
predictor keeps its own per-instance state in a handle, so the clicks and IoUs do not depend
on the batch size or on which instances share a call. An entry (one image with all its
instances) is handed to `on_entry` when its last instance ends, in whatever order entries end;
the store sorts them back into official order. A click model with `objects_in_order`
(`bench.clicks`: RClicks' per-image generator) gets an entry's instances one after another:
the next one is queued (ahead of other entries) only when the previous one has ended, while
other entries fill the rest of the batch.

Predictors without the batched interface (`bench.adapters.supports_batch`) run one instance at
a time through `start`/`predict`, exactly as before.
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from bench.adapters import supports_batch
from bench.clicks import ClickModel, objects_in_order
from bench.engine.instance import (
    InstanceState,
    ProtocolSettings,
    observe_prediction,
    propose_click,
    start_instance,
)
from bench.engine.prefetch import Loaded, prefetch
from bench.sample import (
    GroundTruthHiddenError,
    Sample,
    SampleError,
    SampleRef,
    predictor_input,
)
from bench.store import EntryRecord, InstanceRecord

T = TypeVar("T")
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
    # Instances held back until the previous one ends (a click model with `objects_in_order`).
    waiting: deque[tuple[int, Sample, InstanceState]] = field(default_factory=deque)


@dataclass
class _Live:
    entry: _Entry
    slot: int
    sample: Sample
    state: InstanceState
    record: InstanceRecord
    handle: Any = None
    opened: bool = False
    harness_s: float = 0.0
    masks: list[np.ndarray] = field(default_factory=list)


def _load_entry(
    ref: SampleRef, dataset: str, seed: int
) -> tuple[list[Sample], list[InstanceState]]:
    samples = list(ref.load())
    shared: dict[Any, Any] = {}  # ClickContext.image_state of this entry's instances
    states = [
        start_instance(s.gt, dataset, s.id, seed, s.image, s.init_mask, shared) for s in samples
    ]
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


def _instance_error(
    live: _Live, stage: str, exc: BaseException, with_traceback: bool = False
) -> dict[str, str]:
    """{path, problem}; `problem` names the instance, the stage and, for a click's model call
    or proposal, the click number (1-based). With `with_traceback`, the exception's formatted
    traceback too, so a plugin author sees where it failed (`--traceback`)."""
    path = str(live.sample.image_path or live.entry.record.ref_id)
    click = len(live.state.clicks) + (stage == "click model failed")
    where = stage if stage == "model start failed" else f"{stage} at click {click}"
    error = {"path": path, "problem": f"{live.sample.id}: {where}: {type(exc).__name__}: {exc}"}
    if with_traceback:
        error["traceback"] = "".join(traceback.format_exception(exc)).rstrip()
    return error


@dataclass
class _Outcome:
    """What the model side returns for one instance of a call: a map, or the error."""

    live: _Live
    prob: Any = None
    model_s: float = 0.0
    error: dict[str, str] | None = None


def _done_future(value: T) -> Future[T]:
    future: Future[T] = Future()
    future.set_result(value)
    return future


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
        harness_threads: int,
        pipeline: bool,
        tracebacks: bool = False,
    ) -> None:
        self.tracebacks = tracebacks
        self.predictor = predictor
        self.dataset = dataset
        self.settings = settings
        self.click_model = click_model
        self.in_order = objects_in_order(click_model)
        self.batched = supports_batch(predictor)
        self.capacity = max(1, batch_size) if self.batched else 1
        self.pipeline = pipeline and self.batched
        self.harness_threads = max(1, harness_threads)
        self.on_entry = on_entry
        self.on_instance = on_instance
        self.keep_masks = keep_masks
        self.queue: deque[tuple[_Entry, int, Sample, InstanceState]] = deque()
        self._exhausted = False  # the prefetch iterator has no more entries
        self._harness_pool: ThreadPoolExecutor | None = None
        self._model_thread: ThreadPoolExecutor | None = None

    # --- entries and instances ------------------------------------------------------------
    def _error(self, live: _Live, stage: str, exc: BaseException) -> dict[str, str]:
        return _instance_error(live, stage, exc, self.tracebacks)

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
            if self.in_order and slot > 0:
                entry.waiting.append((slot, sample, state))
            else:
                self.queue.append((entry, slot, sample, state))

    def _finish(self, live: _Live, error: dict[str, str] | None = None) -> None:
        entry = live.entry
        if error is not None:
            entry.errors[live.slot].append(error)
        else:
            live.record.clicks = [(c.y, c.x, c.positive) for c in live.state.clicks]
            live.record.ious = live.state.ious
            live.record.bious = live.state.bious or None
            live.record.gt_area = live.state.target.n_object
            entry.results[live.slot] = live.record
            if self.on_instance is not None:
                self.on_instance(live.record, live.masks)
        live.state.done = True
        entry.remaining -= 1
        if entry.waiting:  # the next object of the image, before any other entry's
            self.queue.appendleft((entry, *entry.waiting.popleft()))
        if entry.remaining == 0:
            entry.record.instances = [r for r in entry.results if r is not None]
            entry.record.errors += [e for errs in entry.errors for e in errs]
            self.on_entry(entry.record)

    # --- the model side (runs on the model thread when pipelined) ---------------------------
    def _open(self, live: _Live) -> None:
        given = predictor_input(live.sample, self.predictor)  # no `gt` unless an oracle
        tic = time.perf_counter()
        if self.batched:
            live.handle = self.predictor.open_instance(given)
        else:
            self.predictor.start(given)
        live.record.start_s = time.perf_counter() - tic
        live.opened = True

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

    def _model_step(self, asking: list[_Live]) -> list[_Outcome]:
        """Open the instances new to the model, then one call for all of them. A failing call
        is retried item by item, so only the instance that fails is lost (a failed
        `predict_batch` changes no handle). Touches no store state: errors are returned.
        A non-oracle predictor reading the ground truth stops the run: that is a bug of the
        method, the same on every instance, not a failure of one."""
        outcomes: list[_Outcome] = []
        ready: list[_Live] = []
        for live in asking:
            if not live.opened:
                try:
                    self._open(live)
                except GroundTruthHiddenError:
                    raise
                except Exception as exc:  # noqa: BLE001 - one failing instance keeps the others
                    outcomes.append(
                        _Outcome(live, error=self._error(live, "model start failed", exc))
                    )
                    continue
            ready.append(live)
        if not ready:
            return outcomes
        try:
            probs, share = self._call(ready)
            return outcomes + [_Outcome(live, p, share) for live, p in zip(ready, probs)]
        except GroundTruthHiddenError:
            raise
        except Exception as exc:  # noqa: BLE001 - isolated below
            if len(ready) == 1:
                error = self._error(ready[0], "model failed", exc)
                return outcomes + [_Outcome(ready[0], error=error)]
        for live in ready:
            try:
                probs, share = self._call([live])
            except GroundTruthHiddenError:
                raise
            except Exception as exc:  # noqa: BLE001 - one failing instance keeps the others
                outcomes.append(_Outcome(live, error=self._error(live, "model failed", exc)))
                continue
            outcomes.append(_Outcome(live, probs[0], share))
        return outcomes

    def _submit(self, asking: list[_Live]) -> Future[list[_Outcome]]:
        if self._model_thread is None:
            return _done_future(self._model_step(asking))
        return self._model_thread.submit(self._model_step, asking)

    # --- the harness side (main thread, per-instance work on the harness pool) --------------
    def _each(self, function: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """`function(item)` for every item, in item order: (value, None) or (None, exception),
        each timed. Instances share nothing, so running them side by side changes no value."""

        def timed(item: Any) -> tuple[Any, BaseException | None, float]:
            tic = time.perf_counter()
            try:
                return function(item), None, time.perf_counter() - tic
            except Exception as exc:  # noqa: BLE001 - handed back to the caller
                return None, exc, time.perf_counter() - tic

        if self._harness_pool is None or len(items) < 2:
            return [timed(item) for item in items]
        return list(self._harness_pool.map(timed, items))

    def _propose(self, cohort: list[_Live]) -> list[_Live]:
        """Next click of each instance; returns those that now ask the model."""
        asking = []
        results = self._each(lambda inst: propose_click(inst.state, self.click_model), cohort)
        for inst, (click, exc, seconds) in zip(cohort, results):
            if exc is not None:  # e.g. a recorded click off the image
                self._finish(inst, self._error(inst, "click model failed", exc))
                continue
            inst.harness_s += seconds
            if click is None:
                self._finish(inst)
            else:
                asking.append(inst)
        return asking

    def _observe(self, outcomes: list[_Outcome]) -> None:
        scored = [o for o in outcomes if o.error is None]
        for outcome in outcomes:
            if outcome.error is not None:
                self._finish(outcome.live, outcome.error)
        results = self._each(
            lambda o: observe_prediction(o.live.state, o.prob, self.settings), scored
        )
        for outcome, (pred, exc, seconds) in zip(scored, results):
            inst = outcome.live
            if exc is not None:  # a NaN map fails its instance only
                self._finish(inst, self._error(inst, "model output refused", exc))
                continue
            if self.keep_masks:
                inst.masks.append(pred)
            inst.harness_s += seconds
            inst.record.model_s.append(outcome.model_s)
            inst.record.harness_s.append(inst.harness_s)
            inst.harness_s = 0.0
            if inst.state.done:
                self._finish(inst)

    # --- the loop ---------------------------------------------------------------------------
    def _top_up(self, cohort: list[_Live], loaded: Iterator[Loaded]) -> None:
        while len(cohort) < self.capacity:
            while not self.queue and not self._exhausted:
                nxt = next(loaded, None)
                if nxt is None:
                    self._exhausted = True
                else:
                    self._enqueue(nxt)
            if not self.queue:
                return
            entry, slot, sample, state = self.queue.popleft()
            live = _Live(entry, slot, sample, state, InstanceRecord(sample.id))
            live.harness_s = entry.load_s
            cohort.append(live)

    def run(self, items: Sequence[tuple[int, SampleRef]]) -> None:
        """One cohort of up to `capacity` instances; pipelined, two cohorts take turns: while
        the model thread runs one cohort's call, the main thread scores the other's last
        maps and proposes its next clicks. Each instance still goes propose -> model ->
        observe in order, so its clicks and IoUs are those of the one-cohort loop."""
        seed = self.settings.seed
        cohorts: list[list[_Live]] = [[] for _ in range(2 if self.pipeline else 1)]
        pending: list[Future[list[_Outcome]] | None] = [None] * len(cohorts)
        with ExitStack() as stack:
            if self.harness_threads > 1 and self.capacity > 1:
                self._harness_pool = stack.enter_context(
                    ThreadPoolExecutor(self.harness_threads, thread_name_prefix="bench-harness")
                )
            if self.pipeline:
                self._model_thread = stack.enter_context(
                    ThreadPoolExecutor(1, thread_name_prefix="bench-model")
                )
            loaded = prefetch(
                items,
                lambda ref: _load_entry(ref, self.dataset, seed),
                lookahead=self.capacity * len(cohorts) + 1,
            )
            k = 0
            while True:
                future = pending[k]
                if future is not None:
                    pending[k] = None
                    self._observe(future.result())
                cohort = [i for i in cohorts[k] if not i.state.done]
                self._top_up(cohort, loaded)
                cohorts[k] = asking = self._propose(cohort)  # the rest of the cohort ended
                if asking:
                    pending[k] = self._submit(asking)
                elif not self.queue and self._exhausted and all(f is None for f in pending):
                    return  # a cohort with live instances always has a call pending
                k = (k + 1) % len(cohorts)


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
    harness_threads: int = 1,
    pipeline: bool = False,
    tracebacks: bool = False,
) -> None:
    """Evaluate `items` ((listing index, entry) pairs) of one dataset; results go to callbacks.

    A bad file, a failing model call or a refused output becomes an error of its entry or
    instance; every other result is kept. `harness_threads` > 1 runs the per-instance click
    rule and scoring of a step side by side (OpenCV and NumPy release the GIL); `pipeline`
    overlaps one cohort's model call with the other cohort's harness work (worth it when the
    network runs on a device that leaves the CPU free, as a GPU does). Neither changes a value:
    the store sees the same entries, possibly in another order, which it sorts back.
    `tracebacks` adds each failing instance's traceback to its error (`--traceback`).
    """
    engine = _Engine(
        predictor,
        dataset,
        settings,
        click_model,
        batch_size,
        on_entry,
        on_instance,
        keep_masks,
        harness_threads,
        pipeline,
        tracebacks,
    )
    engine.run(items)
