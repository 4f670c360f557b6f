"""Running the instances of one `predict_batch` call side by side on a few threads.

The classical baselines have no network to batch; their time goes to OpenCV (`cv2.grabCut`) and
SciPy's sparse direct solver (under scikit-image's random walker), both of which release the GIL,
so a handful of threads keeps several CPU cores busy on different instances.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_WORKERS = 4


def map_concurrently(function: Callable[[Item], Result], items: Sequence[Item]) -> list[Result]:
    """`[function(item) for item in items]`, items on up to MAX_WORKERS threads (at most the CPU
    count); results in input order. If any item raises, the first failing item's error is
    raised once every item has finished, so no work is left running behind the caller."""
    workers = min(MAX_WORKERS, len(items), os.cpu_count() or 1)
    if workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(function, item) for item in items]
        return [future.result() for future in futures]
