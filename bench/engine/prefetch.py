"""Decode dataset entries ahead of the engine on a background thread.

JPEG/PNG decoding (OpenCV releases the GIL) and the harness's per-instance set-up (the
ground truth's object / background masks) then overlap with the network calls, so a GPU does
not wait for the disk. The look-ahead is bounded, so memory stays flat on SBD or COCO.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from bench.sample import SampleRef

T = TypeVar("T")


@dataclass(frozen=True)
class Loaded(Generic[T]):
    """What `prepare(ref)` returned for one listed entry (or the error it raised)."""

    index: int
    ref: SampleRef
    value: T | None
    error: BaseException | None
    seconds: float


def _timed(prepare: Callable[[SampleRef], T], index: int, ref: SampleRef) -> Loaded[T]:
    tic = time.perf_counter()
    try:
        value = prepare(ref)
    except Exception as exc:  # noqa: BLE001 - reported per entry by the engine
        return Loaded(index, ref, None, exc, time.perf_counter() - tic)
    return Loaded(index, ref, value, None, time.perf_counter() - tic)


def prefetch(
    items: Iterable[tuple[int, SampleRef]],
    prepare: Callable[[SampleRef], T],
    lookahead: int = 4,
) -> Iterator[Loaded[T]]:
    """`prepare(ref)` for each (index, ref), in order, up to `lookahead` entries in advance."""
    source = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-prefetch") as pool:
        pending: deque[Future[Loaded[T]]] = deque()
        try:
            while True:
                while len(pending) < max(lookahead, 1):
                    nxt = next(source, None)
                    if nxt is None:
                        break
                    pending.append(pool.submit(_timed, prepare, *nxt))
                if not pending:
                    return
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
