"""Several instances' network forwards side by side on the CPU, one intra-op thread each.

Why not one large batch on a CPU: a forward at batch 2 (one instance and its flip) is already
the cheapest per image, and larger batches cost more per image because the activations leave
the caches (ViT-xTiny at 672 x 672, one thread: 0.50 CPU s per image at batch 2, 0.58 at 16,
0.71 at 32). What a batch-1 loop does waste is the second core: torch's intra-op threads meet at
an OpenMP barrier after every operator, which idles a core, and stalls badly when other
processes share the cores. So a batched call on the CPU runs each instance's forward on its
own, `workers` at a time on worker threads with one intra-op thread each.

Measured on the 2-core development machine, the network alone, 8 images (8 batch-2 forwards):
with other processes using about 1.7 cores, ViT-xTiny at 672 x 672 took 4.97-5.54 s as a
batch-1 loop on 2 threads, 4.77-5.13 s side by side on 2 workers, 6.4-6.6 s as one batch-16
forward and 5.5-6.0 s as two batch-8 forwards on 2 workers; with about 3.4-4.1 cores' worth of
other load, HRNet-18s at 480 x 854 took 16.8-69.5 s as a batch-1 loop and 12.5-23.2 s side by
side.

Values: one intra-op thread splits some reductions differently from two, so outputs may differ
from the batch-1 path's in the last bits, as any change of thread count does (golden/README.md
section 3: 8.3e-6 on xTiny logits between 1 and 2 threads; 2.6e-6 measured here on the maps).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

Job = TypeVar("Job")
Result = TypeVar("Result")


def plan_forwards(shapes: Sequence[tuple[int, ...]], workers: int) -> list[list[int]]:
    """Indices of the inputs each forward takes: with one worker, one forward per input shape
    (inputs in order within it, forwards in order of first appearance); with several (the CPU
    path), one forward per input (see the module docstring)."""
    if workers > 1:
        return [[i] for i in range(len(shapes))]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, shape in enumerate(shapes):
        groups.setdefault(tuple(shape), []).append(i)
    return list(groups.values())


class SingleThreadedPool:
    """A few worker threads that run jobs with torch's intra-op threads set to one.

    torch's thread count is process-wide state: `map` lowers it to one for the duration of the
    call (worker threads take it when they start their first operator) and restores the caller's
    value afterwards, also when a job raises. Gradient mode is per thread, so each job runs
    under its own `torch.no_grad()`.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="forward")

    def map(self, function: Callable[[Job], Result], jobs: Sequence[Job]) -> list[Result]:
        """Results in job order; the first failing job's error is raised after all finished."""

        def run(job: Job) -> Result:
            with torch.no_grad():
                return function(job)

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            futures = [self._pool.submit(run, job) for job in jobs]
            errors = [f.exception() for f in futures]
            first = next((e for e in errors if e is not None), None)
            if first is not None:
                raise first
            return [f.result() for f in futures]
        finally:
            torch.set_num_threads(threads)
