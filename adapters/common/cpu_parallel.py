"""Several network forwards side by side on the CPU, each on one intra-op thread.

Why: a click network's forward at batch 2 (one instance and its flip) keeps two CPU cores only
partly busy with torch's intra-op threads (OpenMP barriers after every operator; far worse when
other processes share the cores), and one large batch is no cheaper per image on a CPU (measured
on ViT-xTiny at 672 x 672: 0.50 CPU s per image at batch 2, 0.58 at batch 16, 0.71 at batch 32,
one thread: the activations leave the caches). Running the forwards of different instances
concurrently, one intra-op thread each, keeps every core on its own forward without barriers
(8 images on 2 shared cores: 9.0 s as four batch-2 forwards on 2 threads, 5.8 s as one batch-8
forward, 4.4 s as four batch-2 forwards on two worker threads of one intra-op thread each).

Values: one intra-op thread splits some reductions differently from two, so outputs may differ
from the batch-1 path's in the last bits, as any change of thread count does (golden/README.md
section 3: 8.3e-6 on xTiny logits between 1 and 2 threads).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

Job = TypeVar("Job")
Result = TypeVar("Result")


def plan_forwards(shapes: Sequence[tuple[int, ...]], workers: int) -> list[list[int]]:
    """Indices of the inputs each forward takes: one forward per input shape, the largest
    forward halved while there are fewer forwards than `workers` (contiguous, in order)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, shape in enumerate(shapes):
        groups.setdefault(tuple(shape), []).append(i)
    jobs = list(groups.values())
    while len(jobs) < workers:
        largest = max(range(len(jobs)), key=lambda j: len(jobs[j]))
        if len(jobs[largest]) < 2:
            break
        members = jobs.pop(largest)
        half = (len(members) + 1) // 2
        jobs[largest:largest] = [members[:half], members[half:]]
    return jobs


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
